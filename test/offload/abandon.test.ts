/**
 * A worker handler that never looks at its cancellation (a CPU loop without `ctx.cancelled`) cannot
 * hold its thread forever: `abandonGraceMs` after its call ended, the task is aborted, piscina
 * terminates that thread and starts another, and a one-thread pool serves the next call.
 */
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, type Client, type Server } from '../../src/index.js';
import { codeOf } from '../helpers/code-of.js';
import { REPORT_CHANNEL, type AbortReport } from './bulk-handlers.js';
import { bulkProtocol, rows } from './bulk-protocol.js';

const protocol = bulkProtocol();
let server: Server;
let client: Client;
let channel: BroadcastChannel;
const started = new Map<string, () => void>();
const warnings: string[] = [];
const logger = { debug() {}, info() {}, warn: (_: object, msg?: string) => warnings.push(msg ?? ''), error() {} };

test.before(async () => {
  server = createServer({
    protocol,
    handlers: {},
    logger,
    workers: {
      module: new URL('./bulk-handlers.js', import.meta.url),
      messages: ['echo'],
      threads: 1,
      offload: 'always',
      abandonGraceMs: 50,
    },
  });
  const { port } = await server.listen();
  client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  channel = new BroadcastChannel(REPORT_CHANNEL);
  channel.onmessage = (event) => {
    const r = (event as { data: AbortReport }).data;
    if (r.code === -1) started.get(r.tag)?.();
  };
});

test.after(async () => {
  channel.close();
  await client.close();
  await server.close();
});

function hangs(tag: string): { started: Promise<void>; row: { id: number; name: string; tags: string[]; score: number } } {
  return { started: new Promise<void>((resolve) => started.set(tag, resolve)), row: { id: 1, name: tag, tags: [], score: 0 } };
}

/** The next call needs the pool's only thread: it can run only once the stuck one was replaced. */
async function poolServesAgain(): Promise<void> {
  // timeoutMs bounds the wait when the thread is never freed (the old behaviour): a hang guard, not a timing check.
  const r = (await client.call('echo', { rows: rows(3), action: 'echo' }, { timeoutMs: 10_000 })) as { rows: unknown[]; threadId: number };
  assert.is(r.rows.length, 3);
  assert.not.equal(r.threadId, threadId);
}

test('a cancelled handler that spins forever is terminated after the grace period; the pool recovers', async () => {
  const h = hangs('stuck-cancel');
  const abort = new AbortController();
  const call = codeOf(client.call('echo', { rows: [h.row], action: 'hang' }, { signal: abort.signal }));
  await h.started;
  abort.abort();
  assert.is(await call, Code.CANCELLED);
  await poolServesAgain();
  assert.ok(
    warnings.some((w) => w.includes('worker task still unanswered')),
    `warnings: ${warnings.join(' | ')}`,
  );
});

test('a handler past its deadline that spins forever is terminated too', async () => {
  const h = hangs('stuck-deadline');
  const call = codeOf(client.call('echo', { rows: [h.row], action: 'hang' }, { timeoutMs: 200 }));
  await h.started;
  assert.is(await call, Code.DEADLINE_EXCEEDED);
  await poolServesAgain();
});

test('calls queued behind a stuck handler run once it is terminated', async () => {
  const h = hangs('stuck-queue');
  const abort = new AbortController();
  const call = codeOf(client.call('echo', { rows: [h.row], action: 'hang' }, { signal: abort.signal }));
  await h.started;
  // Queued behind the stuck thread before the stuck call is cancelled.
  const queued = client.call('echo', { rows: rows(2), action: 'echo' }, { timeoutMs: 10_000 }) as Promise<{ rows: unknown[] }>;
  abort.abort();
  assert.is(await call, Code.CANCELLED);
  assert.is((await queued).rows.length, 2);
});

test.run();
