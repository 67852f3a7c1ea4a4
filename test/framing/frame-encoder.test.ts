import avro from 'avsc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import {
  readErrorHead, readGoaway, readRequestHead, requestFlags, writeError, writeGoaway, writeRequest, errorFlags,
  type RequestDraft,
} from '../../src/framing/bodies.js';
import { Flag, FrameType } from '../../src/framing/frame.js';

const test = suite('frame encoder and bodies');
const strings = avro.Type.forSchema({ type: 'array', items: 'string' });
const writeStrings = (v: string[], buf: Buffer, pos: number) => strings.encode(v, buf, pos);

function decodeAll(bufs: Buffer[]): Array<{ type: number; flags: number; id: number; body: Buffer }> {
  const out: Array<{ type: number; flags: number; id: number; body: Buffer }> = [];
  const dec = new FrameDecoder({ maxFrameBytes: 1 << 26, expectPreface: false }, (type, flags, id, body) => out.push({ type, flags, id, body }));
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
  assert.equal(frames.map((f) => f.id), [1, 2, 3, 4, 5, 6]);
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
  assert.equal(decodeAll(enc.take()).map((f) => f.id), [1]);
});

test('REQUEST bodies round-trip with and without deadline and metadata', () => {
  const record = avro.Type.forSchema({ type: 'record', name: 'R', fields: [{ name: 'x', type: 'long' }] });
  for (const [timeoutMs, metadata] of [[-1, undefined], [5, undefined], [-1, { a: 'b' }], [0xffffffff, { k: 'v', é: 'ü' }]] as const) {
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
