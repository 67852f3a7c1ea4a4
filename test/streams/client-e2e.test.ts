/**
 * Streams end to end (SPEC.md section 13): the real client against the real server on loopback, each
 * kind, cancel by break, errors after N elements, deadlines, connection loss, headers and trailers
 * for streams and calls, no replay of a stream that delivered, and flow control holding a producer
 * to the consumer's pace (counted, not timed).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer as createNetServer, connect, type Server as NetServer, type Socket, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { createClient, type Client } from '../../src/client/client.js';
import { Code, RpcError, createServer, type CallContext, type Protocol, type Server } from '../../src/index.js';
import type { ServerOptions } from '../../src/server/server-options.js';
import type { Metadata } from '../../src/framing/bodies.js';
import { rejection, until, deferred } from '../helpers/echo-fixture.js';
import { loadStream, streamItem } from '../client/stream-peer.js';
import { collect } from '../helpers/stream-raw.js';

const test = suite('streams: client and server');
let protocol: Protocol;
const clients: Client[] = [];
const servers: Server[] = [];
const proxies: NetServer[] = [];

/** What the handlers did. */
const seen = { produced: 0, finallyRan: 0, aborted: 0, calls: 0, taken: 0 };
/** Released by a test to let a blocked handler go on. */
let gate = deferred();

test.before(async () => {
  protocol = await loadStream();
});

test.before.each(() => {
  Object.assign(seen, { produced: 0, finallyRan: 0, aborted: 0, calls: 0, taken: 0 });
  gate = deferred();
});

test.after.each(async () => {
  gate.resolve();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 0 })));
  for (const p of proxies.splice(0)) p.close();
});

type WatchRequest = { from: number; count: number; failAfter: number };

const handlers: ServerOptions['handlers'] = {
  watch: async function* (req: WatchRequest, ctx: CallContext) {
    seen.calls++;
    ctx.signal.addEventListener('abort', () => seen.aborted++);
    // (Not for the replay cases: headers the caller saw would count as delivered.)
    if (req.count !== -3) ctx.responseHeader.kind = 'watch';
    try {
      // count -1: until cancelled; failAfter -2: wait for the gate first; count -3: fail UNAVAILABLE after `from` elements on the first call.
      if (req.failAfter === -2) await Promise.race([gate.promise, once(ctx.signal, 'abort')]);
      for (let i = 0; req.count < 0 || i < req.count; i++) {
        if (req.count === -3 && i === req.from && seen.calls === 1) throw new RpcError(Code.UNAVAILABLE, 'downstream gone');
        if (req.count === -3 && i === 2) break;
        if (i === req.failAfter) throw new RpcError(Code.ABORTED, 'stopped', { details: { reason: 'asked', after: i } });
        seen.produced++;
        yield streamItem(i);
      }
      ctx.responseTrailer.produced = String(seen.produced);
    } finally {
      seen.finallyRan++;
    }
  },
  upload: async (requests: AsyncIterable<{ item: { id: number; blob: Buffer } }>, ctx: CallContext) => {
    seen.calls++;
    let count = 0;
    let bytes = 0;
    for await (const r of requests) {
      seen.taken++;
      if (r.item.id === -1) throw new RpcError(Code.UNAVAILABLE, 'downstream gone');
      // id -2: wait for the gate before taking more.
      if (r.item.id === -2) await gate.promise;
      count++;
      bytes += r.item.blob.length;
    }
    ctx.responseTrailer.counted = String(count);
    return { count, bytes };
  },
  chat: async function* (requests: AsyncIterable<{ item: { id: number } }>) {
    for await (const r of requests) yield r.item;
  },
  echo: (req: { item: { id: number } }, ctx: CallContext) => {
    ctx.responseHeader.h = 'one';
    ctx.responseTrailer.t = 'two';
    if (req.item.id < 0) throw new RpcError(Code.NOT_FOUND, 'no such item', { metadata: { why: 'negative' } });
    return req.item;
  },
};

async function start(
  serverOptions: Partial<ServerOptions> = {},
  clientOptions: Record<string, unknown> = {},
): Promise<{ c: Client; port: number }> {
  const server = createServer({ protocol, handlers, ...serverOptions });
  servers.push(server);
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const c = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], ...clientOptions });
  clients.push(c);
  return { c, port };
}

