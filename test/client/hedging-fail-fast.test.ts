/**
 * Fail fast (gRPC's default): when every endpoint is known down (its last connection attempt failed),
 * calls fail UNAVAILABLE at once instead of waiting `waitForReadyMs`; `waitForReady` (client or call
 * option) keeps waiting. Calls still wait while a connection attempt is in progress (the first one, or
 * the reconnect after a lost connection): a restart behind several endpoints loses no call.
 * The pool's decisions with fakes; the rest with real loopback servers.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import type { ClientOptions } from '../../src/client/client-options.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { freePort, poolProtocol, rejection, startServer, until, type TestServer } from '../helpers/pool-fixture.js';
import { fakePool } from './fake-pool.js';

const test = suite('fail-fast');
const A = '10.0.0.1:1';
const B = '10.0.0.2:1';
const refused = new RpcError(Code.UNAVAILABLE, 'connect ECONNREFUSED');
const clients: Client[] = [];
const servers: TestServer[] = [];

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function client(endpoints: string[], options: Partial<ClientOptions> = {}): Client {
  const c = createClient({ protocol: poolProtocol(), endpoints, waitForReadyMs: 60_000, timeoutMs: 30_000, ...options });
  clients.push(c);
  return c;
}

/** The call failed fast: UNAVAILABLE saying the endpoints are down, not after waitForReadyMs nor its deadline. */
function failedFast(err: RpcError, down: RegExp): void {
  assert.is(err.code, Code.UNAVAILABLE, `${err.codeName}: ${err.message}`);
  assert.match(err.message, down);
  assert.not.match(err.message, /no usable connection within/);
  assert.ok(err.cause !== undefined, 'the connection error is the cause');
}

test('pool: down only when every endpoint failed its last attempt; a lost connection alone is a reconnect in progress', () => {
  const { pool, to, clock } = fakePool([A, B]);
  assert.is(pool.pick().type, 'queue', 'connecting');
  to(A)[0]!.lose(refused, 'transient');
  assert.is(pool.pick().type, 'queue', 'B is still connecting');
  to(B)[0]!.lose(refused, 'transient');
  const r = pool.pick();
  assert.is(r.type, 'down');
  assert.match(r.type === 'down' ? r.error.message : '', /all 2 endpoints are down; .*ECONNREFUSED/);
  clock.advance(10_000);
  assert.is(pool.pick().type, 'down', 'still down while reconnecting (sticky, as gRPC)');
  to(B)[1]!.ready();
  assert.is(pool.pick().type, 'pick', 'B is up again');
  to(B)[1]!.lose();
  assert.is(pool.pick().type, 'queue', 'B lost its connection: its reconnect is in progress, calls wait');
});

test('pool: every endpoint turning down fails the queue through onDown', () => {
  const { pool, to, down } = fakePool([A]);
  pool.pick();
  to(A)[0]!.lose(refused, 'transient');
  assert.is(down.length, 1);
  assert.match(down[0]!.message, /10\.0\.0\.1:1 is down: connect ECONNREFUSED/);
});

test("pool: a server's own refusal to retry later (GOAWAY UNAVAILABLE in the handshake) is not down: calls wait", () => {
  const { pool, to, down } = fakePool([A]);
  pool.pick();
  to(A)[0]!.lose(new RpcError(Code.UNAVAILABLE, 'maxHandshakingConnections (4) reached', { isRemote: true }), 'transient');
  assert.is(pool.pick().type, 'queue');
  assert.equal(down, []);
});

test('pool: the down error keeps the code the endpoints agree on (credentials refused: UNAUTHENTICATED)', () => {
  const { pool, to } = fakePool([A, B]);
  pool.pick();
  const denied = new RpcError(Code.UNAUTHENTICATED, 'token expired');
  to(A)[0]!.lose(denied, 'transient');
  to(B)[0]!.lose(denied, 'transient');
  const r = pool.pick();
  assert.is(r.type === 'down' && r.error.code, Code.UNAUTHENTICATED);
  const { pool: mixed, to: toMixed } = fakePool([A, B]);
  mixed.pick();
  toMixed(A)[0]!.lose(denied, 'transient');
  toMixed(B)[0]!.lose(refused, 'transient');
  const m = mixed.pick();
  assert.is(m.type === 'down' && m.error.code, Code.UNAVAILABLE, 'codes differ: UNAVAILABLE');
});

