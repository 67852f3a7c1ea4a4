/**
 * Streams through the gRPC bridge, with real grpc-js clients (avsc serializers): server, client and
 * bidi streams run the same handlers as on the avrpc port, with headers, trailers, errors in the
 * status, cancellation both ways, deadlines, and backpressure each way (counts, not timings).
 */
import * as grpc from '@grpc/grpc-js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createServer, parseProtocol, type CallContext, type Server, type ServerOptions } from '../../src/index.js';
import { ERROR_BIN_KEY, ERROR_TYPE_KEY } from '../../src/server/grpc/grpc-bridge.js';
import { chat, echo, streamIdl, upload, watch } from '../helpers/stream-worker-handlers.js';
import { avroClient, methodOf, rawClient, readStream } from './grpc-client.js';

const test = suite('grpc bridge streams');

const protocol = parseProtocol(streamIdl);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const servers: Server[] = [];
const clients: grpc.Client[] = [];

interface Item {
  id: number;
  name: string;
  note: string;
}

type ServerStreamFn = (req: unknown, md?: grpc.Metadata, opts?: grpc.CallOptions) => grpc.ClientReadableStream<Item>;
type ClientStreamFn = (md: grpc.Metadata, cb: (err: grpc.ServiceError | null, v?: unknown) => void) => grpc.ClientWritableStream<unknown>;
type BidiFn = (md?: grpc.Metadata, opts?: grpc.CallOptions) => grpc.ClientDuplexStream<unknown, Item>;

async function start(options: Partial<ServerOptions> = {}): Promise<grpc.Client> {
  const server = createServer({ protocol, handlers: { watch, upload, chat, echo }, grpc: { port: 0 }, logger: quiet, ...options });
  servers.push(server);
  const { grpc: g } = await server.listen({ host: '127.0.0.1', port: 0 });
  const c = avroClient(protocol, g!.port);
  clients.push(c);
  return c;
}

const item = (id: number, name: string): { item: Item } => ({ item: { id, name, note: 'n' } });

/** Polls `read` until it stops changing for a few turns (bounded): how far a producer got while held back. */
async function settled(read: () => number): Promise<number> {
  let last = -1;
  let same = 0;
  for (let i = 0; i < 400 && same < 10; i++) {
    await new Promise((r) => setTimeout(r, 10));
    const now = read();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}

test.after.each(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 100 })));
});

test('server stream: elements in order, then OK with the handler headers and trailers', async () => {
  const c = await start();
  const r = await readStream(methodOf<ServerStreamFn>(c, 'watch')({ from: 10, count: 5, failAfter: -1, tag: 's' }));
  assert.is(r.error, undefined, String(r.error));
  assert.equal(
    r.items.map((i) => (i as Item).id),
    [10, 11, 12, 13, 14],
  );
  assert.is(r.headers?.get('thread')[0], '0');
  assert.is(r.status?.code, grpc.status.OK);
  assert.is(r.status?.metadata.get('produced')[0], '5');
});

test('server stream: an error after N elements is the status, its declared error in the trailers', async () => {
  const c = await start();
  const r = await readStream(methodOf<ServerStreamFn>(c, 'watch')({ from: 0, count: 5, failAfter: 2, tag: 'e' }));
  assert.is(r.items.length, 2);
  assert.is(r.error?.code, grpc.status.ABORTED);
  assert.is(r.error?.details, 'stopped');
  const md = r.status!.metadata;
  assert.is(md.get(ERROR_TYPE_KEY)[0], 'avrpc.wstream.StreamError');
  const details = protocol.type('avrpc.wstream.StreamError')!.fromBuffer(md.get(ERROR_BIN_KEY)[0] as Buffer) as {
    reason: string;
    after: number;
  };
  assert.equal({ reason: details.reason, after: Number(details.after) }, { reason: 'asked', after: 2 });
  assert.is(md.get('thread')[0], '0', 'the trailers the handler set go with the error');
});