/** A TCP relay on 127.0.0.1:0 to `port`, whose sockets a test can cut (connection loss). */
async function relay(port: number): Promise<{ endpoint: string; cut: () => void }> {
  const sockets: Socket[] = [];
  const net = createNetServer((a) => {
    const b = connect({ host: '127.0.0.1', port });
    sockets.push(a, b);
    a.on('error', () => b.destroy());
    b.on('error', () => a.destroy());
    a.pipe(b).pipe(a);
  });
  proxies.push(net);
  net.listen(0, '127.0.0.1');
  await once(net, 'listening');
  return { endpoint: `127.0.0.1:${(net.address() as AddressInfo).port}`, cut: () => sockets.forEach((s) => s.destroy()) };
}

const ids = (items: unknown[]): number[] => items.map((x) => (x as { id: number }).id);

test('each kind: server, client and bidi streams, with headers and trailers', async () => {
  const { c } = await start();
  const watch = c.serverStream('watch', { from: 0, count: 5, failAfter: -1 });
  const w = await collect(watch);
  assert.is(w.error, undefined);
  assert.equal(ids(w.items), [0, 1, 2, 3, 4]);
  assert.equal(await watch.headers, { kind: 'watch' });
  assert.equal(await watch.trailers, { produced: '5' });

  const trailers: Metadata[] = [];
  const requests = Array.from({ length: 10 }, (_, i) => ({ item: streamItem(i) }));
  const summary = await c.clientStream<{ count: number; bytes: number }>('upload', requests, { onTrailer: (t) => trailers.push(t) });
  assert.equal([summary.count, summary.bytes], [10, 10]);
  assert.equal(trailers, [{ counted: '10' }]);

  async function* chatRequests(): AsyncGenerator<object> {
    for (let i = 0; i < 100; i++) yield { item: streamItem(i) };
  }
  const chat = await collect(c.bidiStream('chat', chatRequests()));
  assert.is(chat.error, undefined);
  assert.equal(
    ids(chat.items),
    Array.from({ length: 100 }, (_, i) => i),
  );
});

test('breaking out of for await cancels: the handler is aborted and its generator closed', async () => {
  const { c } = await start();
  let n = 0;
  for await (const _ of c.serverStream('watch', { from: 0, count: -1, failAfter: -1 })) if (++n === 3) break;
  await until(() => seen.finallyRan === 1 && seen.aborted === 1, 'the handler closed');
});

test('an error after N elements: the N elements, then the RpcError with its declared details', async () => {
  const { c } = await start();
  const { items, error } = await collect(c.serverStream('watch', { from: 0, count: 10, failAfter: 3 }));
  assert.equal(ids(items), [0, 1, 2]);
  assert.is(error?.code, Code.ABORTED);
  const details = error?.details as { reason: string; after: number };
  assert.equal([details.reason, details.after], ['asked', 3]);
});

test('the deadline covers the whole stream: DEADLINE_EXCEEDED, the handler is aborted', async () => {
  const { c } = await start();
  const { error } = await collect(c.serverStream('watch', { from: 0, count: -1, failAfter: -2 }, { timeoutMs: 100 }));
  assert.is(error?.code, Code.DEADLINE_EXCEEDED);
  await until(() => seen.aborted === 1 && seen.finallyRan === 1, 'the handler aborted');
});

test('connection loss fails every open stream UNAVAILABLE', async () => {
  const server = createServer({ protocol, handlers });
  servers.push(server);
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const r = await relay(port);
  const c = createClient({ protocol, endpoints: [r.endpoint], maxAttempts: 1 });
  clients.push(c);
  const a = c.serverStream('watch', { from: 0, count: -1, failAfter: -2 });
  async function* slow(): AsyncGenerator<object> {
    yield { item: streamItem(1) };
    await gate.promise;
  }
  const b = c.bidiStream('chat', slow());
  const up = c.clientStream('upload', slow());
  const bi = b[Symbol.asyncIterator]();
  assert.is(((await bi.next()).value as { id: number }).id, 1);
  await until(() => seen.calls === 2, 'the streams run');
  r.cut();
  assert.is((await collect(a)).error?.code, Code.UNAVAILABLE);
  assert.is(
    (
      await bi.next().then(
        () => undefined,
        (e: RpcError) => e,
      )
    )?.code,
    Code.UNAVAILABLE,
  );
  assert.is((await rejection(up)).code, Code.UNAVAILABLE);
});

