/**
 * FramedSocket over a fake socket and a fake clock: write batching, the flush every append schedules,
 * backpressure, PING answers, keepalive through the socket, discard results with fragments, end and
 * destroy. No network: the same paths on real sockets are in test/core and test/large.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FramedSocket } from '../../src/connection/framed-socket.js';
import type { FramedSocketHandler, FramedSocketOptions } from '../../src/connection/framed-socket-options.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { NONE, type Negotiated } from '../../src/framing/extensions.js';
import { Flag, FrameType, PREFACE } from '../../src/framing/frame.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FakeSocket, decodeFrames, frameBytes, type SeenFrame } from '../helpers/fake-socket.js';

const test = suite('framed socket');

/** Fragments of 1000 bytes, one message open at a time, a window of three fragments. */
const FRAGMENTS: Negotiated = { peerPartialMessages: 1, peerWindowBytes: 3000, compression: false, peerStreamWindow: 0 };

const writeBytes = (value: Buffer, buf: Buffer, pos: number): number => {
  if (pos + value.length > buf.length) return -(pos + value.length - buf.length);
  value.copy(buf, pos);
  return pos + value.length;
};

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));

interface Rig {
  fs: FramedSocket;
  sock: FakeSocket;
  clock: FakeClock;
  /** Frames the owner was handed. */
  frames: SeenFrame[];
  closes: RpcError[];
  pongs: number[];
  /** Times the owner was told a flush wrote its frames. */
  written: { count: number };
}

function rig(options: Partial<FramedSocketOptions> = {}, negotiated: Negotiated = NONE): Rig {
  const sock = new FakeSocket();
  const clock = new FakeClock();
  const frames: SeenFrame[] = [];
  const closes: RpcError[] = [];
  const pongs: number[] = [];
  const written = { count: 0 };
  const handler: FramedSocketHandler = {
    onWritten: () => {
      written.count++;
    },
    onFrame: (type, flags, id, body) => frames.push({ type, flags, id, body }),
    onClose: (error) => closes.push(error),
    onRefused: () => undefined,
    onPong: (id) => pongs.push(id),
  };
  const fs = new FramedSocket(
    sock.socket,
    {
      maxFrameBytes: 1 << 20,
      expectPreface: false,
      keepaliveMs: 0,
      keepaliveTimeoutMs: 400,
      pauseReadsWhenBlocked: true,
      maxQueuedBytes: 1 << 24,
      fragmentBytes: 1000,
      maxMessageBytes: 1 << 20,
      maxPartialMessages: 4,
      fragmentWindowBytes: 1 << 20,
      // As deep as the window: pacing (test/large/pacing.test.ts) is not what these tests look at.
      interleaveWindowBytes: 1 << 20,
      compressAboveBytes: 0,
      clock,
      ...options,
    },
    handler,
  );
  fs.established(negotiated, 1 << 20);
  return { fs, sock, clock, frames, closes, pongs, written };
}

/** Type and id of each frame, the way most assertions compare them. */
const kinds = (frames: SeenFrame[]): [number, number][] => frames.map((f) => [f.type, f.id]);

/** The peer acknowledges `bytes` of our fragments. */
function window(bytes: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(bytes);
  return frameBytes(FrameType.WINDOW, 0, 0, b);
}

test('the frames of one tick go out in one write, on the next tick; the next tick is a new write', async () => {
  const { fs, sock, written } = rig();
  assert.is(sock.noDelay, true, 'Nagle off');
  fs.signal(FrameType.PING, 1);
  fs.signal(FrameType.CANCEL, 2);
  fs.message(FrameType.REQUEST, 0, 3, Buffer.from('abc'), writeBytes);
  fs.frame(FrameType.ERROR, 0, 4, Buffer.from('e'), writeBytes);
  assert.is(sock.writes.length, 0, 'nothing written synchronously');
  await tick();
  assert.is(sock.batches.length, 1);
  assert.is(sock.writes.length, 1, 'one write call');
  assert.is(written.count, 1, 'one flush');
  assert.equal(kinds(decodeFrames(sock.batches[0]!)), [
    [FrameType.PING, 1],
    [FrameType.CANCEL, 2],
    [FrameType.REQUEST, 3],
    [FrameType.ERROR, 4],
  ]);
  fs.signal(FrameType.PONG, 5);
  await tick();
  assert.is(sock.batches.length, 2);
  assert.equal(kinds(decodeFrames(sock.batches[1]!)), [[FrameType.PONG, 5]]);
});

