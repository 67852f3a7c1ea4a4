/**
 * Messages the `workers` option offloads, called over gRPC (grpc-js clients) and over HTTP/JSON
 * (fetch): they run in the worker pool as avrpc calls do (the handler's thread is not the main one),
 * unary calls and every kind of stream, with their headers, trailers, declared errors and cancellation.
 */
import * as grpc from '@grpc/grpc-js';
import { BroadcastChannel } from 'node:worker_threads';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, parseProtocol, type Server } from '../../src/index.js';
import { ERROR_TYPE_KEY } from '../../src/server/grpc/grpc-bridge.js';
import { STREAM_REPORTS, echo, streamIdl, type StreamReport } from '../helpers/stream-worker-handlers.js';
import { avroClient, methodOf, readStream, unary } from './grpc-client.js';

const test = suite('grpc bridge and HTTP: worker-offloaded messages');

const HANDLERS = new URL('../helpers/stream-worker-handlers.js', import.meta.url);
const protocol = parseProtocol(streamIdl);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const reports: StreamReport[] = [];
const channel = new BroadcastChannel(STREAM_REPORTS);
channel.onmessage = (e) => reports.push((e as { data: StreamReport }).data);
(channel as unknown as { unref(): void }).unref();

let server: Server;
let client: grpc.Client;
let httpBase: string;

interface Item {
  id: number;
  name: string;
  note: string;
}

type ServerStreamFn = (req: unknown) => grpc.ClientReadableStream<Item>;
type ClientStreamFn = (md: grpc.Metadata, cb: (err: grpc.ServiceError | null, v?: unknown) => void) => grpc.ClientWritableStream<unknown>;
type BidiFn = () => grpc.ClientDuplexStream<unknown, Item>;

const item = (id: number, name: string): { item: Item } => ({ item: { id, name, note: 'n' } });
const offThread = (v: unknown): boolean => Number(v) > 0;

test.before(async () => {
  server = createServer({
    protocol,
    // No inline handler at all: every message runs in a worker or not at all.
    handlers: {},
    workers: { module: HANDLERS, messages: ['watch', 'upload', 'chat', 'echo'], threads: 1, offload: 'always' },
    grpc: { port: 0 },
    http: {},
    logger: quiet,
  });
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  client = avroClient(protocol, bound.grpc!.port);
  httpBase = `http://127.0.0.1:${bound.http!.port}/${protocol.name}`;
});

test.before.each(() => {
  reports.length = 0;
});

test.after(async () => {
  client.close();
  channel.close();
  await server.close({ graceMs: 100 });
});

test('gRPC unary: runs in a worker; its header and trailer come back', async () => {
  const r = await unary(client, 'echo', item(7, 'seven'));
  assert.is(r.error, undefined, String(r.error));
  assert.equal({ ...(r.value as object) }, { id: 7, name: 'seven', note: 'n' });
  assert.ok(offThread(r.headers?.get('thread')[0]), `header thread ${String(r.headers?.get('thread'))}`);
  assert.ok(offThread(r.status?.metadata.get('thread')[0]));
});

test('HTTP unary: runs in a worker, answered as JSON', async () => {
  const res = await fetch(`${httpBase}/echo`, { method: 'POST', body: JSON.stringify(item(8, 'eight')) });
  assert.is(res.status, 200);
  assert.equal(await res.json(), { id: 8, name: 'eight', note: 'n' });
});

test('gRPC server stream: elements from the worker, its trailers; an error after N with its declared error', async () => {
  const ok = await readStream(methodOf<ServerStreamFn>(client, 'watch')({ from: 3, count: 4, failAfter: -1, tag: 'w' }));
  assert.is(ok.error, undefined, String(ok.error));
  assert.equal(
    ok.items.map((i) => (i as Item).id),
    [3, 4, 5, 6],
  );
  assert.ok(offThread(ok.headers?.get('thread')[0]));
  assert.is(ok.status?.metadata.get('produced')[0], '4');
  const bad = await readStream(methodOf<ServerStreamFn>(client, 'watch')({ from: 0, count: 4, failAfter: 1, tag: 'f' }));
  assert.is(bad.items.length, 1);
  assert.is(bad.error?.code, grpc.status.ABORTED);
  assert.is(bad.status?.metadata.get(ERROR_TYPE_KEY)[0], 'avrpc.wstream.StreamError');
});

test('HTTP server stream: the worker elements as NDJSON', async () => {
  const res = await fetch(`${httpBase}/watch`, { method: 'POST', body: JSON.stringify({ from: 1, count: 3, failAfter: -1, tag: 'h' }) });
  assert.is(res.status, 200);
  const lines = (await res.text()).trim().split('\n');
  assert.equal(
    lines.map((l) => (JSON.parse(l) as Item).id),
    [1, 2, 3],
  );
});

test('gRPC client stream: the worker reads the elements; its response', async () => {
  const value = await new Promise<unknown>((resolve, reject) => {
    const call = methodOf<ClientStreamFn>(client, 'upload')(new grpc.Metadata(), (err, v) => (err === null ? resolve(v) : reject(err)));
    for (const name of ['a', 'b']) call.write(item(1, name));
    call.end();
  });
  const v = value as { count: number; names: string; threadId: number };
  assert.is(v.count, 2);
  assert.is(v.names, 'a:n,b:n');
  assert.ok(offThread(v.threadId));
});

test('gRPC bidi stream: the worker answers each element; a client cancel closes its generator', async () => {
  const call = methodOf<BidiFn>(client, 'chat')();
  const first = new Promise<Item>((resolve) => call.once('data', resolve));
  call.write(item(1, 'hi'));
  assert.is((await first).name, 'hi!');
  const done = readStream(call);
  call.cancel();
  assert.is((await done).error?.code, grpc.status.CANCELLED);
  for (let i = 0; i < 400 && !reports.some((r) => r.tag === 'chat' && r.event === 'finally'); i++)
    await new Promise((r) => setTimeout(r, 10));
  assert.ok(
    reports.some((r) => r.tag === 'chat' && r.event === 'finally' && offThread(r.threadId)),
    JSON.stringify(reports),
  );
});

test("offload 'auto': a small request runs inline, one over thresholdBytes in a worker, over gRPC and HTTP", async () => {
  const auto = createServer({
    protocol,
    handlers: { echo },
    workers: { module: HANDLERS, messages: ['echo'], threads: 1, thresholdBytes: 1024 },
    grpc: { port: 0 },
    http: {},
    logger: quiet,
  });
  const bound = await auto.listen({ host: '127.0.0.1', port: 0 });
  const c = avroClient(protocol, bound.grpc!.port);
  try {
    const small = await unary(c, 'echo', item(1, 'small'));
    assert.is(small.headers?.get('thread')[0], '0');
    const large = await unary(c, 'echo', item(2, 'L'.repeat(2048)));
    assert.ok(offThread(large.headers?.get('thread')[0]), String(large.headers?.get('thread')));
    assert.is((large.value as Item).name.length, 2048);
    const res = await fetch(`http://127.0.0.1:${bound.http!.port}/${protocol.name}/echo`, {
      method: 'POST',
      body: JSON.stringify(item(3, 'H'.repeat(2048))),
    });
    assert.is(res.status, 200);
    assert.is(((await res.json()) as Item).name.length, 2048);
  } finally {
    c.close();
    await auto.close({ graceMs: 100 });
  }
});

test.run();