test("a server's graceful GOAWAY lets an open stream finish", async () => {
  const server = createServer({ protocol, handlers });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const c = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  clients.push(c);
  const s = c.serverStream('watch', { from: 0, count: 3, failAfter: -2 });
  await until(() => seen.calls === 1, 'the stream runs');
  const closing = server.close({ graceMs: 10_000 });
  // The stream is a running call: the server waits for it, and it gets all its elements.
  await until(() => c.stats()[0]?.ready === 0, 'the client saw the GOAWAY');
  gate.resolve();
  const { items, error } = await collect(s);
  assert.is(error, undefined);
  assert.equal(ids(items), [0, 1, 2]);
  assert.equal(await s.trailers, { produced: '3' });
  await closing;
});

test('headers and trailers of a unary call, on success and on failure', async () => {
  const { c } = await start();
  const seenMeta: string[] = [];
  const hooks = {
    onHeader: (h: Metadata) => seenMeta.push(`h ${JSON.stringify(h)}`),
    onTrailer: (t: Metadata) => seenMeta.push(`t ${JSON.stringify(t)}`),
  };
  assert.is((await c.call<{ id: number }>('echo', { item: streamItem(3) }, hooks)).id, 3);
  assert.equal(seenMeta.splice(0), ['h {"h":"one"}', 't {"t":"two"}']);
  const e = await rejection(c.call('echo', { item: streamItem(-1) }, hooks));
  assert.is(e.code, Code.NOT_FOUND);
  assert.is(seenMeta.length, 2);
  assert.is(seenMeta[0], 'h {"h":"one"}');
  assert.match(seenMeta[1]!, '"why":"negative"');
  assert.match(seenMeta[1]!, '"t":"two"');
});

test('a stream is replayed only while it has delivered nothing and pulled nothing', async () => {
  const { c } = await start({}, { idempotent: ['watch', 'upload'] });
  // UNAVAILABLE before the first element: sent again (idempotent), and then it completes.
  const fresh = await collect(c.serverStream('watch', { from: 0, count: -3, failAfter: -1 }));
  assert.is(fresh.error, undefined);
  assert.equal(ids(fresh.items), [0, 1]);
  assert.is(seen.calls, 2);
  // UNAVAILABLE after one element: the caller has it, so no replay.
  seen.calls = 0;
  const delivered = await collect(c.serverStream('watch', { from: 1, count: -3, failAfter: -1 }));
  assert.equal(ids(delivered.items), [0]);
  assert.is(delivered.error?.code, Code.UNAVAILABLE);
  assert.is(seen.calls, 1);
  // A client stream that gave up a request is not replayed either.
  seen.calls = 0;
  const e = await rejection(c.clientStream('upload', [{ item: streamItem(-1) }]));
  assert.is(e.code, Code.UNAVAILABLE);
  assert.is(seen.calls, 1);
});

test('a slow consumer holds the server producer within the windows', async () => {
  const S = 4;
  const { c } = await start({ maxBufferedElements: S }, { maxBufferedElements: S });
  const it = c.serverStream('watch', { from: 0, count: -1, failAfter: -1 })[Symbol.asyncIterator]();
  let consumed = 0;
  for (let round = 0; round < 5; round++) {
    await it.next();
    consumed++;
    // A unary call's round trip lets every CREDIT and DATA in flight arrive; then the producer must wait.
    await until(() => seen.produced >= consumed + 1, 'the producer ran');
    await c.call('echo', { item: streamItem(0) });
    await c.call('echo', { item: streamItem(0) });
    // Produced: taken by the consumer, plus our window (buffered and in flight), plus one pull the server holds ready.
    assert.ok(seen.produced <= consumed + S + 1, `produced ${seen.produced} with ${consumed} consumed`);
  }
  await it.return!();
  await until(() => seen.finallyRan === 1, 'the producer closed');
});

test("a slow server consumer holds the client's requests within the windows", async () => {
  const S = 4;
  const { c } = await start({ maxBufferedElements: S }, { maxBufferedElements: S });
  let pulled = 0;
  function* requests(): Generator<object> {
    for (let i = 0; i < 1000; i++) {
      pulled++;
      yield { item: streamItem(i === 0 ? -2 : i) };
    }
  }
  const done = c.clientStream<{ count: number }>('upload', requests());
  await until(() => seen.taken === 1, 'the handler took one');
  await c.call('echo', { item: streamItem(0) });
  await c.call('echo', { item: streamItem(0) });
  // Taken by the handler (1), plus the server's window.
  assert.ok(pulled <= 1 + S, `pulled ${pulled}`);
  gate.resolve();
  assert.is((await done).count, 1000);
  assert.is(pulled, 1000);
});

test.run();
