import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import {
  Code,
  createServer,
  loadProtocol,
  parseProtocol,
  RpcError,
  type CallContext,
  type Protocol,
  type Server,
} from '../../src/index.js';
import { readErrorHead, readMetadata } from '../../src/framing/bodies.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import type { ServerOptions } from '../../src/server/server-options.js';
import { frameCode, requestBytes, until, type RawFrame, type RawPeer } from '../helpers/raw-peer.js';
import { creditFrame, emptyFrame, frameBytes, headFrame as streamHead, streamPeer, untilPong } from '../helpers/stream-raw.js';

/**
 * The server's side of streams (SPEC.md section 13) on real sockets, through a raw client peer that
 * sends exactly the frames under test: each kind's frame sequence, credit holding the producer,
 * errors mid-stream, cancel, limits, and response headers and trailers of a unary call.
 */
const test = suite('streams: server, raw peer');

const streamAvdl = fileURLToPath(new URL('../../../protocol/stream.avdl', import.meta.url));
let protocol: Protocol;
let server: Server | undefined;
const item = (id: number): Record<string, unknown> => ({ id, name: `item ${id}`, tags: [], score: id / 2, blob: Buffer.alloc(id % 7) });

/** What the handlers did. */
const seen = { produced: 0, finallyRan: 0, aborted: [] as string[], uploads: [] as unknown[] };

test.before(async () => {
  protocol = await loadProtocol(streamAvdl);
});

test.before.each(() => {
  seen.produced = 0;
  seen.finallyRan = 0;
  seen.aborted = [];
  seen.uploads = [];
});

test.after.each(async () => {
  await server?.close({ graceMs: 0 });
  server = undefined;
});

const handlers: ServerOptions['handlers'] = {
  watch: async function* (req: { from: number; count: number; failAfter: number }, ctx: CallContext) {
    ctx.signal.addEventListener('abort', () => seen.aborted.push((ctx.signal.reason as Error).message));
    ctx.responseHeader.kind = 'watch';
    try {
      for (let i = 0; i < req.count; i++) {
        if (i === req.failAfter) throw new RpcError(Code.ABORTED, 'stopped', { details: { reason: 'asked', after: i } });
        seen.produced++;
        yield item(req.from + i);
      }
      ctx.responseTrailer.produced = String(seen.produced);
    } finally {
      seen.finallyRan++;
    }
  },
  upload: async (requests: AsyncIterable<{ item: { blob: Buffer } }>, ctx: CallContext) => {
    let count = 0;
    let bytes = 0;
    for await (const r of requests) {
      seen.uploads.push(r);
      count++;
      bytes += r.item.blob.length;
    }
    ctx.responseTrailer.counted = String(count);
    return { count, bytes };
  },
  chat: async function* (requests: AsyncIterable<{ item: unknown }>) {
    for await (const r of requests) yield r.item;
  },
  echo: (req: { item: unknown }, ctx: CallContext) => {
    ctx.responseHeader.h = 'one';
    ctx.responseTrailer.t = 'two';
    return req.item;
  },
};

async function start(options: Partial<ServerOptions> = {}): Promise<number> {
  server = createServer({ protocol, handlers, ...options });
  return (await server.listen({ host: '127.0.0.1', port: 0 })).port;
}

const peerOf = (port: number, s = 4, as: Protocol = protocol): Promise<RawPeer> => streamPeer(port, as, s);
const frame = frameBytes;
const dataFrame = (id: number, value: unknown): Buffer =>
  frame(FrameType.DATA, 0, id, value, (v, b, p) => protocol.message('upload')!.request.encode(v, b, p));
const endFrame = (id: number): Buffer => emptyFrame(FrameType.END, id);
const cancelFrame = (id: number): Buffer => emptyFrame(FrameType.CANCEL, id);
const headFrame = (id: number, message: string): Buffer => streamHead(protocol, id, message);