test('client stream: the handler reads every element; its response, header and trailer', async () => {
  const c = await start();
  let headers: grpc.Metadata | undefined;
  let status: grpc.StatusObject | undefined;
  const value = await new Promise<unknown>((resolve, reject) => {
    const call = methodOf<ClientStreamFn>(c, 'upload')(new grpc.Metadata(), (err, v) => (err === null ? resolve(v) : reject(err)));
    call.on('metadata', (md: grpc.Metadata) => (headers = md));
    call.on('status', (s: grpc.StatusObject) => (status = s));
    for (const name of ['a', 'b', 'c']) call.write(item(1, name));
    call.end();
  });
  assert.equal({ ...(value as object) }, { count: 3, names: 'a:n,b:n,c:n', threadId: 0 });
  assert.is(headers?.get('thread')[0], '0');
  await new Promise((r) => setImmediate(r));
  assert.is(status?.metadata.get('counted')[0], '3');
});

test('client stream: a handler failure is the status; an element that does not decode INVALID_ARGUMENT', async () => {
  const c = await start();
  const err = await new Promise<grpc.ServiceError>((resolve) => {
    const call = methodOf<ClientStreamFn>(c, 'upload')(new grpc.Metadata(), (e) => resolve(e!));
    call.write(item(1, 'a'));
    call.write(item(2, 'fail'));
    call.end();
  });
  assert.is(err.code, grpc.status.ABORTED);
  assert.is(err.metadata.get(ERROR_TYPE_KEY)[0], 'avrpc.wstream.StreamError');
  const raw = rawClient(Number(c.getChannel().getTarget().split(':').pop()));
  clients.push(raw);
  const bad = await new Promise<grpc.ServiceError | null>((resolve) => {
    const call = raw.makeClientStreamRequest(
      `/${protocol.name}/upload`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      (e) => resolve(e),
    );
    call.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    call.end();
  });
  assert.is(bad?.code, grpc.status.INVALID_ARGUMENT);
});

test('bidi stream: each element answered as it arrives, in order; OK once the client ends', async () => {
  const c = await start();
  const call = methodOf<BidiFn>(c, 'chat')();
  const done = readStream(call);
  const answers: string[] = [];
  for (const name of ['a', 'b', 'c']) {
    const next = new Promise<Item>((resolve) => call.once('data', resolve));
    call.write(item(answers.length, name));
    // One answer per element, before the next is sent: the handler is fed as elements come.
    answers.push((await next).name);
  }
  call.end();
  const r = await done;
  assert.equal(answers, ['a!', 'b!', 'c!']);
  assert.is(r.status?.code, grpc.status.OK);
  assert.is(r.status?.metadata.get('thread')[0], '0');
});

test('a client cancel of a server or bidi stream aborts the handler (CANCELLED) and closes its generator', async () => {
  const seen: Array<[string, unknown]> = [];
  const endless = (tag: string) =>
    async function* (_r: unknown, ctx: CallContext) {
      ctx.signal.addEventListener('abort', () => seen.push([`${tag} abort`, (ctx.signal.reason as RpcError).code]));
      try {
        for (let i = 0; ; i++) yield { id: i, name: tag, note: '' };
      } finally {
        seen.push([`${tag} finally`, 0]);
      }
    };
  const c = await start({ handlers: { watch: endless('watch'), chat: endless('chat'), upload, echo } });
  const s = methodOf<ServerStreamFn>(c, 'watch')({ from: 0, count: 0, failAfter: -1, tag: '' });
  s.once('data', () => s.cancel());
  const b = methodOf<BidiFn>(c, 'chat')();
  b.once('data', () => b.cancel());
  const [rs, rb] = await Promise.all([readStream(s), readStream(b)]);
  assert.is(rs.error?.code, grpc.status.CANCELLED);
  assert.is(rb.error?.code, grpc.status.CANCELLED);
  await settled(() => seen.length);
  for (const tag of ['watch', 'chat']) {
    assert.ok(
      seen.some(([e, code]) => e === `${tag} abort` && code === Code.CANCELLED),
      JSON.stringify(seen),
    );
    assert.ok(
      seen.some(([e]) => e === `${tag} finally`),
      JSON.stringify(seen),
    );
  }
});

test('a stream past its gRPC deadline ends DEADLINE_EXCEEDED and aborts its handler', async () => {
  let reason: unknown;
  const c = await start({
    handlers: {
      async *watch(_r: unknown, ctx: CallContext) {
        yield { id: 1, name: 'first', note: '' };
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
        reason = ctx.signal.reason;
      },
      upload,
      chat,
      echo,
    },
  });
  const r = await readStream(
    methodOf<ServerStreamFn>(c, 'watch')({ from: 0, count: 0, failAfter: -1, tag: '' }, new grpc.Metadata(), {
      deadline: Date.now() + 300,
    }),
  );
  assert.is(r.items.length, 1);
  assert.is(r.error?.code, grpc.status.DEADLINE_EXCEEDED);
  await settled(() => (reason === undefined ? 0 : 1));
  assert.is((reason as RpcError).code, Code.DEADLINE_EXCEEDED);
});

