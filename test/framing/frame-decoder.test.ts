import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError } from '../../src/index.js';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { PREFACE } from '../../src/framing/frame.js';
import { specVectors } from '../helpers/spec-vectors.js';

const test = suite('frame decoder');

interface Seen { type: number; flags: number; id: number; body: string }

/** A stream of frames of varied sizes (empty, tiny, one spanning many chunks) behind a preface. */
function sampleStream(): { bytes: Buffer; frames: Seen[] } {
  const enc = new FrameEncoder();
  enc.bytes(PREFACE);
  const frames: Seen[] = [];
  const sizes = [0, 1, 9, 10, 11, 300, 70_000, 3];
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
  // The big frame makes a full sweep slow; sweep every boundary of the small-frame prefix and tail.
  const { bytes, frames } = sampleStream();
  const points = new Set<number>();
  for (let i = 0; i <= 400; i++) points.add(i);
  for (let i = bytes.length - 400; i <= bytes.length; i++) points.add(i);
  for (let i = 400; i < bytes.length; i += 997) points.add(i);
  for (const at of points) {
    assert.equal(decodeChunks([bytes.subarray(0, at), bytes.subarray(at)]), frames, `split at ${at}`);
  }
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
  new FrameDecoder({ maxFrameBytes: 100, expectPreface: true }, (_t, _f, _i, b) => { body = b; }).push(chunk);
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
  assert.throws(() => dec.push(Buffer.from('5251', 'hex')), (err: RpcError) => err.code === Code.INTERNAL);
});

test('bufferedBytes reports a partial frame', () => {
  const dec = new FrameDecoder({ maxFrameBytes: 1024, expectPreface: false }, () => {});
  dec.push(Buffer.from('000000640300000000010102', 'hex'));
  assert.is(dec.bufferedBytes, 100);
});

test.run();