const decodeItem = (f: RawFrame): { id: number } => protocol.message('watch')!.response.fromBuffer(f.body) as { id: number };

test('server stream: headers, DATA held by the credit, more after CREDIT, END with trailers', async () => {
  const peer = await peerOf(await start(), 4);
  peer.socket.write(requestBytes(protocol, 1, 'watch', { from: 10, count: 6, failAfter: -1 }));
  const headers = await peer.frame();
  assert.is(headers.type, FrameType.HEADERS);
  assert.equal(readMetadata(headers.body, 0, 1000)!.value, { kind: 'watch' });
  const first: RawFrame[] = [];
  for (let i = 0; i < 4; i++) first.push(await peer.frame());
  assert.equal(
    first.map((f) => [f.type, decodeItem(f).id]),
    [10, 11, 12, 13].map((id) => [FrameType.DATA, id]),
  );
  // The client's window is spent: the generator waits in its yield.
  assert.equal(await untilPong(peer), []);
  assert.is(seen.produced, 4);
  peer.socket.write(creditFrame(1, 5));
  const rest = [await peer.frame(), await peer.frame(), await peer.frame()];
  assert.equal(
    rest.map((f) => f.type),
    [FrameType.DATA, FrameType.DATA, FrameType.END],
  );
  assert.is(rest[2]!.flags, Flag.METADATA);
  assert.equal(readMetadata(rest[2]!.body, 0, 1000)!.value, { produced: '6' });
  assert.is(seen.finallyRan, 1);
  peer.destroy();
});

test('server stream: an error after N elements comes after them, with its code and declared value', async () => {
  const peer = await peerOf(await start(), 8);
  peer.socket.write(requestBytes(protocol, 3, 'watch', { from: 0, count: 5, failAfter: 2 }));
  const frames = [await peer.frame(), await peer.frame(), await peer.frame(), await peer.frame()];
  assert.equal(
    frames.map((f) => f.type),
    [FrameType.HEADERS, FrameType.DATA, FrameType.DATA, FrameType.ERROR],
  );
  const error = frames[3]!;
  assert.is(frameCode(error), Code.ABORTED);
  assert.ok((error.flags & Flag.DECLARED) !== 0);
  const head = readErrorHead(error.flags, error.body);
  const declared = protocol.message('watch')!.errors.fromBuffer(error.body.subarray(head.offset)) as Record<string, unknown>;
  assert.equal(JSON.parse(JSON.stringify(declared)), { reason: 'asked', after: 2 });
  peer.destroy();
});

test('client stream: head-only REQUEST, DATA, END; RESPONSE carries the trailers', async () => {
  const peer = await peerOf(await start(), 4);
  peer.socket.write(headFrame(5, 'upload'));
  for (let i = 0; i < 3; i++) peer.socket.write(dataFrame(5, { item: item(i + 1) }));
  peer.socket.write(endFrame(5));
  const answer = await peer.frame();
  assert.is(answer.type, FrameType.RESPONSE);
  assert.is(answer.flags, Flag.METADATA);
  const trailers = readMetadata(answer.body, 0, 1000)!;
  assert.equal(trailers.value, { counted: '3' });
  const summary = protocol.message('upload')!.response.fromBuffer(answer.body.subarray(trailers.end)) as { count: number; bytes: number };
  assert.equal({ ...summary }, { count: 3, bytes: 1 + 2 + 3 });
  peer.destroy();
});

test('bidi: every DATA answered as it arrives; END ends both sides', async () => {
  const peer = await peerOf(await start(), 4);
  peer.socket.write(headFrame(7, 'chat'));
  peer.socket.write(dataFrame(7, { item: item(1) }));
  assert.equal(decodeItem(await peer.frame()).id, 1);
  peer.socket.write(dataFrame(7, { item: item(2) }));
  assert.equal(decodeItem(await peer.frame()).id, 2);
  peer.socket.write(endFrame(7));
  const end = await peer.frame();
  assert.is(end.type, FrameType.END);
  assert.is(end.flags, 0);
  peer.destroy();
});

