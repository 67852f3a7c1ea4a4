/**
 * Stream elements (DATA, SPEC.md section 13) travel like REQUEST/RESPONSE messages (section 12):
 * fragmented, compressed, reassembled, inflated, refused over `maxMessageBytes`, and for one id in
 * the order they were sent, behind one another and ahead of the id's END. Two FramedSockets on a
 * real loopback connection (and a raw peer for exact frames); no client or server above them.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { deflateRawSync } from 'node:zlib';
import { FramedSocket } from '../../src/connection/framed-socket.js';
import type { FramedSocketHandler, FramedSocketOptions } from '../../src/connection/framed-socket-options.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import type { Negotiated } from '../../src/framing/extensions.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FakeSocket, frameBytes, type SeenFrame } from '../helpers/fake-socket.js';
import { pattern } from '../helpers/large.js';

const test = suite('stream DATA: fragments and compression');

const writeBytes = (value: Buffer, buf: Buffer, pos: number): number => {
  if (pos + value.length > buf.length) return -(pos + value.length - buf.length);
  value.copy(buf, pos);
  return pos + value.length;
};
const writeNothing = (_v: null, _buf: Buffer, pos: number): number => pos;

/** What the handshake negotiated: fragments (the peer's P and W), and compression for the tests that want it. */
const FRAG: Negotiated = { peerPartialMessages: 4, peerWindowBytes: 1 << 20, compression: false, peerStreamWindow: 64 };
const BOTH: Negotiated = { ...FRAG, compression: true };

/** One side of a pair: its socket, and what its owner was handed. */
interface Side {
  fs: FramedSocket;
  frames: SeenFrame[];
  refused: { type: number; flags: number; id: number; error: RpcError }[];
  closes: RpcError[];
  bytesIn: number;
  /** Resolves once `n` frames (and refusals) in all were handed to the owner. */
  seen(n: number): Promise<void>;
}

function side(socket: Socket, options: Partial<FramedSocketOptions>, negotiated: Negotiated): Side {
  const waits: { n: number; resolve: () => void }[] = [];
  const s = { frames: [], refused: [], closes: [], bytesIn: 0 } as unknown as Side;
  const check = (): void => {
    const n = s.frames.length + s.refused.length;
    for (const w of waits.splice(0)) (n >= w.n ? w.resolve : () => waits.push(w))();
  };
  const handler: FramedSocketHandler = {
    onFrame: (type, flags, id, body) => {
      s.frames.push({ type, flags, id, body: Buffer.from(body) });
      check();
    },
    onRefused: (type, flags, id, error) => {
      s.refused.push({ type, flags, id, error });
      check();
    },
    onClose: (error) => {
      s.closes.push(error);
      for (const w of waits.splice(0)) w.resolve();
    },
  };
  s.fs = new FramedSocket(
    socket,
    {
      maxFrameBytes: 1 << 20,
      expectPreface: false,
      keepaliveMs: 0,
      keepaliveTimeoutMs: 1000,
      pauseReadsWhenBlocked: true,
      maxQueuedBytes: 1 << 26,
      fragmentBytes: 64 * 1024,
      maxMessageBytes: 8 << 20,
      maxPartialMessages: 4,
      fragmentWindowBytes: 1 << 20,
      interleaveWindowBytes: 256 * 1024,
      compressAboveBytes: 0,
      observer: {
        bytesReceived: (n) => {
          s.bytesIn += n;
        },
      },
      ...options,
    },
    handler,
  );
  s.fs.established(negotiated, options.maxFrameBytes ?? 1 << 20);
  s.seen = (n) =>
    s.frames.length + s.refused.length >= n || s.closes.length > 0 ? Promise.resolve() : new Promise((r) => waits.push({ n, resolve: r }));
  return s;
}

