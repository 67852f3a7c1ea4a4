import avro from 'avsc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { countMapEntries, readKey, readStringMap } from '../../src/framing/avro-map.js';
import { seeded } from '../helpers/prng.js';

/** The bounded map readers agree with avsc on every map, and stop at their limit. */
const test = suite('bounded Avro map readers');
const strings = avro.Type.forSchema({ type: 'map', values: 'string' });
const bytes = avro.Type.forSchema({ type: 'map', values: 'bytes' });

function randomMap(rnd: () => number): Record<string, string> {
  const out: Record<string, string> = {};
  const n = Math.floor(rnd() * 12);
  for (let i = 0; i < n; i++) {
    const len = Math.floor(rnd() * (rnd() < 0.1 ? 300 : 8));
    out[`k${i}-${'é'.repeat(Math.floor(rnd() * 3))}`] = Array.from({ length: len }, () =>
      String.fromCharCode(32 + Math.floor(rnd() * 500)),
    ).join('');
  }
  return out;
}

/** The same map in two blocks, the second with a negative count and its byte size (as Avro allows). */
function twoBlocks(map: Record<string, string>): Buffer {
  const entries = Object.entries(map);
  const half = entries.slice(0, Math.floor(entries.length / 2));
  const rest = entries.slice(half.length);
  const first = strings.toBuffer(Object.fromEntries(half)).subarray(0, -1); // without its end marker
  const second = strings.toBuffer(Object.fromEntries(rest));
  if (rest.length === 0) return Buffer.concat([first, Buffer.from([0])]);
  const long = avro.Type.forSchema('long');
  // A positive-count block is: count, entries..., 0. Re-emit the entries with -count and their size.
  const body = second.subarray(long.toBuffer(rest.length).length, -1);
  return Buffer.concat([first, long.toBuffer(-rest.length), long.toBuffer(body.length), body, Buffer.from([0])]);
}

test('reads what avsc reads, in one block or several, with the offset just past the map', () => {
  const rnd = seeded(7);
  for (let i = 0; i < 500; i++) {
    const map = randomMap(rnd);
    for (const encoded of [strings.toBuffer(map), twoBlocks(map)]) {
      const buf = Buffer.concat([Buffer.from([9, 9]), encoded, Buffer.from([7])]);
      const r = readStringMap(buf, 2, Infinity);
      assert.ok(r !== undefined);
      assert.equal(r!.value, strings.decode(buf, 2).value);
      assert.is(r!.end, 2 + encoded.length);
      assert.is(countMapEntries(Buffer.concat([Buffer.from([9]), encoded]), 1, 100), Object.keys(map).length);
    }
  }
});

test('a map longer than the limit is reported, not decoded; one of exactly the limit is read', () => {
  const rnd = seeded(11);
  for (let i = 0; i < 200; i++) {
    const map = randomMap(rnd);
    const encoded = Buffer.concat([strings.toBuffer(map), Buffer.from('payload after the map')]);
    const len = strings.toBuffer(map).length;
    assert.ok(readStringMap(encoded, 0, len) !== undefined, 'exactly the limit');
    if (len > 1) assert.is(readStringMap(encoded, 0, len - 1), undefined, 'one byte over');
  }
});

test('every truncation of a map throws (or is over the limit), never reads past the buffer', () => {
  const encoded = strings.toBuffer({ alpha: 'one', beta: 'x'.repeat(200), gamma: '' });
  for (let cut = 0; cut < encoded.length; cut++) {
    assert.throws(() => readStringMap(encoded.subarray(0, cut), 0, Infinity), /truncated/);
    assert.is(countMapEntries(encoded.subarray(0, cut), 0, 100), -1);
  }
});

test('a negative string length or an endless varint is an error', () => {
  assert.throws(() => readStringMap(Buffer.from([2, 1, 0]), 0, Infinity), /negative/);
  assert.throws(() => readStringMap(Buffer.alloc(20, 0xff), 0, Infinity), /out of range/);
});

test('countMapEntries stops past its maximum, whatever the map claims or holds', () => {
  const map: Record<string, Buffer> = {};
  for (let i = 0; i < 1000; i++) map[`k${i}`] = Buffer.alloc(1);
  const encoded = bytes.toBuffer(map);
  assert.is(countMapEntries(encoded, 0, 64), 65);
  assert.is(countMapEntries(encoded, 0, 1000), 1000);
  // A block claiming 2^40 entries in 3 bytes: over, at once.
  const long = avro.Type.forSchema('long');
  assert.is(countMapEntries(Buffer.concat([long.toBuffer(2 ** 40), Buffer.from([2, 0x61, 0])]), 0, 64), 65);
});

test('readKey: what toString gives for any bytes, recurring keys and keys sharing a slot included', () => {
  const rnd = seeded(7);
  const samples: Buffer[] = [
    Buffer.from('trace-id'),
    Buffer.from('tenant'),
    Buffer.from('clé-é'),
    Buffer.from([0xff, 0xfe, 0x41]), // not UTF-8: U+FFFD as toString decodes it
    Buffer.from([0xe2, 0x82]), // a truncated sequence
    Buffer.from('x'.repeat(40)),
    Buffer.from('y'.repeat(41)), // beyond the table's longest key
    Buffer.alloc(0),
  ];
  // Many keys of one length, first and last byte: they share slots, and must never be confused.
  for (let i = 0; i < 200; i++) samples.push(Buffer.from(`a${String.fromCharCode(97 + (i % 26))}${i % 7}z`));
  for (let i = 0; i < 300; i++)
    samples.push(Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 20) }, () => Math.floor(rnd() * 256))));
  for (let round = 0; round < 3; round++) {
    for (const b of samples) {
      // Inside a larger buffer, at an offset, as in a frame.
      const framed = Buffer.concat([Buffer.from([1, 2, 3]), b, Buffer.from([4])]);
      assert.is(readKey(framed, 3, 3 + b.length), b.toString('utf8'), b.toString('hex'));
    }
  }
  const one = Buffer.from('tenant');
  assert.is(readKey(one, 0, 6), readKey(Buffer.from('tenant'), 0, 6), 'a recurring key');
});

test.run();