test('backpressure out: a client that stops reading holds the handler generator in its yield', async () => {
  let produced = 0;
  const big = 'x'.repeat(16 * 1024);
  const c = await start({
    handlers: {
      async *watch() {
        for (let i = 0; i < 100_000; i++) {
          produced++;
          yield { id: i, name: big, note: '' };
        }
      },
      upload,
      chat,
      echo,
    },
  });
  const s = methodOf<ServerStreamFn>(c, 'watch')({ from: 0, count: 0, failAfter: -1, tag: '' });
  let received = 0;
  s.on('data', () => {
    if (++received === 1) s.pause();
  });
  const held = await settled(() => produced);
  // 16 KiB each: what HTTP/2 windows and grpc-js buffers hold, a few MiB at most, far from all 100000.
  assert.ok(held < 1000, `produced ${held} while the client read none`);
  s.resume();
  s.cancel();
  await readStream(s).catch(() => undefined);
});

test('backpressure in: a handler that does not read makes the client wait; then it gets every element', async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const c = await start({
    maxBufferedElements: 8,
    handlers: {
      watch,
      chat,
      echo,
      async upload(requests: AsyncIterable<{ item: Item }>) {
        await released;
        let count = 0;
        for await (const _ of requests) count++;
        return { count, names: '', threadId: 0 };
      },
    },
  });
  const total = 2000;
  let flushed = 0;
  const big = 'y'.repeat(8 * 1024);
  const answer = new Promise<unknown>((resolve, reject) => {
    const call = methodOf<ClientStreamFn>(c, 'upload')(new grpc.Metadata(), (err, v) => (err === null ? resolve(v) : reject(err)));
    for (let i = 0; i < total; i++) call.write(item(i, big), () => flushed++);
    call.end();
  });
  const held = await settled(() => flushed);
  assert.ok(held < total / 2, `the client flushed ${held} of ${total} elements before the handler read any`);
  // What waits unread counts against the memory budget, and is given back once the call ended.
  assert.ok(servers[0]!.bufferedBytes >= 8 * 1024, `bufferedBytes ${servers[0]!.bufferedBytes}`);
  release();
  assert.is(((await answer) as { count: number }).count, total);
  assert.is(servers[0]!.bufferedBytes, 0);
});

test('a stream with no element either way for streamIdleTimeoutMs is cancelled, its handler aborted', async () => {
  let reason: unknown;
  const c = await start({
    streamIdleTimeoutMs: 100,
    handlers: {
      watch,
      upload,
      echo,
      async *chat(requests: AsyncIterable<unknown>, ctx: CallContext) {
        ctx.signal.addEventListener('abort', () => (reason = ctx.signal.reason));
        for await (const _ of requests) yield { id: 1, name: 'x', note: '' };
      },
    },
  });
  // The client sends nothing and ends nothing.
  const r = await readStream(methodOf<BidiFn>(c, 'chat')());
  assert.is(r.error?.code, grpc.status.CANCELLED);
  assert.match(r.error!.details, /idle/);
  assert.is((reason as RpcError).code, Code.CANCELLED);
});

test('a stream without a handler is UNIMPLEMENTED; authorize refuses a stream PERMISSION_DENIED before it runs', async () => {
  let ran = false;
  const c = await start({
    handlers: {
      watch: async function* () {
        ran = true;
        yield { id: 1, name: '', note: '' };
      },
      echo,
    },
    authorize: (_p, message) => message !== 'watch',
  });
  const denied = await readStream(methodOf<ServerStreamFn>(c, 'watch')({ from: 0, count: 1, failAfter: -1, tag: '' }));
  assert.is(denied.error?.code, grpc.status.PERMISSION_DENIED);
  assert.is(ran, false);
  const missing = methodOf<BidiFn>(c, 'chat')();
  const r = readStream(missing);
  missing.end();
  assert.is((await r).error?.code, grpc.status.UNIMPLEMENTED);
});

test.run();