test('earlyWriteFrames: the Nth frame of a tick writes those so far at once; the rest go at the tick end; each tick counts anew', async () => {
  const { fs, sock, written } = rig({ earlyWriteFrames: 3 });
  const respond = (id: number): void => void fs.message(FrameType.RESPONSE, 0, id, Buffer.from([id]), writeBytes);
  respond(1);
  respond(2);
  assert.is(sock.writes.length, 0, 'below the count: nothing yet');
  respond(3);
  assert.is(sock.batches.length, 1, 'the third frame wrote at once');
  assert.equal(kinds(decodeFrames(sock.batches[0]!)), [
    [FrameType.RESPONSE, 1],
    [FrameType.RESPONSE, 2],
    [FrameType.RESPONSE, 3],
  ]);
  assert.is(written.count, 1, 'the owner hears of the early write as of a flush');
  for (let id = 4; id <= 8; id++) respond(id);
  assert.is(sock.batches.length, 1, 'one early write per tick, however many frames follow');
  await tick();
  assert.is(sock.batches.length, 2);
  assert.is(written.count, 2, 'then of the tick flush');
  assert.equal(
    decodeFrames(sock.batches[1]!).map((f) => f.id),
    [4, 5, 6, 7, 8],
    'the rest at the tick end, in order',
  );
  respond(9);
  respond(10);
  respond(11);
  assert.is(sock.batches.length, 3, 'a new tick counts from zero');
  await tick();
  assert.is(sock.batches.length, 3, 'nothing left for its flush to write');
  assert.equal(
    sock.batches.flatMap((b) => decodeFrames(b).map((f) => f.id)),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
  );
});

test('earlyWriteFrames: 0 (or absent) writes a tick in one batch; a blocked socket gets no early write, drain writes all in order', async () => {
  for (const earlyWriteFrames of [0, undefined]) {
    const { fs, sock } = rig(earlyWriteFrames === undefined ? {} : { earlyWriteFrames });
    for (let id = 1; id <= 100; id++) fs.signal(FrameType.PING, id);
    assert.is(sock.writes.length, 0, `${earlyWriteFrames}: nothing before the tick's end`);
    await tick();
    assert.is(sock.batches.length, 1, `${earlyWriteFrames}: one batch`);
    assert.is(decodeFrames(sock.batches[0]!).length, 100);
  }
  const { fs, sock } = rig({ earlyWriteFrames: 2 });
  sock.highWaterMark = 1;
  fs.signal(FrameType.PING, 1);
  fs.signal(FrameType.PING, 2);
  assert.is(sock.batches.length, 1, 'early write; the socket is now blocked');
  assert.is(sock.isPaused(), true, 'a peer that does not read is not read either, blocked by an early write too');
  await tick();
  assert.is(sock.isPaused(), true, 'still paused after the tick flush');
  for (let id = 3; id <= 6; id++) fs.signal(FrameType.PING, id);
  await tick();
  assert.is(sock.batches.length, 1, 'held while blocked, early or not');
  sock.highWaterMark = Infinity;
  sock.consume();
  assert.is(sock.batches.length, 2, 'drain wrote what waited');
  assert.equal(
    decodeFrames(sock.batches[1]!).map((f) => f.id),
    [3, 4, 5, 6],
  );
});