test('CANCEL mid-stream: the generator is closed (finally runs), its signal aborts, nothing more is sent', async () => {
  const peer = await peerOf(await start(), 2);
  peer.socket.write(requestBytes(protocol, 9, 'watch', { from: 0, count: 100, failAfter: -1 }));
  await peer.frame(); // HEADERS
  await peer.frame();
  await peer.frame();
  peer.socket.write(cancelFrame(9));
  peer.socket.write(creditFrame(9, 10));
  assert.equal(await untilPong(peer), []);
  await until(() => seen.finallyRan === 1, 'the generator closed');
  assert.equal(seen.aborted, ['call cancelled by the client']);
  assert.is(seen.produced, 2);
  peer.destroy();
});

test('DATA beyond the credit the server gave is a protocol error RESOURCE_EXHAUSTED', async () => {
  const peer = await peerOf(await start({ maxBufferedElements: 2, handlers: { ...handlers, upload: () => new Promise(() => {}) } }), 4);
  peer.socket.write(headFrame(5, 'upload'));
  for (let i = 0; i < 3; i++) peer.socket.write(dataFrame(5, { item: item(i) }));
  const goaway = await peer.frame();
  assert.is(goaway.type, FrameType.GOAWAY);
  assert.is(frameCode(goaway), Code.RESOURCE_EXHAUSTED);
  await peer.closed;
});

test('maxConcurrentStreams: a stream beyond it is refused RESOURCE_EXHAUSTED, flagged REFUSED', async () => {
  const peer = await peerOf(await start({ maxConcurrentStreams: 1 }), 1);
  peer.socket.write(requestBytes(protocol, 1, 'watch', { from: 0, count: 100, failAfter: -1 }));
  await peer.frame(); // HEADERS
  await peer.frame(); // DATA, then it waits for credit
  peer.socket.write(requestBytes(protocol, 3, 'watch', { from: 0, count: 1, failAfter: -1 }));
  const refused = await peer.frame();
  assert.is(refused.type, FrameType.ERROR);
  assert.is(refused.id, 3);
  assert.is(frameCode(refused), Code.RESOURCE_EXHAUSTED);
  assert.ok((refused.flags & Flag.REFUSED) !== 0);
  peer.destroy();
});

test('a stream REQUEST on a connection that did not negotiate streams: FAILED_PRECONDITION, REFUSED', async () => {
  const peer = await peerOf(await start(), 0);
  peer.socket.write(requestBytes(protocol, 1, 'watch', { from: 0, count: 1, failAfter: -1 }));
  const refused = await peer.frame();
  assert.is(frameCode(refused), Code.FAILED_PRECONDITION);
  assert.ok((refused.flags & Flag.REFUSED) !== 0);
  assert.is(seen.produced, 0);
  peer.destroy();
});

test('a message that is a stream on one side only: FAILED_PRECONDITION before any handler runs', async () => {
  const unary = parseProtocol(protocol.text.replace('"stream":"server"', '"idempotent":false'));
  const peer = await peerOf(await start(), 4, unary);
  peer.socket.write(requestBytes(unary, 1, 'watch', { from: 0, count: 1, failAfter: -1 }));
  const refused = await peer.frame();
  assert.is(frameCode(refused), Code.FAILED_PRECONDITION);
  assert.match(readErrorHead(refused.flags, refused.body).message, /stream/);
  assert.is(seen.produced, 0);
  peer.destroy();
});

