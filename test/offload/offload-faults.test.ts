/**
 * Worker offload, failure side: client cancellation and deadlines reach the handler's `ctx.signal`
 * (and `ctx.cancelled`) inside the worker; a worker that crashes or exits fails only its own call with
 * INTERNAL and the pool recovers.
 */
import { connect, type Socket } from 'node:net';
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, RpcError, type Client, type Server } from '../../src/index.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { Flag, FrameType, PREFACE } from '../../src/framing/frame.js';
import { writeRequest } from '../../src/framing/bodies.js';
import { helloType, writeHandshake } from '../../src/framing/handshake.js';
import { SocketReader } from '../helpers/socket-reader.js';
import { REPORT_CHANNEL, type AbortReport } from './bulk-handlers.js';
import { bulkProtocol, rows } from './bulk-protocol.js';
import { codeOf } from '../helpers/code-of.js';

const protocol = bulkProtocol();
let server: Server;
let serverPort: number;
let client: Client;
let channel: BroadcastChannel;
const reports = new Map<string, (r: AbortReport) => void>();
const logged: string[] = [];
const errors: Array<{ obj: Record<string, unknown>; msg: string }> = [];
const logger = {
  debug() {},
  info() {},
  warn: (_: object, msg?: string) => logged.push(msg ?? ''),
  error: (obj: object, msg?: string) => {
    logged.push(msg ?? '');
    errors.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' });
  },
};

test.before(async () => {
  server = createServer({
    protocol,
    handlers: {},
    logger,
    workers: { module: new URL('./bulk-handlers.js', import.meta.url), messages: ['echo'], threads: 2, offload: 'always' },
  });
  const { port } = await server.listen();
  serverPort = port;
  client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  channel = new BroadcastChannel(REPORT_CHANNEL);
  channel.onmessage = (event) => {
    const report = (event as { data: AbortReport }).data;
    reports.get(`${report.tag}/${report.code === -1 ? 'started' : 'aborted'}`)?.(report);
  };
});

test.after(async () => {
  channel.close();
  await client.close();
  await server.close();
});

/** Resolves when the handler of the call tagged `tag` reports that its signal aborted (or that it started). */
function reported(tag: string, phase: 'started' | 'aborted' = 'aborted'): Promise<AbortReport> {
  return new Promise((resolve) => reports.set(`${tag}/${phase}`, resolve));
}

/** A call whose handler waits for its signal; the first row's name tags it. */
function waiting(tag: string, action: 'wait' | 'spin', options: { signal?: AbortSignal; timeoutMs?: number }): Promise<number> {
  return codeOf(client.call('echo', { rows: [{ id: 1, name: tag, tags: [], score: 0 }], action }, options));
}

test('a client cancel aborts ctx.signal in the worker handler', async () => {
  const abort = new AbortController();
  const started = reported('cancel-me', 'started');
  const report = reported('cancel-me');
  const call = waiting('cancel-me', 'wait', { signal: abort.signal });
  assert.not.equal((await started).threadId, threadId);
  abort.abort();
  assert.is(await call, Code.CANCELLED);
  const r = await report;
  assert.is(r.code, Code.CANCELLED);
  assert.not.equal(r.threadId, threadId);
});

/**
 * Sends one REQUEST with a deadline over a hand-driven socket that never cancels, so that only the
 * server's deadline can end the call (a real client also cancels when its own deadline passes, which
 * races the server's timer).
 */
async function rawCallWithDeadline(tag: string, action: string, timeoutMs: number): Promise<Socket> {
  const socket = connect(serverPort, '127.0.0.1');
  const reader = new SocketReader(socket);
  const enc = new FrameEncoder();
  enc.bytes(PREFACE);
  const hello = { fingerprint: protocol.fingerprint, protocol: null, knownServerFingerprint: protocol.fingerprint, meta: {} };
  enc.frame(FrameType.HELLO, 0, 0, hello, writeHandshake(helloType));
  for (const b of enc.take()) socket.write(b);
  const welcome = await reader.frame();
  assert.is(welcome[4], FrameType.WELCOME);
  const draft = {
    index: protocol.message('echo')!.index,
    timeoutMs,
    metadata: undefined,
    type: protocol.message('echo')!.request,
    value: { rows: [{ id: 1, name: tag, tags: [], score: 0 }], action },
  };
  enc.frame(FrameType.REQUEST, Flag.DEADLINE, 1, draft, writeRequest);
  for (const b of enc.take()) socket.write(b);
  return socket;
}

