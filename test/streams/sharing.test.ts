import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createClient, createServer, loadProtocol, type CallContext, type Client, type Protocol, type Server } from '../../src/index.js';
import { until } from '../helpers/raw-peer.js';

/**
 * Streams sharing one connection (SPEC.md section 13) between a real client and a real server: unary
 * calls and other streams are not starved by an endless stream, a slow consumer holds only its own
 * producer, and a call made inside a stream handler inherits the stream's deadline and cancellation.
 */
const test = suite('streams: sharing a connection');

const streamAvdl = fileURLToPath(new URL('../../../protocol/stream.avdl', import.meta.url));
let protocol: Protocol;
const servers: Server[] = [];
const clients: Client[] = [];
const item = (id: number): Record<string, unknown> => ({ id, name: `item ${id}`, tags: [], score: 0, blob: Buffer.alloc(0) });

/** Produced counts per stream, by its `from`. */
const produced = new Map<number, number>();
/** The deadline and signal state a call made inside `watch` saw on the second server. */
const inner: { deadline?: number; aborted?: boolean } = {};
let innerClient: Client | undefined;

test.before(async () => {
  protocol = await loadProtocol(streamAvdl);
});

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 0 })));
  produced.clear();
  innerClient = undefined;
});

async function serve(handlers: Record<string, (...args: never[]) => unknown>): Promise<number> {
  const server = createServer({ protocol, handlers: handlers as never });
  servers.push(server);
  return (await server.listen({ host: '127.0.0.1', port: 0 })).port;
}

const watch = async function* (req: { from: number; count: number }, ctx: CallContext) {
  for (let i = 0; i < req.count; i++) {
    produced.set(req.from, (produced.get(req.from) ?? 0) + 1);
    if (innerClient !== undefined && i === 1) await innerClient.call('echo', { item: item(i) });
    if (ctx.signal.aborted) return;
    yield item(req.from + i);
  }
};

function clientOf(port: number, options: object = {}): Client {
  const c = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], connectionsPerEndpoint: 1, ...options });
  clients.push(c);
  return c;
}

test('unary calls and a second stream go on while an endless stream is open on the same connection', async () => {
  const client = clientOf(await serve({ watch, echo: ({ item }: { item: unknown }) => item }), { maxBufferedElements: 8 });
  const endless = client.serverStream('watch', { from: 0, count: 1e9, failAfter: -1 })[Symbol.asyncIterator]();
  for (let i = 0; i < 20; i++) assert.is(((await endless.next()).value as { id: number }).id, i);
  // The endless stream's producer waits on our credit; the rest of the connection is free.
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => client.call('echo', { item: item(i) })));
  assert.is(answers.length, 50);
  let other = 0;
  for await (const x of client.serverStream('watch', { from: 1000, count: 100, failAfter: -1 }))
    other += (x as { id: number }).id >= 1000 ? 1 : 0;
  assert.is(other, 100);
  assert.is(client.stats()[0]!.connections, 1);
  // The endless one is still open and picks up where it was.
  assert.is(((await endless.next()).value as { id: number }).id, 20);
  await endless.return!();
});

test('a consumer that stops reading holds its own producer only: at most both windows ahead of it', async () => {
  const client = clientOf(await serve({ watch }), { maxBufferedElements: 4 });
  const slow = client.serverStream('watch', { from: 0, count: 1e9, failAfter: -1 })[Symbol.asyncIterator]();
  await slow.next();
  // A fast stream beside it runs to its end.
  let n = 0;
  for await (const _ of client.serverStream('watch', { from: 5000, count: 2000, failAfter: -1 })) n++;
  assert.is(n, 2000);
  // The slow one's producer ran ahead of its consumer by no more than the client's window (4) and
  // the element the generator is suspended in (the server's pump pulls only under credit).
  await until(() => (produced.get(0) ?? 0) >= 4, 'the slow producer filled the window');
  assert.ok(produced.get(0)! <= 1 + 4 + 1, `produced ${produced.get(0)} for 1 consumed`);
  await slow.return!();
});

test('a call made inside a stream handler inherits the stream deadline', async () => {
  const innerPort = await serve({
    echo: ({ item }: { item: unknown }, ctx: CallContext) => {
      inner.deadline = ctx.deadline;
      inner.aborted = ctx.signal.aborted;
      return item;
    },
  });
  innerClient = clientOf(innerPort);
  const client = clientOf(await serve({ watch }));
  const before = Date.now();
  let n = 0;
  for await (const _ of client.serverStream('watch', { from: 0, count: 3, failAfter: -1 }, { timeoutMs: 60_000 })) n++;
  assert.is(n, 3);
  assert.ok(Number.isFinite(inner.deadline), 'the inner call carried a deadline');
  assert.ok(inner.deadline! <= before + 60_000 + 1000 && inner.deadline! > before, `inner deadline ${inner.deadline! - before} ms ahead`);
  assert.is(inner.aborted, false);
});

test.run();
