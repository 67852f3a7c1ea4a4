import avro from 'avsc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError } from '../../src/index.js';
import { readRequestHead, requestFlags, writeRequest } from '../../src/framing/bodies.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { FrameType } from '../../src/framing/frame.js';
import {
  LIMIT_MAX,
  decodeLimits,
  encodeLimits,
  encodedMetadataBytes,
  limitsProblem,
  requestRefusal,
  type ServerLimits,
} from '../../src/framing/limits.js';
import { seeded } from '../helpers/prng.js';

/** The `avrpc.limits` WELCOME entry (SPEC.md section 11.4): its bytes, its bounds, and the client's local refusal. */
const test = suite('advertised server limits');
const defaults: ServerLimits = {
  maxFrameBytes: 16 * 1024 * 1024,
  maxMessageBytes: 16 * 1024 * 1024,
  maxMetadataBytes: 8192,
  maxConcurrentCalls: 16384,
};

test('encodes four u32 big-endian in order, and decodes them back', () => {
  const value = encodeLimits(defaults);
  assert.is(value.toString('hex'), '01000000' + '01000000' + '00002000' + '00004000');
  assert.equal(decodeLimits(value), defaults);
});

test('limits beyond a u32 (Infinity included) are sent as 0xFFFFFFFF', () => {
  const value = encodeLimits({ ...defaults, maxMetadataBytes: 2 ** 40, maxConcurrentCalls: Infinity });
  assert.equal(decodeLimits(value), { ...defaults, maxMetadataBytes: LIMIT_MAX, maxConcurrentCalls: LIMIT_MAX });
});

test('encoding a value that is not a non-negative integer throws INVALID_ARGUMENT', () => {
  for (const bad of [-1, 1.5, NaN, '7' as unknown as number]) {
    try {
      encodeLimits({ ...defaults, maxMessageBytes: bad });
      assert.unreachable(`accepted ${String(bad)}`);
    } catch (err) {
      assert.instance(err, RpcError);
      assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
    }
  }
});

test('a value too short, not whole u32s, maxFrameBytes below 64 or maxConcurrentCalls 0 counts as absent', () => {
  const good = encodeLimits(defaults);
  const cases: Buffer[] = [Buffer.alloc(0), good.subarray(0, 15), Buffer.concat([good, Buffer.from([1])])];
  const smallFrame = Buffer.from(good);
  smallFrame.writeUInt32BE(63, 0);
  const noCalls = Buffer.from(good);
  noCalls.writeUInt32BE(0, 12);
  cases.push(smallFrame, noCalls);
  for (const value of cases) {
    assert.type(limitsProblem(value), 'string', value.toString('hex'));
    assert.is(decodeLimits(value), undefined, value.toString('hex'));
  }
  assert.is(decodeLimits(undefined), undefined);
  const edge = Buffer.from(good);
  edge.writeUInt32BE(64, 0);
  edge.writeUInt32BE(0, 4);
  edge.writeUInt32BE(0, 8);
  assert.equal(decodeLimits(edge), { ...defaults, maxFrameBytes: 64, maxMessageBytes: 0, maxMetadataBytes: 0 });
});

test('fields appended by a later version are ignored', () => {
  const longer = Buffer.concat([encodeLimits(defaults), Buffer.from([0xde, 0xad, 0xbe, 0xef])]);
  assert.is(limitsProblem(longer), undefined);
  assert.equal(decodeLimits(longer), defaults);
});

test('decoding never throws, whatever the bytes', () => {
  const rnd = seeded(3);
  for (let i = 0; i < 2000; i++) {
    const value = Buffer.from(Array.from({ length: Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256)));
    const limits = decodeLimits(value);
    if (limits !== undefined) assert.equal(decodeLimits(encodeLimits(limits)), limits);
  }
});

test('requestRefusal: RESOURCE_EXHAUSTED with mayHaveRun false for each limit a request would break, else nothing', () => {
  const ok = { bodyBytes: 100, metadataBytes: 10, largestFrameBytes: 100, callsInFlight: 0 };
  assert.is(requestRefusal(defaults, ok), undefined);
  const at = { bodyBytes: defaults.maxMessageBytes, metadataBytes: 8192, largestFrameBytes: defaults.maxFrameBytes, callsInFlight: 16383 };
  assert.is(requestRefusal(defaults, at), undefined, 'exactly at every limit');
  const over: [Partial<typeof ok>, string][] = [
    [{ largestFrameBytes: defaults.maxFrameBytes + 1 }, 'maxFrameBytes'],
    [{ metadataBytes: 8193 }, 'maxMetadataBytes'],
    [{ bodyBytes: defaults.maxMessageBytes + 1 }, 'maxMessageBytes'],
    [{ callsInFlight: 16384 }, 'concurrent calls'],
  ];
  for (const [change, what] of over) {
    const err = requestRefusal(defaults, { ...ok, ...change });
    assert.instance(err, RpcError, what);
    assert.is(err!.code, Code.RESOURCE_EXHAUSTED);
    assert.is(err!.mayHaveRun, false);
    assert.match(err!.message, what);
  }
});

test('encodedMetadataBytes equals the bytes of the map in a real REQUEST, as the server measures them', () => {
  const rnd = seeded(5);
  const payload = avro.Type.forSchema({ type: 'record', name: 'P', fields: [{ name: 's', type: 'string' }] });
  assert.is(encodedMetadataBytes(undefined), 0);
  for (let i = 0; i < 300; i++) {
    const metadata: Record<string, string> = {};
    const n = i === 0 ? 0 : Math.floor(rnd() * (rnd() < 0.05 ? 200 : 6));
    for (let k = 0; k < n; k++)
      metadata[`k${k}${'é'.repeat(Math.floor(rnd() * 3))}`] = 'v'.repeat(Math.floor(rnd() * (rnd() < 0.1 ? 300 : 9)));
    const draft = { index: 0, timeoutMs: 5, metadata, type: payload, value: { s: 'x' } };
    const enc = new FrameEncoder();
    enc.frame(FrameType.REQUEST, requestFlags(draft), 1, draft, writeRequest);
    const frame = Buffer.concat(enc.take());
    const head = readRequestHead(frame[5]!, frame.subarray(10));
    assert.is(encodedMetadataBytes(metadata), head.metadataBytes, JSON.stringify(Object.keys(metadata).length));
  }
});

test.run();
