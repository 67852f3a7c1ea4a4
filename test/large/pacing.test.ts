/**
 * Fragment pacing (SPEC.md section 12.3): a sender keeps only `interleaveWindowBytes` of fragments in
 * flight while small messages share the connection, and the peer's whole window otherwise. The policy
 * is pure; the end-to-end effect (a small call overtakes a large one) is in large-calls.test.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { OutgoingMessages, type OutgoingHost } from '../../src/connection/outgoing-messages.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { FrameType } from '../../src/framing/frame.js';

const test = suite('fragment pacing');

const writeBytes = (value: Buffer, buf: Buffer, pos: number): number => {
  if (pos + value.length > buf.length) return -(pos + value.length - buf.length);
  value.copy(buf, pos);
  return pos + value.length;
};

function large(): { lm: OutgoingMessages; encoder: FrameEncoder } {
  const encoder = new FrameEncoder();
  const host: OutgoingHost = {
    flushSoon: () => undefined,
    fragmentsQueued: () => undefined,
    gone: false,
  };
  const lm = new OutgoingMessages(
    {
      fragmentBytes: 1000,
      maxMessageBytes: 1 << 20,
      maxPartialMessages: 4,
      fragmentWindowBytes: 1 << 20,
      interleaveWindowBytes: 2000,
      compressAboveBytes: 0,
    },
    encoder,
    host,
  );
  lm.use({ peerPartialMessages: 4, peerWindowBytes: 64_000, compression: false, peerStreamWindow: 0 });
  return { lm, encoder };
}

test('deep while only large messages go out: the whole window', () => {
  const { lm, encoder } = large();
  lm.send(FrameType.RESPONSE, 0, 1, Buffer.alloc(100_000), writeBytes);
  lm.pace();
  let sent = 0;
  for (let n = lm.outbox.round(encoder); n > 0; n = lm.outbox.round(encoder)) sent += n;
  assert.is(sent, 64_000);
});

test('shallow once a small message went out, and deep again after a quiet spell', async () => {
  const { lm, encoder } = large();
  lm.send(FrameType.RESPONSE, 0, 1, Buffer.alloc(100_000), writeBytes);
  lm.send(FrameType.RESPONSE, 0, 2, Buffer.alloc(10), writeBytes);
  lm.pace();
  let sent = 0;
  for (let n = lm.outbox.round(encoder); n > 0; n = lm.outbox.round(encoder)) sent += n;
  assert.is(sent, 2000, 'a small response shares the connection: two fragments in flight');
  await sleep(150);
  lm.pace();
  for (let n = lm.outbox.round(encoder); n > 0; n = lm.outbox.round(encoder)) sent += n;
  assert.is(sent, 64_000, 'no small message for a while: the rest of the window');
});

test('a small message received counts too', () => {
  const { lm } = large();
  lm.smallMessages++; // what FramedSocket does for each unfragmented REQUEST or RESPONSE it reads
  lm.pace();
  assert.ok(lm.outbox.shallow);
});

test.run();
