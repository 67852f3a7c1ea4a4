/**
 * Stream handlers on worker threads through the real client (`serverStream`, `clientStream`,
 * `bidiStream`): each kind runs off the main thread with its headers and trailers, a slow consumer
 * holds the worker's generator, breaking out cancels it, an error after N elements, deadlines, an
 * older client's schemas resolved in the worker, a handler that ignores cancellation (abandoned: its
 * thread is replaced) and a worker thread that dies mid-stream.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastChannel } from 'node:worker_threads';
import { Code, createClient, createServer, parseProtocol, RpcError, type Client, type Protocol, type Server } from '../../src/index.js';
import type { ServerOptions } from '../../src/server/server-options.js';
import { until } from '../helpers/raw-peer.js';
import { STREAM_REPORTS, streamIdl, streamIdlV0, type StreamReport } from '../helpers/stream-worker-handlers.js';
import { collect } from '../helpers/stream-raw.js';

const test = suite('offload: stream handlers in workers, real client');

const HANDLERS = new URL('../helpers/stream-worker-handlers.js', import.meta.url);
const protocol = parseProtocol(streamIdl);
const older = parseProtocol(streamIdlV0);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
let server: Server | undefined;
const clients: Client[] = [];
const reports: StreamReport[] = [];
const channel = new BroadcastChannel(STREAM_REPORTS);
channel.onmessage = (e) => reports.push((e as { data: StreamReport }).data);
(channel as unknown as { unref(): void }).unref();

interface Item {
  id: number;
  name: string;
  note?: string;
}

test.before.each(() => {
  reports.length = 0;
});

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server?.close({ graceMs: 0 });
  server = undefined;
});

test.after(() => channel.close());

async function setup(options: Partial<ServerOptions> = {}, as: Protocol = protocol, window = 4): Promise<Client> {
  server = createServer({
    protocol,
    handlers: {},
    workers: { module: HANDLERS, messages: ['watch', 'upload', 'chat'], threads: 1, ...options.workers },
    logger: quiet,
    ...options,
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol: as, endpoints: [`127.0.0.1:${port}`], maxBufferedElements: window });
  clients.push(client);
  return client;
}

const has = (tag: string, event: StreamReport['event']): boolean => reports.some((r) => r.tag === tag && r.event === event);
const produced = (tag: string): number => reports.filter((r) => r.tag === tag && r.event === 'produced').length;
const watch = (tag: string, count: number, failAfter = -1) => ({ from: 0, count, failAfter, tag });

test('serverStream: runs in a worker, headers and trailers from the worker handler', async () => {
  const client = await setup();
  const s = client.serverStream<Item>('watch', watch('a', 5));
  const { items, error } = await collect(s);
  assert.is(error, undefined);
  assert.equal(
    items.map((i) => [i.id, i.note]),
    [0, 1, 2, 3, 4].map((id) => [id, 'a']),
  );
  const headers = await s.headers;
  assert.ok(Number(headers.thread) > 0, `ran on thread ${headers.thread}`);
  assert.equal(await s.trailers, { thread: headers.thread, produced: '5' });
});

test('serverStream: a slow consumer holds the worker generator; breaking out cancels it', async () => {
  const client = await setup({}, protocol, 2);
  const it = client.serverStream<Item>('watch', watch('slow', 1000))[Symbol.asyncIterator]();
  assert.equal([(await it.next()).value?.id, (await it.next()).value?.id], [0, 1]);
  // Another stream on the only worker thread, to its end: the worker had every chance to run ahead.
  assert.is((await collect(client.serverStream('watch', watch('probe', 1)))).items.length, 1);
  await until(() => has('probe', 'finally'), 'the probe finished');
  const held = produced('slow');
  // Taken 2, the client's window 2 buffered, the main thread's read-ahead of a few: far from 1000.
  assert.ok(held >= 2 && held <= 2 + 2 + 8, `produced ${held} with 2 taken`);
  await it.return!();
  await until(() => has('slow', 'finally'), 'the generator closed');
  assert.ok(reports.some((r) => r.tag === 'slow' && r.event === 'abort' && r.n === Code.CANCELLED));
});

test('serverStream: an error after N elements: the N, then the RpcError with its declared value and trailers', async () => {
  const client = await setup();
  const s = client.serverStream<Item>('watch', watch('e', 10, 3));
  const { items, error } = await collect(s);
  assert.equal(
    items.map((i) => i.id),
    [0, 1, 2],
  );
  assert.instance(error, RpcError);
  assert.is(error!.code, Code.ABORTED);
  assert.equal(JSON.parse(JSON.stringify(error!.details)), { reason: 'asked', after: 3 });
  assert.ok(Number((await s.trailers).thread) > 0);
});

test('serverStream: the deadline aborts the worker handler', async () => {
  const client = await setup({}, protocol, 1);
  const s = client.serverStream<Item>('watch', watch('late', 1000), { timeoutMs: 200 });
  const it = s[Symbol.asyncIterator]();
  await it.next();
  await until(() => has('late', 'finally'), 'the generator closed at the deadline');
  // The client cancels at its deadline too: the worker hears whichever comes first.
  const abort = reports.find((r) => r.tag === 'late' && r.event === 'abort');
  assert.ok(abort?.n === Code.DEADLINE_EXCEEDED || abort?.n === Code.CANCELLED, `aborted with ${abort?.n}`);
  try {
    for (;;) if ((await it.next()).done === true) break;
    assert.unreachable('the stream fails');
  } catch (err) {
    assert.is((err as RpcError).code, Code.DEADLINE_EXCEEDED);
  }
});

test('clientStream and bidiStream run in a worker; an older client is resolved there', async () => {
  for (const as of [protocol, older]) {
    const client = await setup({}, as);
    const note = as === older ? 'none' : 'sent';
    const sent = ['a', 'b', 'c'].map((name, id) => ({ item: as === older ? { id, name } : { id, name, note: 'sent' } }));
    let header: Record<string, string> = {};
    let trailer: Record<string, string> = {};
    const summary = await client.clientStream<{ count: number; names: string; threadId: number }>('upload', sent, {
      onHeader: (h) => (header = { ...h }),
      onTrailer: (t) => (trailer = { ...t }),
    });
    assert.equal([summary.count, summary.names], [3, `a:${note},b:${note},c:${note}`]);
    assert.ok(summary.threadId > 0);
    assert.equal(header, { thread: String(summary.threadId) });
    assert.equal(trailer, { counted: '3' });
    const chat = client.bidiStream<Item>('chat', sent);
    const { items, error } = await collect(chat);
    assert.is(error, undefined);
    assert.equal(
      items.map((i) => i.name),
      ['a!', 'b!', 'c!'],
    );
    if (as === protocol)
      assert.equal(
        items.map((i) => i.note),
        [note, note, note],
      );
    assert.ok(Number((await chat.trailers).thread) > 0);
    await client.close();
    await server!.close({ graceMs: 0 });
    server = undefined;
  }
});

test('clientStream: the worker handler error reaches the caller with its declared value', async () => {
  const client = await setup();
  try {
    await client.clientStream('upload', [{ item: { id: 1, name: 'x', note: '' } }, { item: { id: 2, name: 'fail', note: '' } }]);
    assert.unreachable('the upload fails');
  } catch (err) {
    assert.is((err as RpcError).code, Code.ABORTED);
    assert.equal(JSON.parse(JSON.stringify((err as RpcError).details)), { reason: 'fail', after: 1 });
  }
});

test('a handler that ignores cancellation is abandoned: its thread is replaced, and streams go on', async () => {
  const warned: string[] = [];
  const client = await setup({
    workers: { module: HANDLERS, messages: ['watch', 'upload', 'chat'], threads: 1, abandonGraceMs: 0 },
    logger: { ...quiet, warn: (_o: unknown, m: string) => void warned.push(m) },
  });
  const first = client.serverStream<Item>('watch', watch('stubborn', 10));
  for await (const _ of first) break;
  const thread = (await first.headers).thread;
  await until(() => warned.some((m) => m.includes('aborted')), 'the server gave up on it');
  // The next stream runs on a new thread: the stubborn one's was terminated.
  const next = client.serverStream<Item>('watch', watch('after', 2));
  assert.is((await collect(next)).items.length, 2);
  const now = (await next.headers).thread;
  assert.ok(Number(now) > 0 && now !== thread, `thread ${now} replaced ${thread}`);
  assert.not.ok(has('stubborn', 'finally'), 'the stubborn generator never closed: its thread went');
});

test('a worker thread that dies mid-stream fails its stream INTERNAL; the next stream runs on a new one', async () => {
  const client = await setup();
  const s = client.serverStream<Item>('watch', watch('exit', 10));
  const { items, error } = await collect(s);
  // What the thread posted before it died may be lost with it: at most the two it yielded.
  assert.equal(
    items.map((i) => i.id),
    [0, 1].slice(0, items.length),
  );
  assert.is(error?.code, Code.INTERNAL);
  const next = client.serverStream<Item>('watch', watch('after', 1));
  assert.is((await collect(next)).items.length, 1);
  assert.ok(Number((await next.headers).thread) > 0);
});

test('a stream message in workers.messages runs in a worker whatever offload says, even beside an inline handler', async () => {
  const inline = {
    watch: async function* () {
      yield { id: -1, name: 'inline', note: '' };
    },
  };
  for (const offload of ['auto', 'always'] as const) {
    const client = await setup({
      handlers: inline,
      workers: { module: HANDLERS, messages: ['watch'], threads: 1, offload, thresholdBytes: 1 << 20 },
    });
    const s = client.serverStream<Item>('watch', watch('w', 1));
    assert.equal(
      (await collect(s)).items.map((i) => i.id),
      [0],
      offload,
    );
    assert.ok(Number((await s.headers).thread) > 0);
    await client.close();
    await server!.close({ graceMs: 0 });
    server = undefined;
  }
});

test('open streams spread over the worker threads, and hold their task slots (workers.maxTasks)', async () => {
  const client = await setup(
    { workers: { module: HANDLERS, messages: ['watch', 'upload', 'chat'], threads: 2, maxTasks: 2 } },
    protocol,
    1,
  );
  const first = client.serverStream<Item>('watch', watch('one', 100));
  const second = client.serverStream<Item>('watch', watch('two', 100));
  const [a, b] = [await first.headers, await second.headers];
  assert.ok(Number(a.thread) > 0 && Number(b.thread) > 0 && a.thread !== b.thread, `threads ${a.thread} and ${b.thread}`);
  // Both slots are held by the open streams: a third is refused.
  const third = await collect(client.serverStream<Item>('watch', watch('three', 1)));
  assert.is(third.error?.code, Code.RESOURCE_EXHAUSTED);
  await first[Symbol.asyncIterator]().return!();
  await until(() => has('one', 'finally'), 'the first closed');
  // Its slot is free again once the worker has told the main thread (just after the generator closed).
  let fourth = await collect(client.serverStream<Item>('watch', watch('four', 1)));
  for (let i = 0; i < 100 && fourth.error?.code === Code.RESOURCE_EXHAUSTED; i++) {
    await new Promise((r) => setTimeout(r, 10));
    fourth = await collect(client.serverStream<Item>('watch', watch('four', 1)));
  }
  assert.equal([fourth.error, fourth.items.length], [undefined, 1]);
  await second[Symbol.asyncIterator]().return!();
});

test('a unary call in a worker sends the headers and trailers its handler set', async () => {
  const client = await setup({ workers: { module: HANDLERS, messages: ['echo'], threads: 1, offload: 'always' } });
  let header: Record<string, string> = {};
  let trailer: Record<string, string> = {};
  const r = await client.call<Item>(
    'echo',
    { item: { id: 9, name: 'n', note: 'x' } },
    {
      onHeader: (h) => (header = { ...h }),
      onTrailer: (t) => (trailer = { ...t }),
    },
  );
  assert.is(r.id, 9);
  assert.ok(Number(header.thread) > 0, `header ${JSON.stringify(header)}`);
  assert.equal(trailer, { thread: header.thread });
});

test.run();
