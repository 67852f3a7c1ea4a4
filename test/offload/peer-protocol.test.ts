/**
 * A peer whose protocol differs from the server's: each worker learns the peer's protocol text once
 * (by fingerprint) and later tasks carry only the fingerprint, not up to 1 MiB of text per call. A
 * worker that does not know the fingerprint (its first such call, or a worker started after a crash)
 * hands the payload back and the task is sent again with the text.
 */
import { threadId } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, parseProtocol, RpcError } from '../../src/index.js';
import { CallContext } from '../../src/server/call-context.js';
import { OffloadedRequest, OffloadPool } from '../../src/server/offload/offload-pool.js';
import { ReplyKind } from '../../src/server/offload/offload-task.js';
import { bulkIdlV2, bulkProtocol, rows } from './bulk-protocol.js';

const HANDLERS_URL = new URL('./bulk-handlers.js', import.meta.url);
const protocol = bulkProtocol();
const older = parseProtocol(bulkIdlV2);
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

test('each worker gets the peer protocol text once, and again after a crash replaced it', async () => {
  const pool = new OffloadPool(
    {
      moduleUrl: HANDLERS_URL.href,
      messages: new Set([protocol.message('echo')!.index]),
      threads: 1,
      offload: 'always',
      thresholdBytes: 0,
      maxTasks: 8,
      abandonGraceMs: 5000,
    },
    protocol,
    16,
    false,
    quiet,
  );
  const msg = older.message('echo')!;
  const call = async (action: string) => {
    const body = msg.request.toBuffer({ rows: [{ id: 7, name: 'seven', tags: ['x'], extra: 'e' }], action });
    const ctx = new CallContext('echo', {}, Infinity, { address: '127.0.0.1', port: 1 });
    const reply = await pool.run(protocol.message('echo')!.index, new OffloadedRequest(older, msg.index, body, 0), ctx);
    assert.is(reply.kind, ReplyKind.RESPONSE);
    return protocol.message('echo')!.response.fromBuffer(reply.body) as { rows: Array<{ name: string; score: number }> };
  };
  try {
    for (let i = 0; i < 4; i++) {
      const r = await call('echo');
      // Resolved in the worker: the older Row has no score, the server's default fills it.
      assert.equal([r.rows[0]!.name, r.rows[0]!.score], ['seven', 1.5]);
    }
    assert.is(pool.protocolTextsSent, 1, 'the text went once, to the only worker');
    try {
      await call('crash');
      assert.unreachable('the crash fails its call');
    } catch (err) {
      assert.is((err as RpcError).code, Code.INTERNAL);
    }
    for (let i = 0; i < 3; i++) assert.is((await call('echo')).rows[0]!.name, 'seven');
    assert.is(pool.protocolTextsSent, 2, 'the new worker learned the text once');
  } finally {
    await pool.close();
  }
});

test('an older-schema client through a worker still works after that worker crashed', async () => {
  const server = createServer({
    protocol,
    handlers: {},
    workers: { module: HANDLERS_URL, messages: ['echo'], threads: 1, offload: 'always' },
  });
  const { port } = await server.listen();
  const client = createClient({ protocol: older, endpoints: [`127.0.0.1:${port}`] });
  try {
    const sent = [{ id: 1, name: 'one', tags: [], extra: 'kept by the client only' }];
    assert.is(((await client.call('echo', { rows: sent, action: 'echo' })) as { rows: unknown[] }).rows.length, 1);
    try {
      await client.call('echo', { rows: [], action: 'crash' });
      assert.unreachable('the crash fails its call');
    } catch (err) {
      assert.is((err as RpcError).code, Code.INTERNAL);
    }
    for (let i = 0; i < 3; i++) {
      const r = (await client.call('echo', { rows: rows(2).map(({ id, name, tags }) => ({ id, name, tags })), action: 'echo' })) as {
        rows: Array<{ extra: string }>;
        threadId: number;
      };
      assert.equal(
        r.rows.map((row) => row.extra),
        ['x', 'x'],
      );
      assert.not.equal(r.threadId, threadId);
    }
  } finally {
    await client.close();
    await server.close();
  }
});

test.run();