/** Two framed sockets on one loopback connection: `a` (the connecting one) and `b`. */
async function pair(
  aOptions: Partial<FramedSocketOptions> = {},
  bOptions: Partial<FramedSocketOptions> = {},
  aNegotiated: Negotiated = FRAG,
  bNegotiated: Negotiated = FRAG,
): Promise<{ a: Side; b: Side; close(): Promise<void> }> {
  const { server, accepted, port } = await listen();
  const socket = connect(port, '127.0.0.1');
  const [theirs] = await Promise.all([accepted, new Promise((r) => socket.once('connect', r))]);
  const a = side(socket, aOptions, aNegotiated);
  const b = side(theirs, bOptions, bNegotiated);
  return {
    a,
    b,
    close: async () => {
      socket.destroy();
      theirs.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

async function listen(): Promise<{ server: Server; accepted: Promise<Socket>; port: number }> {
  let accept!: (s: Socket) => void;
  const accepted = new Promise<Socket>((r) => (accept = r));
  const server = createServer((s) => accept(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, accepted, port: (server.address() as { port: number }).port };
}

test('a 1 MiB DATA goes in fragments and arrives whole, flagged as sent', async () => {
  const { a, b, close } = await pair();
  try {
    const data = pattern(1 << 20, 1);
    a.fs.message(FrameType.DATA, 0, 7, data, writeBytes);
    await b.seen(1);
    assert.is(b.frames.length, 1);
    const f = b.frames[0]!;
    assert.equal([f.type, f.flags, f.id], [FrameType.DATA, 0, 7]);
    assert.ok(f.body.equals(data), 'the element is whole and in order');
    assert.ok(b.fs.fragmentBytesReceived >= 1 << 20, 'it came in fragments');
    assert.equal(b.closes, []);
  } finally {
    await close();
  }
});

test('small frames overtake a large DATA of another id', async () => {
  const { a, b, close } = await pair();
  try {
    const data = pattern(4 << 20, 2);
    a.fs.message(FrameType.DATA, 0, 1, data, writeBytes);
    a.fs.message(FrameType.DATA, 0, 3, Buffer.from('small'), writeBytes);
    a.fs.message(FrameType.RESPONSE, 0, 5, Buffer.from('answer'), writeBytes);
    await b.seen(3);
    assert.equal(
      b.frames.map((f) => [f.type, f.id]),
      [
        [FrameType.DATA, 3],
        [FrameType.RESPONSE, 5],
        [FrameType.DATA, 1],
      ],
    );
    assert.ok(b.frames[2]!.body.equals(data));
  } finally {
    await close();
  }
});

test('a small DATA received makes our fragments shallow, as a small REQUEST or RESPONSE does', async () => {
  /** Fragment bytes a FakeSocket-backed side writes in its first turn after it received `frame`. */
  const firstTurn = async (frame: Buffer | undefined): Promise<number> => {
    const sock = new FakeSocket();
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
        interleaveWindowBytes: 2000,
        compressAboveBytes: 0,
        clock: new FakeClock(),
      },
      { onFrame: () => undefined, onClose: () => undefined, onRefused: () => undefined },
    );
    fs.established({ ...FRAG, peerWindowBytes: 64_000 }, 1 << 20);
    if (frame !== undefined) sock.receive(frame);
    fs.message(FrameType.DATA, 0, 1, Buffer.alloc(100_000), writeBytes);
    await new Promise((r) => process.nextTick(r));
    const sent = sock.frames.filter((f) => f.id === 1).reduce((n, f) => n + f.body.length, 0);
    fs.destroy(new RpcError(Code.CANCELLED, 'done'));
    return sent;
  };
  assert.is(await firstTurn(undefined), 64_000, 'alone: the whole window');
  assert.is(await firstTurn(frameBytes(FrameType.RESPONSE, 0, 3, Buffer.from('small'))), 2000, 'after a small RESPONSE: shallow');
  assert.is(await firstTurn(frameBytes(FrameType.DATA, 0, 3, Buffer.from('small'))), 2000, 'after a small DATA: shallow');
});

test('a compressed DATA inflates, and arrives without the COMPRESSED flag', async () => {
  const { a, b, close } = await pair({ compressAboveBytes: 1024 }, { compressAboveBytes: 1024 }, BOTH, BOTH);
  try {
    const data = Buffer.alloc(1 << 20, 'stream element ');
    a.fs.message(FrameType.DATA, 0, 9, data, writeBytes);
    await b.seen(1);
    const f = b.frames[0]!;
    assert.equal([f.type, f.flags, f.id], [FrameType.DATA, 0, 9]);
    assert.ok(f.body.equals(data));
    assert.ok(b.bytesIn < data.length / 10, `compressed on the wire (${b.bytesIn} bytes read)`);
  } finally {
    await close();
  }
});

test('a DATA over maxMessageBytes is refused through onRefused, declared or inflated, and the connection goes on', async () => {
  const { a, b, close } = await pair({}, { maxMessageBytes: 64 * 1024 }, FRAG, BOTH);
  try {
    a.fs.message(FrameType.DATA, 0, 11, pattern(200_000, 3), writeBytes);
    // Compressed by hand: a tiny frame that inflates past the limit.
    const bomb = deflateRawSync(Buffer.alloc(1 << 20));
    a.fs.messageBytes(FrameType.RESPONSE, 0, 99, Buffer.from('x'));
    a.fs.socket.write(frameBytes(FrameType.DATA, Flag.COMPRESSED, 13, bomb));
    a.fs.message(FrameType.DATA, 0, 15, Buffer.from('after'), writeBytes);
    await b.seen(4);
    assert.equal(
      b.refused.map((r) => [r.type, r.id, r.error.code]).sort((x, y) => x[1]! - y[1]!),
      [
        [FrameType.DATA, 11, Code.RESOURCE_EXHAUSTED],
        [FrameType.DATA, 13, Code.RESOURCE_EXHAUSTED],
      ],
    );
    assert.equal(
      b.frames.map((f) => f.id),
      [99, 15],
    );
    assert.equal(b.closes, []);
  } finally {
    await close();
  }
});

test('DATA of one id arrive in the order sent: large, large, small, then its END', async () => {
  const { a, b, close } = await pair();
  try {
    const one = pattern(1 << 20, 4);
    const two = pattern(300_000, 5);
    a.fs.message(FrameType.DATA, 0, 21, one, writeBytes);
    a.fs.message(FrameType.DATA, 0, 21, two, writeBytes);
    assert.ok(a.fs.isWriting(21));
    a.fs.message(FrameType.DATA, 0, 21, Buffer.from('three'), writeBytes);
    a.fs.frame(FrameType.END, 0, 21, null, writeNothing);
    await b.seen(4);
    assert.equal(
      b.frames.map((f) => [f.type, f.id, f.body.length]),
      [
        [FrameType.DATA, 21, one.length],
        [FrameType.DATA, 21, two.length],
        [FrameType.DATA, 21, 5],
        [FrameType.END, 21, 0],
      ],
    );
    assert.ok(b.frames[0]!.body.equals(one) && b.frames[1]!.body.equals(two));
    assert.not.ok(a.fs.isWriting(21));
    assert.equal(b.closes, []);
  } finally {
    await close();
  }
});

test('compressed DATA of one id, and what follows them, arrive in the order sent', async () => {
  const opts = { compressAboveBytes: 1024 };
  const { a, b, close } = await pair(opts, opts, BOTH, BOTH);
  try {
    const big = Buffer.alloc(2 << 20, 'first ');
    const mid = Buffer.alloc(4096, 'second ');
    a.fs.message(FrameType.DATA, 0, 31, big, writeBytes);
    a.fs.message(FrameType.DATA, 0, 31, mid, writeBytes);
    a.fs.message(FrameType.DATA, 0, 31, Buffer.from('third'), writeBytes);
    a.fs.frame(FrameType.END, 0, 31, null, writeNothing);
    await b.seen(4);
    assert.equal(
      b.frames.map((f) => [f.type, f.flags, f.body.length]),
      [
        [FrameType.DATA, 0, big.length],
        [FrameType.DATA, 0, mid.length],
        [FrameType.DATA, 0, 5],
        [FrameType.END, 0, 0],
      ],
    );
  } finally {
    await close();
  }
});

/** A FramedSocket fed by a raw loopback peer that writes exact frames. */
async function rawPeer(options: Partial<FramedSocketOptions> = {}): Promise<{ raw: Socket; b: Side; close(): Promise<void> }> {
  const { server, accepted, port } = await listen();
  const raw = connect(port, '127.0.0.1');
  raw.on('error', () => undefined);
  // Reads (and drops) what the side sends, so its end is seen.
  raw.resume();
  const theirs = await accepted;
  const b = side(theirs, options, BOTH);
  return {
    raw,
    b,
    close: async () => {
      raw.destroy();
      theirs.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

test('a receiver keeps the order of one id: plain frames wait behind its compressed DATA inflating, charged meanwhile', async () => {
  const account = { net: 0, charged: [] as number[] };
  const { raw, b, close } = await rawPeer({
    account: {
      reserve: (n) => ((account.net += n), true),
      charge: (n) => {
        account.net += n;
        account.charged.push(n);
      },
      frame: () => true,
      credit: (n) => {
        account.net -= n;
      },
    },
  });
  try {
    const big = Buffer.alloc(4 << 20, 'inflate me ');
    raw.write(
      Buffer.concat([
        frameBytes(FrameType.DATA, Flag.COMPRESSED, 41, deflateRawSync(big)),
        frameBytes(FrameType.DATA, 0, 41, Buffer.from('plain')),
        frameBytes(FrameType.DATA, Flag.COMPRESSED, 41, deflateRawSync(Buffer.from('small compressed'))),
        frameBytes(FrameType.END, 0, 41),
        frameBytes(FrameType.DATA, 0, 43, Buffer.from('other id')),
      ]),
    );
    await b.seen(5);
    assert.equal(
      b.frames.map((f) => [f.type, f.id, f.body.toString().slice(0, 16)]),
      [
        [FrameType.DATA, 43, 'other id'],
        [FrameType.DATA, 41, 'inflate me infla'],
        [FrameType.DATA, 41, 'plain'],
        [FrameType.DATA, 41, 'small compressed'],
        [FrameType.END, 41, ''],
      ],
    );
    assert.equal(account.charged, [5, 0], 'the plain DATA and the END were charged while they waited');
    assert.is(account.net, 0, 'and given back');
  } finally {
    await close();
  }
});

test('frames of one id beyond its window waiting behind an inflation are a protocol error', async () => {
  const { raw, b, close } = await rawPeer({ maxBufferedElements: 4 });
  try {
    const frames = [frameBytes(FrameType.DATA, Flag.COMPRESSED, 45, deflateRawSync(Buffer.alloc(8 << 20, 'slow ')))];
    // S = 4: four DATA and a few frames more may wait (8 in all); a ninth is a peer ignoring its credit.
    for (let i = 0; i < 8; i++) frames.push(frameBytes(FrameType.DATA, 0, 45, Buffer.from(`e${i}`)));
    raw.write(Buffer.concat(frames));
    await new Promise((r) => raw.once('close', r));
    await b.seen(Infinity);
    assert.is(b.closes.length, 1);
    assert.is(b.closes[0]!.code, Code.RESOURCE_EXHAUSTED);
    assert.match(b.closes[0]!.message, 'waiting behind its compressed messages');
    assert.equal(b.frames, [], 'nothing of the id was handed on');
  } finally {
    await close();
  }
});

test('discard(id) drops every queued DATA of the id, and the frames behind them', async () => {
  const { a, b, close } = await pair({}, {});
  try {
    for (let i = 0; i < 3; i++) a.fs.message(FrameType.DATA, 0, 51, pattern(1 << 20, i), writeBytes);
    a.fs.message(FrameType.DATA, 0, 51, Buffer.from('small'), writeBytes);
    a.fs.frame(FrameType.END, 0, 51, null, writeNothing);
    assert.ok(a.fs.isWriting(51));
    assert.equal(a.fs.discardUnstarted(), [], 'DATA are never unstarted calls');
    assert.is(a.fs.discard(51), 'unwritten');
    assert.not.ok(a.fs.isWriting(51));
    assert.is(a.fs.largeMessageBytes, 0);
    a.fs.message(FrameType.DATA, 0, 53, Buffer.from('marker'), writeBytes);
    await b.seen(1);
    // A round trip more: anything of id 51 would have come before the marker's answer.
    b.fs.message(FrameType.DATA, 0, 53, Buffer.from('ack'), writeBytes);
    await a.seen(1);
    assert.equal(
      b.frames.map((f) => f.id),
      [53],
    );
    assert.is(b.fs.fragmentBytesReceived, 0);
  } finally {
    await close();
  }
});

test('discard(id) after fragments went out cuts the rest: partial, and later DATA of the id are gone too', async () => {
  const { a, b, close } = await pair();
  try {
    a.fs.message(FrameType.DATA, 0, 61, pattern(4 << 20, 6), writeBytes);
    a.fs.message(FrameType.DATA, 0, 61, pattern(1 << 20, 7), writeBytes);
    // Wait until the first fragments arrived.
    while (b.fs.fragmentBytesReceived === 0) await new Promise((r) => setImmediate(r));
    assert.is(a.fs.discard(61), 'partial');
    b.fs.discard(61);
    assert.not.ok(a.fs.isWriting(61));
    a.fs.message(FrameType.DATA, 0, 63, Buffer.from('marker'), writeBytes);
    await b.seen(1);
    b.fs.message(FrameType.DATA, 0, 63, Buffer.from('ack'), writeBytes);
    await a.seen(1);
    assert.equal(
      b.frames.map((f) => f.id),
      [63],
    );
    assert.equal(b.closes, []);
  } finally {
    await close();
  }
});

test.run();
