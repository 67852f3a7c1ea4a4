/**
 * The stall check (issue 14, `stallTimeoutMs`): a request whose fragments stop coming is refused and
 * freed; fragments of ours that the peer never acknowledges end the connection; neither happens for a
 * transfer that progresses, nor across a stall of our own event loop. Pure policy, on a fake clock; the
 * end-to-end attacks are in test/security/memory-budget.test.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { IncomingMessages, type IncomingHost } from '../../src/connection/incoming-messages.js';
import type { LargeMessageOptions } from '../../src/connection/large-messages.js';
import { OutgoingMessages } from '../../src/connection/outgoing-messages.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { Code, type RpcError } from '../../src/index.js';
import { FakeClock } from '../helpers/fake-clock.js';

const test = suite('stall check');
const MS = 1000;

const writeBytes = (value: Buffer, buf: Buffer, pos: number): number => {
  if (pos + value.length > buf.length) return -(pos + value.length - buf.length);
  value.copy(buf, pos);
  return pos + value.length;
};

/** Both halves of a socket's large messages, wired as FramedSocket wires them. */
interface Large {
  out: OutgoingMessages;
  inc: IncomingMessages;
}

function setup(): Large & { clock: FakeClock; refused: [number, RpcError][]; failed: RpcError[]; encoder: FrameEncoder } {
  const clock = new FakeClock();
  const refused: [number, RpcError][] = [];
  const failed: RpcError[] = [];
  const encoder = new FrameEncoder();
  const host: IncomingHost & { fragmentsQueued(): void } = {
    flushSoon: () => undefined,
    fail: (e: RpcError) => {
      failed.push(e);
      out.clear();
      inc.clear();
    },
    fragmentsQueued: () => inc.watchStalls(),
    gone: false,
  };
  const options: LargeMessageOptions = {
    fragmentBytes: 1000,
    maxMessageBytes: 1 << 20,
    maxPartialMessages: 4,
    fragmentWindowBytes: 1 << 20,
    interleaveWindowBytes: 2000,
    compressAboveBytes: 0,
    stallTimeoutMs: MS,
  };
  const out = new OutgoingMessages(options, encoder, host, clock);
  const inc: IncomingMessages = new IncomingMessages(
    options,
    encoder,
    out.outbox,
    host,
    {
      onFrame: () => undefined,
      onRefused: (_t, _f, id, e) => {
        refused.push([id, e]);
      },
    },
    clock,
  );
  const negotiated = { peerPartialMessages: 4, peerWindowBytes: 4000, compression: false, peerStreamWindow: 0 };
  out.use(negotiated);
  inc.use(negotiated);
  return { out, inc, clock, refused, failed, encoder };
}

function first(total: number, data: number): Buffer {
  const b = Buffer.alloc(4 + data);
  b.writeUInt32BE(total, 0);
  return b;
}

test('a partial request with no byte for a whole period is refused RESOURCE_EXHAUSTED and freed', () => {
  const { inc, clock, refused } = setup();
  inc.receive(FrameType.REQUEST, Flag.MORE, 1, first(10_000, 100));
  clock.advance(MS);
  assert.equal(refused, [], 'the first check only marks');
  inc.receive(FrameType.CONTINUATION, Flag.MORE, 1, Buffer.alloc(100));
  clock.advance(MS);
  assert.equal(refused, [], 'it progressed');
  assert.is(inc.receiving, 1);
  clock.advance(MS);
  assert.equal(
    refused.map(([id, e]) => [id, e.code]),
    [[1, Code.RESOURCE_EXHAUSTED]],
  );
  assert.match(refused[0]![1].message, 'stallTimeoutMs');
  assert.is(inc.receiving, 0);
  assert.is(inc.bufferedBytes, 0);
});

test('a late tick (our own event loop stalled) refuses nothing and starts the period again', () => {
  const { inc, clock, refused } = setup();
  inc.receive(FrameType.REQUEST, Flag.MORE, 1, first(10_000, 100));
  clock.advance(MS);
  clock.block(5 * MS);
  clock.turn();
  assert.equal(refused, []);
  clock.advance(MS);
  assert.equal(refused, [], 'marked again after the late tick');
  clock.advance(MS);
  assert.is(refused.length, 1);
});

test('fragments sent and unacknowledged for a whole period end the connection; WINDOWs keep it', () => {
  const { out, inc, clock, failed, encoder } = setup();
  out.send(FrameType.RESPONSE, 0, 1, Buffer.alloc(100_000), writeBytes);
  while (out.outbox.round(encoder) > 0);
  clock.advance(MS);
  const ack = Buffer.alloc(4);
  ack.writeUInt32BE(1000);
  for (let i = 0; i < 3; i++) {
    inc.receive(FrameType.WINDOW, 0, 0, ack);
    clock.advance(MS);
  }
  assert.equal(failed, [], 'a WINDOW came within each period');
  clock.advance(MS);
  assert.is(failed.length, 1);
  assert.is(failed[0]!.code, Code.RESOURCE_EXHAUSTED);
  assert.match(failed[0]!.message, 'stallTimeoutMs');
});

test('nothing partial and nothing queued: the check stops', () => {
  const { inc, clock } = setup();
  inc.receive(FrameType.REQUEST, Flag.MORE, 1, first(200, 100));
  assert.is(clock.pending, 1, 'the check runs');
  inc.receive(FrameType.CONTINUATION, 0, 1, Buffer.alloc(100));
  clock.advance(MS);
  assert.is(clock.pending, 0, 'the check stopped');
});

test.run();
