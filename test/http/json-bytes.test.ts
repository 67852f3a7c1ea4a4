/**
 * The gateway's response buffer (src/server/http/json-bytes.ts): each response it hands out keeps
 * its bytes through later ones, across slabs and past a slab's size, and an abandoned one leaves
 * nothing behind.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JsonBytes } from '../../src/server/http/json-bytes.js';
import { Miss } from '../../src/server/http/json-direct.js';

function printString(out: JsonBytes, s: string): Buffer {
  out.string(s);
  return out.take();
}

test('responses taken earlier keep their bytes while later ones fill and replace slabs', () => {
  const out = new JsonBytes();
  const kept: [Buffer, string][] = [];
  // 2,000 responses of up to ~1 KiB: many 8 KiB slabs, and responses that straddle a slab's end.
  for (let i = 0; i < 2000; i++) {
    const s = `${i}:${'é'.repeat(i % 300)}"${String.fromCharCode(i % 32)}`;
    kept.push([printString(out, s), JSON.stringify(s)]);
  }
  for (const [bytes, want] of kept) assert.is(bytes.toString('utf8'), want);
});

test('a response longer than a slab is whole, and the slab after it is a normal one', () => {
  const out = new JsonBytes();
  const first = printString(out, 'before');
  out.byte(0x5b);
  for (let i = 0; i < 5000; i++) {
    if (i > 0) out.byte(0x2c);
    out.int(i * 1000003 - 2147483647);
    out.byte(0x2c);
    out.latin1Bytes(Buffer.from([0, 0x22, 0x5c, 0x7f, 0x80, 0xff]));
  }
  out.byte(0x5d);
  const big = out.take();
  const want = Array.from({ length: 5000 }, (_, i) => `${i * 1000003 - 2147483647},${JSON.stringify('\u0000"\\\u007f\u0080\u00ff')}`);
  assert.ok(big.length > 64 * 1024);
  assert.is(big.toString('utf8'), `[${want.join(',')}]`);
  assert.is(first.toString(), '"before"');
  const after = printString(out, 'after');
  assert.is(after.toString(), '"after"');
  assert.ok(after.buffer.byteLength <= 8 * 1024, 'the grown slab is not kept');
});

test('bytes print as JSON.stringify prints their code points: every byte value, at every alignment, across slab changes', () => {
  const out = new JsonBytes();
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const want = (b: Uint8Array) => JSON.stringify(Buffer.from(b).toString('latin1'));
  for (let shift = 0; shift < 8; shift++) {
    out.ascii('x'.repeat(shift));
    out.latin1Bytes(all.subarray(shift));
    assert.is(out.take().toString('utf8'), 'x'.repeat(shift) + want(all.subarray(shift)), `shift ${shift}`);
  }
  // Enough of them to fill slabs and grow one (room, then take's fresh slab): the stores follow the slab.
  for (let round = 0; round < 3; round++) {
    const big = Buffer.alloc(900, 7);
    for (let i = 0; i < 20; i++) out.latin1Bytes(big);
    const text = out.take().toString('utf8');
    assert.is(text, want(big).repeat(20), `round ${round}`);
    out.latin1Bytes(all);
    assert.is(out.take().toString('utf8'), want(all), `round ${round}, after`);
  }
});

test('an abandoned response leaves nothing in the next; a lone surrogate is a Miss', () => {
  const out = new JsonBytes();
  out.string('partial');
  assert.throws(
    () => out.string('a\ud800b'),
    (err: unknown) => err instanceof Miss,
  );
  assert.throws(
    () => out.string('\udc00'),
    (err: unknown) => err instanceof Miss,
  );
  assert.throws(
    () => out.string(`${'x'.repeat(2000)}\ud800`),
    (err: unknown) => err instanceof Miss,
  );
  out.abandon();
  assert.is(printString(out, 'next').toString(), '"next"');
});

test('ints print as String() prints them, at every length and sign', () => {
  const out = new JsonBytes();
  for (const n of [0, -0, 7, -7, 9, 10, 99, 100, 12345, -2147483648, 2147483647, -1000000000, 1000000000]) {
    out.int(n);
    assert.is(out.take().toString(), String(n));
  }
});

test.run();