test('frame(), signal(), message() and messageBytes() each schedule their own flush; preface() waits for the HELLO', async () => {
  const appends: [string, (fs: FramedSocket) => void][] = [
    ['frame', (fs) => fs.frame(FrameType.GOAWAY, 0, 0, Buffer.alloc(6), writeBytes)],
    ['signal', (fs) => fs.signal(FrameType.PING, 9)],
    ['message', (fs) => fs.message(FrameType.RESPONSE, 0, 9, Buffer.from('x'), writeBytes)],
    ['messageBytes', (fs) => fs.messageBytes(FrameType.RESPONSE, 0, 9, Buffer.from('x'))],
  ];
  for (const [name, append] of appends) {
    const { fs, sock } = rig();
    append(fs);
    await tick();
    assert.is(sock.batches.length, 1, `${name} flushed`);
  }
  const { fs, sock } = rig();
  fs.preface();
  await tick();
  assert.is(sock.writes.length, 0, 'the preface alone is not written');
  fs.frame(FrameType.HELLO, 0, 0, Buffer.from('hello'), writeBytes);
  await tick();
  assert.is(sock.batches.length, 1);
  assert.equal(sock.batches[0]!.subarray(0, PREFACE.length), PREFACE);
  assert.equal(kinds(decodeFrames(sock.batches[0]!.subarray(PREFACE.length))), [[FrameType.HELLO, 0]]);
});

test('backpressure: after a refused write, frames wait for drain and reads pause; drain writes them and resumes reads', async () => {
  const { fs, sock, frames } = rig();
  sock.highWaterMark = 1;
  fs.signal(FrameType.PING, 1);
  await tick();
  assert.is(sock.batches.length, 1);
  fs.signal(FrameType.PING, 2);
  fs.message(FrameType.RESPONSE, 0, 3, Buffer.from('late'), writeBytes);
  await tick();
  assert.is(sock.batches.length, 1, 'held while the socket is blocked');
  assert.is(sock.isPaused(), true, 'a peer that does not read is not read either');
  assert.is(fs.queuedBytes, sock.writableLength + 10 + 14, 'the socket holds the PING, the encoder the rest');
  sock.receive(frameBytes(FrameType.RESPONSE, 0, 7, Buffer.from('r')));
  assert.equal(frames, [], 'unread while paused');
  sock.highWaterMark = Infinity; // the peer reads again
  sock.consume();
  assert.is(sock.isPaused(), false);
  assert.equal(kinds(frames), [[FrameType.RESPONSE, 7]], 'the chunk held back is read on resume');
  assert.is(sock.batches.length, 2, 'drain flushed what waited');
  assert.equal(kinds(decodeFrames(sock.batches[1]!)), [
    [FrameType.PING, 2],
    [FrameType.RESPONSE, 3],
  ]);
});

test('a peer that does not read: past maxQueuedBytes the socket is destroyed RESOURCE_EXHAUSTED', async () => {
  const { fs, sock, closes } = rig({ maxQueuedBytes: 100 });
  sock.highWaterMark = 1;
  for (let id = 1; id <= 5; id++) fs.signal(FrameType.PING, id);
  await tick();
  assert.ok(!sock.destroyed, 'under the cap');
  for (let id = 21; id <= 40; id++) fs.message(FrameType.RESPONSE, 0, id, Buffer.alloc(10), writeBytes);
  assert.ok(sock.destroyed, 'at once, not at the next flush');
  await tick();
  assert.is(closes.length, 1);
  assert.is(closes[0]!.code, Code.RESOURCE_EXHAUSTED);
  assert.match(closes[0]!.message, 'peer does not read');
});

test("the peer's PING is answered with a PONG of its id on the next tick; its PONG goes to keepalive and onPong; neither reaches onFrame", async () => {
  const { sock, frames, pongs } = rig();
  sock.receive(Buffer.concat([frameBytes(FrameType.PING, 0, 42), frameBytes(FrameType.PING, 0, 43), frameBytes(FrameType.PONG, 0, 7)]));
  assert.is(sock.writes.length, 0);
  await tick();
  assert.is(sock.batches.length, 1, 'both answers in one write');
  assert.equal(kinds(decodeFrames(sock.batches[0]!)), [
    [FrameType.PONG, 42],
    [FrameType.PONG, 43],
  ]);
  assert.equal(pongs, [7]);
  assert.equal(frames, []);
});