test('an idle stream ends CANCELLED and its handler sees its signal abort', async () => {
  let aborted = '';
  const port = await start({
    streamIdleTimeoutMs: 50,
    handlers: {
      ...handlers,
      upload: (_requests: AsyncIterable<unknown>, ctx: CallContext) =>
        new Promise((_, reject) =>
          ctx.signal.addEventListener('abort', () => ((aborted = String(ctx.signal.reason)), reject(ctx.signal.reason))),
        ),
    },
  });
  const peer = await peerOf(port, 4);
  peer.socket.write(headFrame(5, 'upload'));
  const error = await peer.frame();
  assert.is(error.type, FrameType.ERROR);
  assert.is(frameCode(error), Code.CANCELLED);
  await until(() => aborted !== '', 'the handler saw the abort');
  assert.match(aborted, /idle/);
  peer.destroy();
});

test('unary call: HEADERS before the RESPONSE, trailers in its METADATA map', async () => {
  const peer = await peerOf(await start(), 4);
  peer.socket.write(requestBytes(protocol, 1, 'echo', { item: item(3) }));
  const headers = await peer.frame();
  assert.is(headers.type, FrameType.HEADERS);
  assert.equal(readMetadata(headers.body, 0, 100)!.value, { h: 'one' });
  const response = await peer.frame();
  assert.is(response.flags, Flag.METADATA);
  const trailers = readMetadata(response.body, 0, 100)!;
  assert.equal(trailers.value, { t: 'two' });
  assert.is((protocol.message('echo')!.response.fromBuffer(response.body.subarray(trailers.end)) as { id: number }).id, 3);
  peer.destroy();
});

test('unary call from a client without streams: a plain RESPONSE, no HEADERS', async () => {
  const peer = await peerOf(await start(), 0);
  peer.socket.write(requestBytes(protocol, 1, 'echo', { item: item(3) }));
  const response = await peer.frame();
  assert.is(response.type, FrameType.RESPONSE);
  assert.is(response.flags, 0);
  peer.destroy();
});

test('connection loss closes every open stream: generators finish, signals abort', async () => {
  const peer = await peerOf(await start(), 1);
  peer.socket.write(requestBytes(protocol, 1, 'watch', { from: 0, count: 100, failAfter: -1 }));
  peer.socket.write(requestBytes(protocol, 3, 'watch', { from: 0, count: 100, failAfter: -1 }));
  for (let i = 0; i < 4; i++) await peer.frame();
  peer.destroy();
  await until(() => seen.finallyRan === 2, 'both generators closed');
  assert.is(seen.aborted.length, 2);
});

test('authorize refuses a stream before its handler runs: PERMISSION_DENIED, REFUSED, and its slot is free', async () => {
  const port = await start({ maxConcurrentStreams: 1, authorize: (_p, message) => message !== 'watch' });
  const peer = await peerOf(port, 4);
  peer.socket.write(requestBytes(protocol, 1, 'watch', { from: 0, count: 1, failAfter: -1 }));
  const denied = await peer.frame();
  assert.is(frameCode(denied), Code.PERMISSION_DENIED);
  assert.ok((denied.flags & Flag.REFUSED) !== 0);
  assert.is(seen.produced, 0);
  // The denied stream gave its slot back: a permitted one runs.
  peer.socket.write(headFrame(3, 'chat'));
  peer.socket.write(dataFrame(3, { item: item(4) }));
  assert.is(decodeItem(await peer.frame()).id, 4);
  peer.destroy();
});

test('server interceptors run around stream handlers (and may wrap their responses)', async () => {
  const port = await start({
    interceptors: [
      async (request, ctx, next) => {
        const result = await next(request);
        if (ctx.message !== 'watch') return result;
        return (async function* () {
          for await (const x of result as AsyncIterable<{ id: number }>) yield { ...x, name: 'intercepted' };
        })();
      },
    ],
  });
  const peer = await peerOf(port, 4);
  peer.socket.write(requestBytes(protocol, 1, 'watch', { from: 0, count: 1, failAfter: -1 }));
  await peer.frame(); // HEADERS
  const data = await peer.frame();
  assert.is((protocol.message('watch')!.response.fromBuffer(data.body) as { name: string }).name, 'intercepted');
  peer.destroy();
});