test('the server-side deadline aborts ctx.signal in the worker handler', async () => {
  const report = reported('deadline');
  const socket = await rawCallWithDeadline('deadline', 'wait', 100);
  const r = await report;
  socket.destroy();
  assert.is(r.code, Code.DEADLINE_EXCEEDED);
  assert.not.equal(r.threadId, threadId);
});

test('a client deadline ends the worker handler too (DEADLINE_EXCEEDED or the CANCEL the client sends then)', async () => {
  const report = reported('client-deadline');
  assert.is(await waiting('client-deadline', 'wait', { timeoutMs: 100 }), Code.DEADLINE_EXCEEDED);
  assert.ok([Code.DEADLINE_EXCEEDED, Code.CANCELLED].includes((await report).code as never));
});

test('a CPU-bound handler sees ctx.cancelled turn true (shared flag, no event loop needed)', async () => {
  const report = reported('spin');
  const socket = await rawCallWithDeadline('spin', 'spin', 100);
  assert.is((await report).code, Code.DEADLINE_EXCEEDED);
  socket.destroy();
  const abort = new AbortController();
  const started = reported('spin-cancel', 'started');
  const cancelled = reported('spin-cancel');
  const call = waiting('spin-cancel', 'spin', { signal: abort.signal });
  await started;
  abort.abort();
  assert.is(await call, Code.CANCELLED);
  assert.is((await cancelled).code, Code.CANCELLED);
});

for (const action of ['crash', 'exit'] as const) {
  test(`a worker that dies (${action}) fails only its own call with INTERNAL; the pool recovers`, async () => {
    const others = Array.from({ length: 6 }, (_, i) => client.call('echo', { rows: rows(50, i), action: 'echo' }));
    const dying = codeOf(client.call('echo', { rows: [], action }));
    const results = (await Promise.all(others)) as Array<{ rows: unknown[] }>;
    assert.is(await dying, Code.INTERNAL);
    assert.equal(
      results.map((r) => r.rows.length),
      [50, 50, 50, 50, 50, 50],
    );
    for (let i = 0; i < 4; i++) {
      const after = (await client.call('echo', { rows: rows(3), action: 'echo' })) as { rows: unknown[]; threadId: number };
      assert.is(after.rows.length, 3);
      assert.not.equal(after.threadId, threadId);
    }
  });
}

test('a worker that dies between calls is logged and replaced; the server lives on', async () => {
  const r = (await client.call('echo', { rows: [], action: 'late-crash' })) as { threadId: number };
  assert.not.equal(r.threadId, threadId);
  // Bounded wait for the pool's 'error' event to reach the logger (a hang guard, not a timing check).
  for (let i = 0; i < 200 && !logged.some((m) => m.includes('died outside a call')); i++) await new Promise((res) => setTimeout(res, 10));
  assert.ok(
    logged.some((m) => m.includes('died outside a call')),
    `logged: ${logged.join(' | ')}`,
  );
  for (let i = 0; i < 4; i++) {
    const after = (await client.call('echo', { rows: rows(2), action: 'echo' })) as { rows: unknown[] };
    assert.is(after.rows.length, 2);
  }
});

test("a worker handler's INTERNAL error is logged with its message and stack; the client gets the message only", async () => {
  errors.length = 0;
  try {
    await client.call('echo', { rows: [], action: 'error' });
    assert.unreachable('should fail');
  } catch (err) {
    assert.is((err as RpcError).code, Code.INTERNAL);
    assert.is((err as RpcError).message, 'handler blew up');
  }
  const entry = errors.find((e) => e.msg === 'handler failed in a worker');
  assert.ok(entry !== undefined, `logged: ${logged.join(' | ')}`);
  const e = entry.obj.err as Error;
  assert.instance(e, Error);
  assert.is(e.message, 'handler blew up');
  // The worker's stack: where the handler threw.
  assert.match(e.stack ?? '', 'bulk-handlers');
  assert.is(entry.obj.message, 'echo');
});

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