test('keepalive runs on options.clock, from established() on: PING after keepaliveMs, then a verdict that closes UNAVAILABLE', async () => {
  const sock = new FakeSocket();
  const clock = new FakeClock();
  const closes: RpcError[] = [];
  const fs = new FramedSocket(
    sock.socket,
    {
      maxFrameBytes: 1 << 20,
      expectPreface: false,
      keepaliveMs: 1000,
      keepaliveTimeoutMs: 400,
      pauseReadsWhenBlocked: true,
      maxQueuedBytes: 1 << 24,
      fragmentBytes: 0,
      maxMessageBytes: 1 << 20,
      maxPartialMessages: 0,
      fragmentWindowBytes: 1 << 20,
      interleaveWindowBytes: 2000,
      compressAboveBytes: 0,
      clock,
    },
    { onFrame: () => undefined, onClose: (e) => closes.push(e), onRefused: () => undefined },
  );
  clock.advance(5000);
  await tick();
  assert.is(sock.writes.length, 0, 'no PING during the handshake');
  fs.established(NONE, 1 << 20);
  clock.advance(1000);
  await tick();
  assert.equal(kinds(sock.frames), [[FrameType.PING, 1]]);
  sock.receive(frameBytes(FrameType.PONG, 0, 1));
  clock.advance(1000);
  await tick();
  assert.equal(kinds(sock.frames), [
    [FrameType.PING, 1],
    [FrameType.PING, 2],
  ]);
  assert.is(fs.unanswered, false);
  clock.advance(50);
  assert.is(fs.unanswered, true, 'unanswered after probeAfterMs');
  clock.advance(350);
  assert.ok(sock.destroyed);
  await tick();
  assert.is(closes.length, 1);
  assert.is(closes[0]!.code, Code.UNAVAILABLE);
  assert.match(closes[0]!.message, 'keepalive timeout');
});

test("discard(id): 'none' for an id with nothing queued or all written", async () => {
  const { fs, sock } = rig({}, FRAGMENTS);
  assert.is(fs.discard(99), 'none');
  fs.message(FrameType.RESPONSE, 0, 1, Buffer.alloc(100), writeBytes);
  assert.is(fs.discard(1), 'none', 'a small message is one frame, already in the batch');
  fs.message(FrameType.RESPONSE, 0, 2, Buffer.alloc(2500), writeBytes);
  await tick();
  assert.is(fs.isWriting(2), false, 'fits the window: all written');
  assert.is(fs.discard(2), 'none');
  assert.equal(
    sock.frames.map((f) => f.id),
    [1, 2, 2, 2],
  );
});

test("discard(id): 'unwritten' before its first fragment went out, then nothing of it is written", async () => {
  const { fs, sock } = rig({}, FRAGMENTS);
  fs.message(FrameType.RESPONSE, 0, 1, Buffer.alloc(10_000), writeBytes);
  fs.message(FrameType.RESPONSE, 0, 2, Buffer.alloc(10_000), writeBytes);
  assert.is(fs.discard(1), 'unwritten', 'discarded in the tick it was sent');
  await tick();
  assert.ok(fs.isWriting(2));
  fs.message(FrameType.RESPONSE, 0, 3, Buffer.alloc(10_000), writeBytes);
  await tick();
  assert.equal(fs.discardUnstarted(), [3], 'waiting for the one open slot (P = 1)');
  assert.is(fs.discard(3), 'none', 'already gone');
  assert.ok(
    sock.frames.every((f) => f.id === 2),
    'only message 2 went out',
  );
});

test("discard(id): 'partial' once fragments went out; the rest is never written, and the window goes to the next", async () => {
  const { fs, sock } = rig({}, FRAGMENTS);
  fs.message(FrameType.RESPONSE, 0, 1, Buffer.alloc(10_000), writeBytes);
  await tick();
  const first = sock.frames;
  assert.equal(kinds(first), [
    [FrameType.RESPONSE, 1],
    [FrameType.CONTINUATION, 1],
    [FrameType.CONTINUATION, 1],
  ]);
  assert.ok((first[0]!.flags & Flag.MORE) !== 0);
  assert.is(fs.discard(1), 'partial');
  assert.is(fs.isWriting(1), false);
  fs.message(FrameType.RESPONSE, 0, 2, Buffer.alloc(1500), writeBytes);
  sock.receive(window(3000));
  await tick();
  const after = sock.frames.slice(first.length);
  assert.equal(
    after.map((f) => f.id),
    [2, 2],
    'message 2, none of message 1',
  );
});