test('nothing listening: a call fails UNAVAILABLE at once, naming the endpoint and the refusal', async () => {
  const port = await freePort();
  const c = client([`127.0.0.1:${port}`]);
  failedFast(await rejection(c.call('read', { delayMs: 0 })), new RegExp(`127\\.0\\.0\\.1:${port} is down: .*ECONNREFUSED`));
  // Later calls too, while it stays down (no wait for a connection attempt).
  failedFast(await rejection(c.call('write', { delayMs: 0 })), /is down/);
  const e = await rejection(c.call('write', { delayMs: 0 }));
  assert.is(e.mayHaveRun, false, 'never sent');
});

test('waitForReady as a call option: that call waits for the server and succeeds once it starts', async () => {
  const port = await freePort();
  const c = client([`127.0.0.1:${port}`], { backoff: { initialMs: 20, maxMs: 50 } });
  failedFast(await rejection(c.call('read', { delayMs: 0 })), /is down/);
  const waiting = c.call<string>('write', { delayMs: 0 }, { waitForReady: true });
  const other = rejection(c.call('read', { delayMs: 0 }));
  failedFast(await other, /is down/);
  const s = await startServer('late', port);
  servers.push(s);
  assert.is(await waiting, 'late');
});

test('waitForReady as a client option, and a call turning it off', async () => {
  const port = await freePort();
  const c = client([`127.0.0.1:${port}`], { waitForReady: true, backoff: { initialMs: 20, maxMs: 50 } });
  const waiting = c.call<string>('read', { delayMs: 0 });
  await until(() => c.stats()[0]!.lastError !== undefined, 5000, 'a refused attempt');
  failedFast(await rejection(c.call('read', { delayMs: 0 }, { waitForReady: false })), /is down/);
  const s = await startServer('late', port);
  servers.push(s);
  assert.is(await waiting, 'late');
});

test('waitForReady still bounded by waitForReadyMs', async () => {
  const port = await freePort();
  const c = client([`127.0.0.1:${port}`], { waitForReady: true, waitForReadyMs: 200 });
  const err = await rejection(c.call('read', { delayMs: 0 }));
  assert.is(err.code, Code.UNAVAILABLE);
  assert.match(err.message, /no usable connection within 200 ms: .*ECONNREFUSED/);
});

test('one endpoint down beside one up: every call is served, none fails fast', async () => {
  const port = await freePort();
  const up = await startServer('up');
  servers.push(up);
  const c = client([`127.0.0.1:${port}`, up.endpoint]);
  for (let i = 0; i < 20; i++) assert.is(await c.call('read', { delayMs: 0 }), 'up');
});

test('a rolling restart of two servers under load loses no call (fail fast never sees every endpoint down)', async () => {
  const a = await startServer('a');
  const b = await startServer('b');
  servers.push(a, b);
  const c = client([a.endpoint, b.endpoint], { backoff: { initialMs: 20, maxMs: 50 } });
  let stop = false;
  const failures: RpcError[] = [];
  let ok = 0;
  const worker = async (): Promise<void> => {
    while (!stop) {
      await c.call('read', { delayMs: 1 }).then(
        () => ok++,
        (e: unknown) => failures.push(RpcError.from(e)),
      );
    }
  };
  const load = Promise.all(Array.from({ length: 8 }, worker));
  for (const [i, s] of [a, b].entries()) {
    await until(() => ok > 50 * (i + 1), 10_000, 'calls going through');
    await s.close();
    const again = await startServer(`${s.name}2`, s.port);
    servers.push(again);
    await until(() => c.stats().every((e) => e.ready > 0), 10_000, 'both endpoints ready again');
  }
  stop = true;
  await load;
  assert.equal(
    failures.map((e) => e.message),
    [],
  );
  assert.ok(ok > 100, `${ok} calls`);
});

test('options: waitForReady must be a boolean', async () => {
  try {
    createClient({ protocol: poolProtocol(), endpoints: ['127.0.0.1:1'], waitForReady: 1 as unknown as boolean });
    assert.unreachable('accepted 1');
  } catch (err) {
    assert.ok(err instanceof RpcError && err.code === Code.INVALID_ARGUMENT);
    assert.match((err as Error).message, /waitForReady must be a boolean/);
  }
  const c = client(['127.0.0.1:1']);
  const err = await rejection(c.call('read', { delayMs: 0 }, { waitForReady: 'yes' as unknown as boolean }));
  assert.is(err.code, Code.INVALID_ARGUMENT);
  assert.match(err.message, /options\.waitForReady must be a boolean/);
});

test.run();
