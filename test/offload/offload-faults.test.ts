/**
 * Worker offload, failure side: client cancellation and deadlines reach the handler's `ctx.signal`
 * (and `ctx.cancelled`) inside the worker; a worker that crashes or exits fails only its own call with
 * INTERNAL and the pool recovers.
 */
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, RpcError, type Client, type Server } from '../../src/index.js';
import { REPORT_CHANNEL, type AbortReport } from './bulk-handlers.js';
import { bulkProtocol, rows } from './bulk-protocol.js';

const protocol = bulkProtocol();
let server: Server;
let client: Client;
let channel: BroadcastChannel;
const reports = new Map<string, (r: AbortReport) => void>();

test.before(async () => {
  server = createServer({
    protocol,
    handlers: {},
    workers: { module: new URL('./bulk-handlers.js', import.meta.url), messages: ['echo'], threads: 2, offload: 'always' },
  });
  const { port } = await server.listen();
  client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  channel = new BroadcastChannel(REPORT_CHANNEL);
  channel.onmessage = (event) => {
    const report = (event as { data: AbortReport }).data;
    reports.get(report.tag)?.(report);
  };
});

test.after(async () => {
  channel.close();
  await client.close();
  await server.close();
});

/** Resolves when the handler of the call tagged `tag` reports that its signal aborted. */
function reported(tag: string): Promise<AbortReport> {
  return new Promise((resolve) => reports.set(tag, resolve));
}

async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return Code.OK;
  } catch (err) {
    assert.instance(err, RpcError);
    return (err as RpcError).code;
  }
}

/** A call whose handler waits for its signal; the first row's name tags it. */
function waiting(tag: string, action: 'wait' | 'spin', options: { signal?: AbortSignal; timeoutMs?: number }): Promise<number> {
  return codeOf(client.call('echo', { rows: [{ id: 1, name: tag, tags: [], score: 0 }], action }, options));
}

test('a client cancel aborts ctx.signal in the worker handler', async () => {
  const abort = new AbortController();
  const report = reported('cancel-me');
  const call = waiting('cancel-me', 'wait', { signal: abort.signal });
  // Cancel once the handler runs: an echo behind it on the other thread proves the pool took work.
  await client.call('echo', { rows: rows(1), action: 'echo' });
  setImmediate(() => abort.abort());
  assert.is(await call, Code.CANCELLED);
  const r = await report;
  assert.is(r.code, Code.CANCELLED);
  assert.not.equal(r.threadId, threadId);
});

test('the deadline aborts ctx.signal in the worker handler', async () => {
  const report = reported('deadline');
  assert.is(await waiting('deadline', 'wait', { timeoutMs: 150 }), Code.DEADLINE_EXCEEDED);
  const r = await report;
  assert.is(r.code, Code.DEADLINE_EXCEEDED);
  assert.not.equal(r.threadId, threadId);
});

test('a CPU-bound handler sees ctx.cancelled turn true (shared flag, no event loop needed)', async () => {
  const report = reported('spin');
  assert.is(await waiting('spin', 'spin', { timeoutMs: 150 }), Code.DEADLINE_EXCEEDED);
  assert.is((await report).code, Code.DEADLINE_EXCEEDED);
  const abort = new AbortController();
  const cancelled = reported('spin-cancel');
  const call = waiting('spin-cancel', 'spin', { signal: abort.signal });
  setTimeout(() => abort.abort(), 50);
  assert.is(await call, Code.CANCELLED);
  assert.is((await cancelled).code, Code.CANCELLED);
});

for (const action of ['crash', 'exit'] as const) {
  test(`a worker that dies (${action}) fails only its own call with INTERNAL; the pool recovers`, async () => {
    const others = Array.from({ length: 6 }, (_, i) => client.call('echo', { rows: rows(50, i), action: 'echo' }));
    const dying = codeOf(client.call('echo', { rows: [], action }));
    const results = (await Promise.all(others)) as Array<{ rows: unknown[] }>;
    assert.is(await dying, Code.INTERNAL);
    assert.equal(results.map((r) => r.rows.length), [50, 50, 50, 50, 50, 50]);
    for (let i = 0; i < 4; i++) {
      const after = (await client.call('echo', { rows: rows(3), action: 'echo' })) as { rows: unknown[]; threadId: number };
      assert.is(after.rows.length, 3);
      assert.not.equal(after.threadId, threadId);
    }
  });
}

test('the error message of a dead worker says so, without a stack', async () => {
  try {
    await client.call('echo', { rows: [], action: 'exit' });
    assert.unreachable('should fail');
  } catch (err) {
    const e = err as RpcError;
    assert.is(e.code, Code.INTERNAL);
    assert.match(e.message, 'worker failed while running echo');
    assert.not.match(e.message, '    at ');
  }
});

test.run();