test('graceful close: an open stream goes on after GOAWAY until it ends, then the connection closes', async () => {
  const peer = await peerOf(await start(), 1);
  peer.socket.write(requestBytes(protocol, 1, 'watch', { from: 0, count: 3, failAfter: -1 }));
  await peer.frame(); // HEADERS
  await peer.frame(); // DATA 0
  const closing = server!.close({ graceMs: 10_000 });
  const goaway = await peer.frame();
  assert.is(goaway.type, FrameType.GOAWAY);
  assert.is(frameCode(goaway), Code.OK);
  peer.socket.write(creditFrame(1, 5));
  const rest = await peer.rest();
  assert.equal(
    rest.map((f) => f.type),
    [FrameType.DATA, FrameType.DATA, FrameType.END],
  );
  await closing;
  server = undefined;
});

test('request elements the handler has not taken count against the memory budget until taken or cancelled', async () => {
  let requests: AsyncIterator<unknown> | undefined;
  const port = await start({
    handlers: {
      ...handlers,
      upload: (r: AsyncIterable<unknown>, ctx: CallContext) => {
        requests = r[Symbol.asyncIterator]();
        return new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
      },
    },
  });
  const peer = await peerOf(port, 4);
  const before = server!.bufferedBytes;
  peer.socket.write(headFrame(5, 'upload'));
  const big = { item: { ...item(1), blob: Buffer.alloc(20_000) } };
  peer.socket.write(dataFrame(5, big));
  peer.socket.write(dataFrame(5, big));
  await until(() => server!.bufferedBytes - before >= 40_000, 'the elements are counted');
  await requests!.next();
  await until(() => server!.bufferedBytes - before < 40_000 && server!.bufferedBytes - before >= 20_000, 'a taken element is not');
  peer.socket.write(cancelFrame(5));
  await until(() => server!.bufferedBytes - before < 20_000, 'a cancelled stream holds nothing');
  peer.destroy();
});

test('metrics: stream elements by message and direction', async () => {
  const counts: string[] = [];
  const port = await start({ observer: { streamElement: (message, direction) => counts.push(`${message} ${direction}`) } });
  const peer = await peerOf(port, 4);
  peer.socket.write(headFrame(7, 'chat'));
  peer.socket.write(dataFrame(7, { item: item(1) }));
  peer.socket.write(endFrame(7));
  for (;;) if ((await peer.frame()).type === FrameType.END) break;
  assert.equal(counts, ['chat received', 'chat sent']);
  peer.destroy();
});

test('protocol evolution: request elements are read through schema resolution from the client protocol', async () => {
  // The client's Item has one more field, with a default: the server skips it; the client reads the server's Items with its default.
  const json = JSON.parse(protocol.text) as { types: { name: string; fields: unknown[] }[] };
  json.types.find((t) => t.name === 'Item')!.fields.push({ name: 'extra', type: 'string', default: 'none' });
  const newer = parseProtocol(JSON.stringify(json));
  const peer = await peerOf(await start(), 4, newer);
  peer.socket.write(frame(FrameType.REQUEST, 0, 7, newer.message('chat')!.index, (i, b, p) => (b.writeUInt16BE(i, p), p + 2)));
  const element = { item: { ...item(5), extra: 'sent by a newer client' } };
  peer.socket.write(frame(FrameType.DATA, 0, 7, element, (v, b, p) => newer.message('chat')!.request.encode(v, b, p)));
  const answer = await peer.frame();
  assert.is(answer.type, FrameType.DATA);
  const read = newer.message('chat')!.response.createResolver(protocol.message('chat')!.response);
  const echoed = newer.message('chat')!.response.fromBuffer(answer.body, read) as { id: number; extra: string };
  assert.is(echoed.id, 5);
  assert.is(echoed.extra, 'none');
  peer.destroy();
});

test.run();