test('end() waits for queued fragments: the socket ends once the last one is written', async () => {
  const { fs, sock } = rig({}, FRAGMENTS);
  fs.message(FrameType.RESPONSE, 0, 1, Buffer.alloc(10_000), writeBytes);
  fs.end();
  assert.is(sock.ended, false);
  await tick();
  assert.is(sock.ended, false, 'fragments left, waiting for the window');
  assert.is(fs.isClosed, false);
  for (let i = 0; i < 10 && !sock.ended; i++) {
    sock.receive(window(3000));
    await tick();
  }
  assert.ok(sock.ended);
  assert.ok(fs.isClosed);
  const frames = sock.frames;
  assert.is(frames.reduce((n, f) => n + f.body.length, 0) >= 10_000, true, 'the whole message');
  assert.is(frames.at(-1)!.flags & Flag.MORE, 0, 'its last fragment');
  const queued = fs.queuedBytes;
  fs.signal(FrameType.PING, 1);
  assert.is(fs.queuedBytes, queued, 'nothing appended after the end');
  await tick();
  assert.is(sock.frames.length, frames.length, 'nothing written after the end');
});

test('end() with only small frames queued writes them and ends at once; fail() adds GOAWAY with its code', () => {
  const a = rig();
  a.fs.signal(FrameType.PING, 1);
  a.fs.end();
  assert.ok(a.sock.ended);
  assert.equal(kinds(a.sock.frames), [[FrameType.PING, 1]]);

  const b = rig();
  b.fs.fail(new RpcError(Code.INTERNAL, 'bad frame'));
  assert.ok(b.sock.ended);
  const goaway = b.sock.frames;
  assert.equal(kinds(goaway), [[FrameType.GOAWAY, 0]]);
  assert.is(goaway[0]!.body[4], Code.INTERNAL, 'the code after lastId');
});

test('destroy() reports onClose once, with the first error; nothing is written after it', async () => {
  const { fs, sock, closes } = rig();
  fs.signal(FrameType.PING, 1);
  fs.destroy(new RpcError(Code.UNAVAILABLE, 'first'));
  fs.destroy(new RpcError(Code.INTERNAL, 'second'));
  fs.fail(new RpcError(Code.INTERNAL, 'third'));
  fs.end(new RpcError(Code.INTERNAL, 'fourth'));
  assert.ok(sock.destroyed);
  await tick();
  await tick();
  assert.is(closes.length, 1);
  assert.is(closes[0]!.message, 'first');
  assert.is(sock.writes.length, 0, 'the PING queued before it is dropped');
  assert.ok(fs.isClosed);
});

test('the peer closing: onClose once, UNAVAILABLE, or the socket error that came first', () => {
  const a = rig();
  a.sock.close();
  assert.equal(
    a.closes.map((e) => [e.code, e.message]),
    [[Code.UNAVAILABLE, 'connection closed by peer']],
  );
  const b = rig();
  b.sock.close(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
  assert.is(b.closes.length, 1);
  assert.is(b.closes[0]!.code, Code.UNAVAILABLE);
  assert.match(b.closes[0]!.message, 'ECONNRESET');
});

test('afterWrites: called once the socket wrote every byte appended before it', async () => {
  const { fs, sock } = rig();
  let done = 0;
  fs.afterWrites(() => done++);
  assert.is(done, 1, 'nothing pending: at once');
  fs.message(FrameType.RESPONSE, 0, 1, Buffer.from('x'), writeBytes);
  fs.afterWrites(() => done++);
  await tick();
  assert.is(done, 1, 'handed to the socket, not yet written');
  sock.consume();
  assert.is(done, 2);
});

test.run();
