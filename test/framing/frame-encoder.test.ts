import avro from 'avsc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import {
  readErrorHead,
  readGoaway,
  readRequestHead,
  requestFlags,
  writeError,
  writeGoaway,
  writeRequest,
  errorFlags,
  type RequestDraft,
} from '../../src/framing/bodies.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { viewBytesHook } from '../../src/codec/view-bytes.js';
import { SPLICE_MIN_BYTES } from '../../src/framing/splices.js';

const test = suite('frame encoder and bodies');
const strings = avro.Type.forSchema({ type: 'array', items: 'string' });
const writeStrings = (v: string[], buf: Buffer, pos: number) => strings.encode(v, buf, pos);

function decodeAll(bufs: Buffer[]): Array<{ type: number; flags: number; id: number; body: Buffer }> {
  const out: Array<{ type: number; flags: number; id: number; body: Buffer }> = [];
  const dec = new FrameDecoder({ maxFrameBytes: 1 << 26, expectPreface: false }, (type, flags, id, body) =>
    out.push({ type, flags, id, body }),
  );
  for (const b of bufs) dec.push(b);
  return out;
}

test('frames of every size, including ones larger than the arena, round-trip', () => {
  const enc = new FrameEncoder();
  const values: string[][] = [];
  for (const n of [0, 1, 100, 5000, 40_000, 3]) values.push(Array.from({ length: n }, (_, i) => `s${i}`));
  values.forEach((v, i) => enc.frame(FrameType.RESPONSE, 0, i + 1, v, writeStrings));
  assert.ok(enc.pendingBytes > 64 * 1024);
  const frames = decodeAll(enc.take());
  assert.is(enc.pendingBytes, 0);
  assert.equal(
    frames.map((f) => f.id),
    [1, 2, 3, 4, 5, 6],
  );
  frames.forEach((f, i) => assert.equal(strings.fromBuffer(f.body), values[i]));
});

test('a batch leaves as few buffers as possible and bytes already taken are never rewritten', () => {
  const enc = new FrameEncoder();
  for (let i = 0; i < 100; i++) enc.raw(FrameType.PING, 0, i, null);
  const first = enc.take();
  assert.is(first.length, 1);
  const copy = Buffer.from(first[0]!);
  for (let i = 0; i < 100; i++) enc.raw(FrameType.PONG, 0, i, Buffer.alloc(20, 7));
  enc.take();
  assert.equal(first[0], copy);
});

test('a body writer that throws appends nothing', () => {
  const enc = new FrameEncoder();
  enc.raw(FrameType.PING, 0, 1, null);
  assert.throws(() => enc.frame(FrameType.RESPONSE, 0, 2, [1 as unknown as string], writeStrings));
  assert.equal(
    decodeAll(enc.take()).map((f) => f.id),
    [1],
  );
});

const blobs = avro.Type.forSchema(
  {
    type: 'record',
    name: 'Blobs',
    fields: [
      { name: 'a', type: 'bytes' },
      { name: 'n', type: 'long' },
      { name: 'b', type: 'bytes' },
      { name: 's', type: 'string' },
    ],
  },
  { typeHook: viewBytesHook },
);
type Blobs = { a: Buffer; n: number; b: Buffer; s: string };
const writeBlobs = (v: Blobs, buf: Buffer, pos: number) => blobs.encode(v, buf, pos);
const big = (n: number, salt: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + salt) & 0xff));
/** Field by field (uvu's deep equal misreads Buffers that are views into a larger buffer). */
function sameBlobs(x: Blobs, y: Blobs, what: string): void {
  assert.ok(x.a.equals(y.a) && x.b.equals(y.b) && x.n === y.n && x.s === y.s, what);
}

test('large bytes values go out by reference, not copied, and the frames decode to the same values', () => {
  const enc = new FrameEncoder();
  const v: Blobs = { a: big(SPLICE_MIN_BYTES, 1), n: 42, b: big(SPLICE_MIN_BYTES * 3 + 5, 2), s: 'tail' };
  const small: Blobs = { a: big(10, 3), n: 1, b: big(SPLICE_MIN_BYTES - 1, 4), s: '' };
  enc.raw(FrameType.PING, 0, 9, null);
  enc.frame(FrameType.RESPONSE, 0, 1, v, writeBlobs);
  assert.is(enc.lastBodyLength, blobs.toBuffer(v).length);
  enc.frame(FrameType.RESPONSE, 0, 2, small, writeBlobs);
  const out = enc.take();
  assert.ok(out.includes(v.a) && out.includes(v.b), 'both large values are buffers of the write themselves');
  assert.ok(!out.some((b) => b.buffer === small.b.buffer), 'a value under the threshold is copied');
  const frames = decodeAll(out);
  assert.equal(
    frames.map((f) => [f.type, f.id]),
    [
      [FrameType.PING, 9],
      [FrameType.RESPONSE, 1],
      [FrameType.RESPONSE, 2],
    ],
  );
  sameBlobs(blobs.fromBuffer(frames[1]!.body) as Blobs, v, 'frame 1');
  sameBlobs(blobs.fromBuffer(frames[2]!.body) as Blobs, small, 'frame 2');
});

