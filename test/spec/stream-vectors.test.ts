import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createServer, loadProtocol, type CallContext, type Protocol, type Server } from '../../src/index.js';
import { FrameType, PREFACE } from '../../src/framing/frame.js';
import { rawFrame } from '../helpers/raw-client.js';
import { RawPeer, frameCode, until } from '../helpers/raw-peer.js';
import { repoPath } from '../helpers/repo.js';
import { streamVectors, vectorItem, type StreamVector } from './stream-vectors.js';

/**
 * SPEC.md section 13.11: a raw client plays the client's frames of each stream vector to a real
 * server running the handlers the section describes, and checks that every server frame is exactly
 * the vector's, in order.
 */
const test = suite('spec: stream test vectors');
const v = streamVectors();
let protocol: Protocol;
let server: Server | undefined;
let peer: RawPeer | undefined;

/** What the handlers did, and how the test steers them. */
const state = {
  /** Elements `watch` made so far (counted before each `yield`). */
  produced: 0,
  /** Times a `watch` generator ran its `finally`. */
  finished: 0,
  /** Whether the last `watch` saw its signal abort. */
  aborted: false,
  /** Awaited by `watch` before each element but the first; resolves at once unless a test sets it. */
  pause: (_ctx: CallContext): Promise<void> => Promise.resolve(),
  /** `upload` waits for its signal before reading anything. */
  stallUpload: false,
};

type Item = ReturnType<typeof vectorItem>;

const handlers = {
  watch: async function* (req: { from: number; count: number; failAfter: number }, ctx: CallContext) {
    ctx.signal.addEventListener('abort', () => (state.aborted = true));
    ctx.responseHeader.stage = 'start';
    try {
      for (let i = 0; i < req.count; i++) {
        if (i === req.failAfter) {
          ctx.responseTrailer.count = String(i);
          throw new RpcError(Code.ABORTED, 'stop', { details: { reason: 'stop', after: i } });
        }
        if (i > 0) await state.pause(ctx);
        state.produced++;
        yield vectorItem(req.from + i);
      }
      ctx.responseTrailer.count = String(req.count);
    } finally {
      state.finished++;
    }
  },
  upload: async (requests: AsyncIterable<{ item: Item }>, ctx: CallContext) => {
    if (state.stallUpload) await aborted(ctx);
    let count = 0;
    let bytes = 0;
    for await (const { item } of requests) {
      count++;
      bytes += item.blob.length;
    }
    ctx.responseTrailer.count = String(count);
    return { count, bytes };
  },
  chat: async function* (requests: AsyncIterable<{ item: Item }>) {
    for await (const { item } of requests) yield item;
  },
  echo: (req: { item: Item }, ctx: CallContext) => {
    ctx.responseHeader.stage = 'start';
    ctx.responseTrailer.count = '1';
    return req.item;
  },
};

function aborted(ctx: CallContext): Promise<void> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/stream.avdl'));
});

test.before.each(() => {
  Object.assign(state, { produced: 0, finished: 0, aborted: false, pause: () => Promise.resolve(), stallUpload: false });
});

test.after.each(async () => {
  peer?.destroy();
  peer = undefined;
  await server?.close({ graceMs: 100 });
  server = undefined;
});

/** A real server with the section's handlers, and a raw peer connected to it. */
async function connect(): Promise<RawPeer> {
  server = createServer({ protocol, handlers });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  peer = await RawPeer.connect(port);
  return peer;
}

/**
 * Plays `vector` on `p`: writes the client's frames, reads one frame for each of the server's and
 * compares its bytes. `before(i)` runs before frame i is played.
 */
async function play(p: RawPeer, vector: StreamVector, before?: (i: number) => Promise<void>): Promise<void> {
  if (vector.preface) p.socket.write(PREFACE);
  for (const [i, f] of vector.frames.entries()) {
    await before?.(i);
    if (f.from === 'client') p.socket.write(f.bytes);
    else assert.is((await p.reader.frame()).toString('hex'), f.bytes.toString('hex'), `server frame ${i} of the vector`);
  }
}

/** Sends PING `id` and checks that the next frame the server sends is its PONG. */
async function nothingBefore(p: RawPeer, id: number, what: string): Promise<void> {
  p.socket.write(rawFrame(FrameType.PING, 0, id, null));
  const f = await p.frame();
  assert.equal([f.type, f.id], [FrameType.PONG, id], what);
}

