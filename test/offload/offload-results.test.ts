/**
 * Worker offload, results side: handlers running in workers answer exactly what inline handlers
 * answer (responses, metadata, declared and RpcError errors), schema resolution happens in the worker,
 * and offload 'auto' routes by payload size.
 */
import { threadId } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, parseProtocol, RpcError, type Client, type Server } from '../../src/index.js';
import { echo } from './bulk-handlers.js';
import { bulkIdlV2, bulkProtocol, rows } from './bulk-protocol.js';

const HANDLERS_URL = new URL('./bulk-handlers.js', import.meta.url);
const protocol = bulkProtocol();

interface Started {
  server: Server;
  client: Client;
}

async function start(workers: 'none' | 'always' | 'auto', clientProtocol = protocol): Promise<Started> {
  const server = createServer({
    protocol,
    handlers: workers === 'always' ? {} : { echo },
    ...(workers === 'none'
      ? {}
      : { workers: { module: HANDLERS_URL, messages: ['echo'], threads: 2, offload: workers, thresholdBytes: 1024 } }),
  });
  const { port } = await server.listen();
  const client = createClient({ protocol: clientProtocol, endpoints: [`127.0.0.1:${port}`] });
  return { server, client };
}

async function stop(s: Started): Promise<void> {
  await s.client.close();
  await s.server.close();
}

/** Compares decoded values (avsc record instances) by their JSON form, with short failure output. */
function json(v: unknown): string {
  return JSON.stringify(v);
}

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    const r = (await p) as { threadId?: number };
    return { ok: { ...r, threadId: undefined } };
  } catch (err) {
    const e = err as RpcError;
    return { code: e.code, message: e.message, details: e.details, metadata: { ...e.metadata } };
  }
}

test('worker handlers answer exactly what inline handlers answer', async () => {
  const inline = await start('none');
  const worker = await start('always');
  try {
    const cases: Array<[string, number]> = [
      ['echo', 0],
      ['echo', 1],
      ['echo', 300],
      ['echo', 20_000],
      ['sum', 5000],
      ['declared', 3],
      ['rpc', 1],
      ['error', 1],
      ['bad-response', 1],
      ['unknown', 0],
    ];
    for (const [action, n] of cases) {
      const req = { rows: rows(n, n), action };
      const a = await outcome(inline.client.call('echo', req));
      const b = await outcome(worker.client.call('echo', req));
      assert.ok(json(b) === json(a), `${action} x${n}: ${json(b).slice(0, 200)} vs ${json(a).slice(0, 200)}`);
    }
    const r = (await worker.client.call('echo', { rows: rows(2), action: 'echo' })) as { threadId: number };
    assert.not.equal(r.threadId, threadId, 'ran in a worker');
  } finally {
    await stop(inline);
    await stop(worker);
  }
});

test('errors from workers keep their codes; declared errors arrive decoded; no stack leaks', async () => {
  const s = await start('always');
  try {
    const declared = (await outcome(s.client.call('echo', { rows: rows(4), action: 'declared' }))) as { code: number; details: unknown };
    assert.is(declared.code, Code.UNKNOWN);
    const details = declared.details as { reason: string; count: number };
    assert.equal([details.reason, details.count], ['declared failure', 4]);
    const rpc = (await outcome(s.client.call('echo', { rows: [], action: 'rpc' }))) as { code: number; metadata: object };
    assert.is(rpc.code, Code.NOT_FOUND);
    assert.equal(rpc.metadata, { where: 'worker' });
    const plain = (await outcome(s.client.call('echo', { rows: [], action: 'error' }))) as { code: number; message: string };
    assert.is(plain.code, Code.INTERNAL);
    assert.is(plain.message, 'handler blew up');
    const bad = (await outcome(s.client.call('echo', { rows: [], action: 'bad-response' }))) as { code: number; message: string };
    assert.is(bad.code, Code.INTERNAL);
    assert.match(bad.message, 'returned an invalid response');
  } finally {
    await stop(s);
  }
});

test('metadata, peer, message name and deadline reach the worker handler', async () => {
  const s = await start('always');
  try {
    const r = (await s.client.call('echo', { rows: [], action: 'meta' }, { metadata: { user: 'ada' }, timeoutMs: 30_000 })) as {
      info: Record<string, string>;
      threadId: number;
    };
    assert.not.equal(r.threadId, threadId);
    assert.equal(r.info, { user: 'ada', message: 'echo', peer: '127.0.0.1', hasDeadline: 'true' });
  } finally {
    await stop(s);
  }
});