test('a frame with values spliced in detaches as its body parts, and frames around it are untouched', () => {
  const enc = new FrameEncoder();
  const v: Blobs = { a: big(SPLICE_MIN_BYTES + 1, 5), n: -7, b: big(SPLICE_MIN_BYTES, 6), s: 'x' };
  enc.raw(FrameType.PING, 0, 1, null);
  enc.frame(FrameType.RESPONSE, 0, 2, v, writeBlobs);
  const parts = enc.detachLast();
  assert.ok(parts.includes(v.a) && parts.includes(v.b));
  assert.ok(Buffer.concat(parts).equals(blobs.toBuffer(v)));
  enc.raw(FrameType.PING, 0, 3, null);
  const frames = decodeAll(enc.take());
  assert.equal(
    frames.map((f) => [f.type, f.id]),
    [
      [FrameType.PING, 1],
      [FrameType.PING, 3],
    ],
  );
  assert.ok(Buffer.concat(parts).equals(blobs.toBuffer(v)), 'the parts still hold the body after more frames were encoded');
});

test('outside a frame, large bytes values are copied as usual', () => {
  const v: Blobs = { a: big(SPLICE_MIN_BYTES * 2, 7), n: 0, b: big(1, 8), s: '' };
  const buf = blobs.toBuffer(v);
  sameBlobs(blobs.fromBuffer(buf) as Blobs, v, 'toBuffer');
  const into = Buffer.alloc(buf.length + 10);
  assert.is(blobs.encode(v, into, 10), into.length);
  assert.ok(into.subarray(10).equals(buf));
});

test('REQUEST bodies round-trip with and without deadline and metadata', () => {
  const record = avro.Type.forSchema({ type: 'record', name: 'R', fields: [{ name: 'x', type: 'long' }] });
  for (const [timeoutMs, metadata] of [
    [-1, undefined],
    [5, undefined],
    [-1, { a: 'b' }],
    [0xffffffff, { k: 'v', é: 'ü' }],
  ] as const) {
    const enc = new FrameEncoder();
    const d: RequestDraft = { index: 7, timeoutMs, metadata, type: record, value: { x: 99 } };
    enc.frame(FrameType.REQUEST, requestFlags(d), 3, d, writeRequest);
    const [f] = decodeAll(enc.take());
    const head = readRequestHead(f!.flags, f!.body);
    assert.is(head.index, 7);
    assert.is(head.timeoutMs, timeoutMs);
    assert.equal(head.metadata, metadata ?? {});
    assert.is(record.decode(f!.body, head.offset).value.x, 99);
  }
});

test('ERROR and GOAWAY bodies round-trip', () => {
  const enc = new FrameEncoder();
  const err = { code: 5, message: 'not here', metadata: { why: 'gone' }, declared: undefined };
  enc.frame(FrameType.ERROR, errorFlags(err), 9, err, writeError);
  enc.frame(FrameType.GOAWAY, 0, 0, { lastId: 77, code: 0, message: 'bye' }, writeGoaway);
  const [e, g] = decodeAll(enc.take());
  assert.is(e!.flags, Flag.METADATA);
  const head = readErrorHead(e!.flags, e!.body);
  assert.equal([head.code, head.message, head.metadata, head.offset], [5, 'not here', { why: 'gone' }, e!.body.length]);
  assert.equal(readGoaway(g!.body), { lastId: 77, code: 0, message: 'bye' });
});

test('truncated bodies are refused, not misread', () => {
  assert.throws(() => readRequestHead(Flag.DEADLINE, Buffer.from([0, 1, 0])));
  assert.throws(() => readRequestHead(Flag.METADATA, Buffer.from([0, 1, 2, 8])));
  assert.throws(() => readErrorHead(0, Buffer.from([])));
  assert.throws(() => readErrorHead(0, Buffer.from([2, 40, 65])));
  assert.throws(() => readGoaway(Buffer.from([0, 0, 0])));
});

test.run();