test('protocol/stream.avpr is the protocol text of the vectors: its MD5 is their fingerprint', () => {
  const text = readFileSync(repoPath('protocol/stream.avpr'));
  assert.is(text.length, 1580);
  const hello = v.handshake.frames[0]!.bytes;
  assert.is(createHash('md5').update(text).digest('hex'), hello.subarray(10, 26).toString('hex'));
  assert.is(protocol.text, text.toString('utf8'));
  assert.equal(
    protocol.messages.map((m) => [m.name, m.stream ?? 'unary']),
    [
      ['watch', 'server'],
      ['upload', 'client'],
      ['chat', 'bidi'],
      ['echo', 'unary'],
    ],
  );
});

test('the handshake: a HELLO offering S = 64 gets the WELCOME of the vector', async () => {
  await play(await connect(), v.handshake);
});

test('a server stream: HEADERS, two DATA, END with trailers, exactly as the vector', async () => {
  const p = await connect();
  await play(p, v.handshake);
  await play(p, v.serverStream);
  await nothingBefore(p, 0x51, 'nothing more for the stream');
});

test('a client stream: the REQUEST head only, two DATA, END; RESPONSE with its trailers, exactly as the vector', async () => {
  const p = await connect();
  await play(p, v.handshake);
  await play(p, v.clientStream);
  await nothingBefore(p, 0x52, 'nothing more for the stream (no CREDIT for 2 of S = 64)');
});

test('a bidi stream: each response after its request, then END both ways, exactly as the vector', async () => {
  const p = await connect();
  await play(p, v.handshake);
  await play(p, v.bidi);
  await nothingBefore(p, 0x53, 'nothing more for the stream');
});

test('a cancelled stream: after the CANCEL the server sends nothing more for it, and closes its handler', async () => {
  const p = await connect();
  state.pause = aborted;
  await play(p, v.handshake);
  await play(p, v.cancelled);
  assert.ok(state.aborted, "the handler's signal aborted");
  // The handler made its second element after the abort: it must not be sent.
  await until(() => state.finished === 1, 'the generator was closed');
  assert.is(state.produced, 2, 'the handler went on to make its second element');
  await nothingBefore(p, 0x54, 'no DATA, END or ERROR for the cancelled id');
});

test('an error mid-stream: one DATA, then the ERROR with the declared StreamError and the trailers, exactly as the vector', async () => {
  const p = await connect();
  await play(p, v.handshake);
  await play(p, v.errorMidStream);
  await nothingBefore(p, 0x55, 'nothing more for the stream');
});

test('a unary call gets HEADERS and a RESPONSE with its trailers, exactly as the vector', async () => {
  const p = await connect();
  await play(p, v.handshake);
  await play(p, v.unary);
});

test('credit: with the client S = 2 the server sends two DATA, asks its handler for no third until the CREDIT', async () => {
  const p = await connect();
  const creditAt = v.credit.frames.findIndex((f) => f.bytes[4] === FrameType.CREDIT);
  assert.ok(creditAt > 0, 'the vector has a CREDIT');
  await play(p, v.credit, async (i) => {
    // The vector leaves the WELCOME out: it is the one of the handshake vector (the server's S is 64).
    if (i === 1) assert.is((await p.reader.frame()).toString('hex'), v.handshake.frames[1]!.bytes.toString('hex'), 'the WELCOME');
    if (i !== creditAt) return;
    await nothingBefore(p, 0x56, 'no third DATA before the CREDIT');
    assert.is(state.produced, 2, 'the handler was not asked for a third element');
  });
});

test('the exact credit check: 64 DATA of S = 64 are taken, a 65th is GOAWAY RESOURCE_EXHAUSTED, then close', async () => {
  const p = await connect();
  state.stallUpload = true;
  await play(p, v.handshake);
  const [request, data] = v.clientStream.frames;
  p.socket.write(Buffer.concat([request!.bytes, ...Array.from({ length: 64 }, () => data!.bytes)]));
  await nothingBefore(p, 0x57, 'S DATA are within the credit');
  p.socket.write(data!.bytes);
  const rest = await p.rest();
  assert.equal(
    rest.map((f) => [f.type, frameCode(f)]),
    [[FrameType.GOAWAY, Code.RESOURCE_EXHAUSTED]],
  );
});

test.run();