test('a client with another Row schema is resolved inside the worker', async () => {
  const s = await start('always', parseProtocol(bulkIdlV2));
  try {
    const sent = [{ id: 7, name: 'seven', tags: ['x'], extra: 'dropped by the server' }];
    const r = (await s.client.call('echo', { rows: sent, action: 'echo' })) as { rows: unknown[]; threadId: number };
    assert.not.equal(r.threadId, threadId);
    // The server filled score with its default and dropped extra; the client fills extra back with its default.
    assert.is(json(r.rows), json([{ id: 7, name: 'seven', tags: ['x'], extra: 'x' }]));
    const again = (await s.client.call('echo', { rows: sent, action: 'echo' })) as { rows: unknown[] };
    assert.is(json(again.rows), json(r.rows));
  } finally {
    await stop(s);
  }
});

test("offload 'auto' runs small requests inline and large ones in workers", async () => {
  const s = await start('auto');
  try {
    const small = (await s.client.call('echo', { rows: rows(1), action: 'echo' })) as { threadId: number };
    const large = (await s.client.call('echo', { rows: rows(200), action: 'echo' })) as { threadId: number; rows: unknown[] };
    assert.is(small.threadId, threadId, 'small request ran on the main thread');
    assert.not.equal(large.threadId, threadId, 'large request ran in a worker');
    assert.ok(json(large.rows) === json(rows(200)), 'large rows round-trip');
  } finally {
    await stop(s);
  }
});

test('offloaded calls beyond workers.maxTasks are refused with RESOURCE_EXHAUSTED', async () => {
  const server = createServer({
    protocol,
    handlers: {},
    workers: { module: HANDLERS_URL, messages: ['echo'], threads: 1, offload: 'always', maxTasks: 1 },
  });
  const { port } = await server.listen();
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    const abort = new AbortController();
    const first = outcome(client.call('echo', { rows: rows(1), action: 'wait' }, { signal: abort.signal }));
    const second = (await outcome(client.call('echo', { rows: rows(1), action: 'echo' }))) as { code: number };
    assert.is(second.code, Code.RESOURCE_EXHAUSTED);
    abort.abort();
    assert.is(((await first) as { code: number }).code, Code.CANCELLED);
    // The slot is free again once the cancelled call's worker answered.
    let third: { code?: number } = { code: Code.RESOURCE_EXHAUSTED };
    for (let i = 0; i < 1000 && third.code === Code.RESOURCE_EXHAUSTED; i++) {
      third = (await outcome(client.call('echo', { rows: rows(1), action: 'echo' }))) as { code?: number };
      if (third.code === Code.RESOURCE_EXHAUSTED) await new Promise((res) => setTimeout(res, 10));
    }
    assert.is(third.code, undefined, 'a later call succeeds');
  } finally {
    await client.close();
    await server.close();
  }
});

test('workers options are validated with their paths', () => {
  const bad = (workers: unknown, handlers: Record<string, never> = {}): string => {
    try {
      createServer({ protocol, handlers, workers: workers as never });
      return 'no error';
    } catch (err) {
      assert.instance(err, RpcError);
      assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
      return (err as Error).message;
    }
  };
  assert.match(bad({ module: HANDLERS_URL, messages: ['nope'], offload: 'always' }), 'options.workers.messages');
  assert.match(bad({ module: HANDLERS_URL, messages: [] }), 'options.workers.messages');
  assert.match(bad({ module: HANDLERS_URL, messages: ['echo'] }), 'needs an inline handler');
  assert.match(bad({ module: HANDLERS_URL, messages: ['echo'], offload: 'sometimes' }), 'options.workers.offload');
  assert.match(bad({ module: HANDLERS_URL, messages: ['echo'], offload: 'always', threads: 0 }), 'options.workers.threads');
  assert.match(bad({ module: 42, messages: ['echo'], offload: 'always' }), 'options.workers.module');
  assert.match(bad({ module: new URL('http://x/y.js'), messages: ['echo'], offload: 'always' }), 'options.workers.module');
  assert.match(bad({ module: HANDLERS_URL, messages: ['echo'], offload: 'always', abandonGraceMs: -1 }), 'options.workers.abandonGraceMs');
});

test.run();
