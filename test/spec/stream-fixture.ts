/**
 * Test fixture for the stream suites of test/spec: a real server running the handlers SPEC.md section
 * 13.11 describes (which the vectors depend on), raw peers connected to it, and a player of vectors.
 * Everything opened is closed after each test.
 */
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Code,
  RpcError,
  createServer,
  loadProtocol,
  type CallContext,
  type Protocol,
  type Server,
  type ServerOptions,
} from '../../src/index.js';
import { FrameType, PREFACE } from '../../src/framing/frame.js';
import { rawFrame } from '../helpers/raw-client.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { repoPath } from '../helpers/repo.js';
import { vectorItem, type StreamVector } from './stream-vectors.js';

type Item = ReturnType<typeof vectorItem>;

/** What the handlers did, and how a test steers them; reset before each test. */
export interface HandlerState {
  /** Elements `watch` made so far (counted before each `yield`). */
  produced: number;
  /** Times a `watch` generator ran its `finally`. */
  finished: number;
  /** Whether a handler saw its signal abort. */
  aborted: boolean;
  /** Handlers that started, by message name. */
  started: string[];
  /** Awaited by `watch` before each element but the first; resolves at once unless a test sets it. */
  pause: (ctx: CallContext) => Promise<void>;
  /** `upload` waits for its signal before reading anything. */
  stallUpload: boolean;
  /** `upload` returns after this many elements (Infinity: reads them all). */
  uploadTakes: number;
  /** Error `upload` ends with, if any. */
  uploadError: unknown;
}

/** Resolves once `ctx.signal` aborts. */
export function aborted(ctx: CallContext): Promise<void> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

function handlers(state: HandlerState): ServerOptions['handlers'] {
  const seen = (name: string, ctx: CallContext): void => {
    state.started.push(name);
    ctx.signal.addEventListener('abort', () => (state.aborted = true));
  };
  return {
    watch: async function* (req: { from: number; count: number; failAfter: number }, ctx: CallContext) {
      seen('watch', ctx);
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
      seen('upload', ctx);
      if (state.stallUpload) await aborted(ctx);
      let count = 0;
      let bytes = 0;
      for await (const { item } of requests) {
        count++;
        bytes += item.blob.length;
        if (count >= state.uploadTakes) break;
      }
      if (state.uploadError !== undefined) throw state.uploadError;
      ctx.responseTrailer.count = String(count);
      return { count, bytes };
    },
    chat: async function* (requests: AsyncIterable<{ item: Item }>, ctx: CallContext) {
      seen('chat', ctx);
      for await (const { item } of requests) yield item;
    },
    echo: (req: { item: Item }, ctx: CallContext) => {
      seen('echo', ctx);
      ctx.responseHeader.stage = 'start';
      ctx.responseTrailer.count = '1';
      return req.item;
    },
  };
}

/** What {@link streamFixture} gives a suite. */
export interface StreamFixture {
  readonly state: HandlerState;
  readonly protocol: Protocol;
  /** A real server with the section's handlers (plus `options`), and a raw peer connected to it. */
  connect(options?: Partial<ServerOptions>): Promise<{ peer: RawPeer; server: Server }>;
}

/** Registers `test`'s hooks: load protocol/stream.avdl once, reset the state before each test, close all after each. */
export function streamFixture(test: Test): StreamFixture {
  const state = {} as HandlerState;
  let protocol: Protocol | undefined;
  const servers: Server[] = [];
  const peers: RawPeer[] = [];
  test.before(async () => {
    protocol = await loadProtocol(repoPath('protocol/stream.avdl'));
  });
  test.before.each(() => {
    const fresh: HandlerState = {
      produced: 0,
      finished: 0,
      aborted: false,
      started: [],
      pause: () => Promise.resolve(),
      stallUpload: false,
      uploadTakes: Infinity,
      uploadError: undefined,
    };
    Object.assign(state, fresh);
  });
  test.after.each(async () => {
    for (const peer of peers.splice(0)) peer.destroy();
    await Promise.all(servers.splice(0).map((server) => server.close({ graceMs: 100 })));
  });
  return {
    state,
    get protocol() {
      if (protocol === undefined) throw new Error('protocol not loaded yet');
      return protocol;
    },
    async connect(options = {}) {
      const server = createServer({ protocol: protocol!, handlers: handlers(state), ...options });
      servers.push(server);
      const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
      const peer = await RawPeer.connect(port);
      peers.push(peer);
      return { peer, server };
    },
  };
}

/**
 * Plays `vector` on `p`: writes the client's frames, reads one frame for each of the server's and
 * compares its bytes. `before(i)` runs before frame i is played.
 */
export async function play(p: RawPeer, vector: StreamVector, before?: (i: number) => Promise<void>): Promise<void> {
  if (vector.preface) p.socket.write(PREFACE);
  for (const [i, f] of vector.frames.entries()) {
    await before?.(i);
    if (f.from === 'client') p.socket.write(f.bytes);
    else assert.is((await p.reader.frame()).toString('hex'), f.bytes.toString('hex'), `server frame ${i} of the vector`);
  }
}

/**
 * Sends PING `id` and checks that the next frame the server sends is its PONG: the server handles a
 * connection's frames in order, so nothing before the PONG means it sent nothing for what came first.
 */
export async function nothingBefore(p: RawPeer, id: number, what: string): Promise<void> {
  p.socket.write(rawFrame(FrameType.PING, 0, id, null));
  const f = await p.frame();
  assert.equal([f.type, f.id], [FrameType.PONG, id], what);
}
