import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError } from '../../src/index.js';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { PREFACE } from '../../src/framing/frame.js';
import { specVectors } from '../helpers/spec-vectors.js';

const test = suite('frame decoder');

interface Seen {
  type: number;
  flags: number;
  id: number;
  body: string;
}

/**
 * A stream of frames of varied sizes (empty, tiny, one of `bigBytes` that spans chunks) behind a
 * preface. The default 70,000 is past the decoder's first 64 KiB body buffer, so it also grows it.
 */
function sampleStream(bigBytes = 70_000): { bytes: Buffer; frames: Seen[] } {
  const enc = new FrameEncoder();
  enc.bytes(PREFACE);
  const frames: Seen[] = [];
  const sizes = [0, 1, 9, 10, 11, 300, bigBytes, 3];
  sizes.forEach((size, i) => {
    const body = Buffer.alloc(size, i + 1);
    for (let j = 0; j < size; j += 97) body[j] = j & 0xff;
    enc.raw(3 + (i % 3), i, 0xfffffff0 + i, size === 0 ? null : body);
    frames.push({ type: 3 + (i % 3), flags: i, id: 0xfffffff0 + i, body: body.toString('hex') });
  });
  return { bytes: Buffer.concat(enc.take()), frames };
}

function decodeChunks(chunks: Buffer[], max = 1 << 20): Seen[] {
  const seen: Seen[] = [];
  const dec = new FrameDecoder({ maxFrameBytes: max, expectPreface: true }, (type, flags, id, body) => {
    seen.push({ type, flags, id, body: Buffer.from(body).toString('hex') });
  });
  for (const c of chunks) dec.push(c);
  return seen;
}

test('every split point of a stream into two chunks decodes identically', () => {
  // A 3,000-byte frame keeps the full sweep quick; the 64 KiB growth of a spanning body is swept by
  // the random chunks and the one-byte-at-a-time tests below.
  const { bytes, frames } = sampleStream(3000);
  for (let at = 0; at <= bytes.length; at++) {
    assert.equal(decodeChunks([bytes.subarray(0, at), bytes.subarray(at)]), frames, `split at ${at}`);
  }
});

test('a 1 MB frame pushed one byte at a time arrives intact, buffering at most its size, grown by doubling', () => {
  const size = 1 << 20;
  const body = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) body[i] = (i * 31 + (i >>> 8)) & 0xff;
  const enc = new FrameEncoder();
  enc.raw(4, 0, 7, body);
  const bytes = Buffer.concat(enc.take());
  const got: Buffer[] = [];
  const dec = new FrameDecoder({ maxFrameBytes: size, expectPreface: false }, (_t, _f, id, b) => {
    assert.is(id, 7);
    got.push(b);
  });
  let most = 0;
  const held = new Set<number>();
  for (let i = 0; i < bytes.length; i++) {
    dec.push(bytes.subarray(i, i + 1));
    const n = dec.bufferedBytes;
    if (n > most) most = n;
    held.add(n);
  }
  assert.is(got.length, 1);
  assert.ok(got[0]!.equals(body), 'the body arrived intact');
  assert.ok(most <= size, `buffered ${most} bytes for a ${size}-byte frame`);
  // Header bytes (1-9), then the body buffer: 64 KiB doubling to 1 MiB is five sizes. A decoder that
  // re-concatenated per chunk would report a new size at every byte.
  assert.ok(held.size <= 9 + 5 + 1, `${held.size} distinct buffer sizes`);
  assert.is(dec.bufferedBytes, 0);
});

test('every SPEC vector decodes the same at every split point and one byte at a time', () => {
  // One stream: the extension vectors' second preface is dropped.
  const all = Buffer.concat(specVectors().map((b, i) => (i > 0 && b.subarray(0, 6).equals(PREFACE) ? b.subarray(6) : b)));
  const whole = decodeChunks([all]);
  assert.ok(whole.length >= 7);
  for (let at = 0; at <= all.length; at++) {
    assert.equal(decodeChunks([all.subarray(0, at), all.subarray(at)]), whole, `split at ${at}`);
  }
  const bytes = [...all].map((b) => Buffer.from([b]));
  assert.equal(decodeChunks(bytes), whole);
});

test('random chunk sizes decode identically (seeded)', () => {
  const { bytes, frames } = sampleStream();
  let seed = 12345;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n) + 1;
  for (let round = 0; round < 200; round++) {
    const chunks: Buffer[] = [];
    for (let pos = 0; pos < bytes.length;) {
      const n = rand(round % 2 === 0 ? 16 : 5000);
      chunks.push(bytes.subarray(pos, pos + n));
      pos += n;
    }
    assert.equal(decodeChunks(chunks), frames, `round ${round}`);
  }
});

test('a frame inside one chunk is a view of that chunk, not a copy', () => {
  const enc = new FrameEncoder();
  enc.bytes(PREFACE);
  enc.raw(3, 0, 1, Buffer.from('abc'));
  const chunk = Buffer.concat(enc.take());
  let body: Buffer | undefined;
  new FrameDecoder({ maxFrameBytes: 100, expectPreface: true }, (_t, _f, _i, b) => {
    body = b;
  }).push(chunk);
  assert.is(body!.buffer, chunk.buffer);
});

test('an oversized length prefix fails with RESOURCE_EXHAUSTED before any allocation', () => {
  const header = Buffer.from('ffffffff0300' + '00000001', 'hex');
  const dec = new FrameDecoder({ maxFrameBytes: 1024, expectPreface: false }, () => assert.unreachable('no frame'));
  const before = process.memoryUsage().arrayBuffers;
  try {
    dec.push(header);
    assert.unreachable('should throw');
  } catch (err) {
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, Code.RESOURCE_EXHAUSTED);
  }
  // A 4 GiB buffer would show here; allow unrelated noise.
  assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20);
  dec.push(Buffer.from('00000000030000000002', 'hex')); // refuses input after failing
});

test('a bad preface fails with INTERNAL, even when split', () => {
  const dec = new FrameDecoder({ maxFrameBytes: 1024, expectPreface: true }, () => assert.unreachable('no frame'));
  dec.push(Buffer.from('4156', 'hex'));
  assert.throws(
    () => dec.push(Buffer.from('5251', 'hex')),
    (err: RpcError) => err.code === Code.INTERNAL,
  );
});

test('bufferedBytes reports a partial frame', () => {
  const dec = new FrameDecoder({ maxFrameBytes: 1024, expectPreface: false }, () => {});
  dec.push(Buffer.from('000000640300000000010102', 'hex'));
  assert.is(dec.bufferedBytes, 100);
});

test.run();
