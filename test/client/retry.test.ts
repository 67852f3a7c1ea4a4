/**
 * Retries: a call whose server dies under it is retried on another endpoint when its message is
 * idempotent (IDL `@idempotent(true)` or the client's `idempotent` option), within its deadline and
 * under the retry budget; a non-idempotent call that may have run is never retried.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import type { ClientOptions } from '../../src/client/client-options.js';
import type { ConnectionView } from '../../src/client/balancer.js';
import { RetryBudget } from '../../src/client/retry-budget.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { poolProtocol, rejection, startServer, until, type TestServer } from '../helpers/pool-fixture.js';

const test = suite('retry');
const clients: Client[] = [];
let servers: TestServer[] = [];

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** `doomed` runs each call it gets, then dies under it (its sockets destroyed, the call unanswered). */
function dieMidCall(doomed: TestServer): void {
  doomed.hold = () => {
    void doomed.server.close({ graceMs: 0 });
    return new Promise(() => {}); // never answers
  };
}

/** Two servers, A (dies mid-call) and B; a client that sends first attempts to A. */
async function setup(options: Partial<ClientOptions> = {}): Promise<{ a: TestServer; b: TestServer; c: Client }> {
  const a = await startServer('A');
  const b = await startServer('B');
  servers = [a, b];
  const preferA = (cs: readonly ConnectionView[]): ConnectionView => cs.find((v) => v.endpointKey === a.endpoint) ?? cs[0]!;
  const c = createClient({
    protocol: poolProtocol(),
    endpoints: [a.endpoint, b.endpoint],
    balancer: preferA,
    backoff: { initialMs: 50 },
    ...options,
  });
  clients.push(c);
  await c.call('read', { delayMs: 0 });
  await until(() => c.stats().every((e) => e.ready === 1), 5000, 'both ready');
  a.ran.read = 0;
  dieMidCall(a);
  return { a, b, c };
}

test('the IDL annotation is read: read is idempotent, write is not', () => {
  const p = poolProtocol();
  assert.is(p.message('read')!.idempotent, true);
  assert.is(p.message('write')!.idempotent, false);
});

test('an idempotent call whose server dies under it is retried on another endpoint and succeeds', async () => {
  const { a, b, c } = await setup();
  assert.is(await c.call('read', { delayMs: 0 }, { timeoutMs: 5000 }), 'B');
  assert.is(a.ran.read, 1, 'first attempt ran on A');
  assert.is(b.ran.read, 1, 'the retry ran on B');
});

test('a non-idempotent call that may have run is never retried: UNAVAILABLE, handler ran exactly once', async () => {
  const { a, b, c } = await setup();
  const err = await rejection(c.call('write', { delayMs: 0 }, { timeoutMs: 5000 }));
  assert.is(err.code, Code.UNAVAILABLE, err.message);
  assert.is(a.ran.write, 1, 'ran once on A');
  assert.is(b.ran.write ?? 0, 0, 'never sent to B');
});

test('a non-idempotent call whose handler throws UNAVAILABLE (a downstream outage) ran once and is not retried', async () => {
  const { a, b, c } = await setup();
  a.hold = undefined; // A answers, with the error its handler throws after its side effects
  a.failWith = new RpcError(Code.UNAVAILABLE, 'downstream database unavailable');
  const err = await rejection(c.call('write', { delayMs: 0 }, { timeoutMs: 5000 }));
  assert.is(err.code, Code.UNAVAILABLE, err.message);
  assert.is(err.message, 'downstream database unavailable');
  assert.is(a.ran.write, 1, 'ran once on A');
  assert.is(b.ran.write ?? 0, 0, 'never sent to B');
  // An idempotent message with the same failure is retried elsewhere.
  assert.is(await c.call('read', { delayMs: 0 }, { timeoutMs: 5000 }), 'B');
});

test('a non-idempotent call refused after GOAWAY (server shutting down, flagged REFUSED) is retried on another endpoint', async () => {
  const { a, b, c } = await setup();
  // The first write starts A's graceful shutdown and keeps running; the second write, sent in the same
  // batch, reaches A after its GOAWAY and is refused without running.
  a.hold = () => {
    a.hold = undefined;
    void a.server.close({ graceMs: 5000 });
    return new Promise((resolve) => setTimeout(resolve, 100));
  };
  const results = await Promise.all([
    c.call('write', { delayMs: 0 }, { timeoutMs: 5000 }),
    c.call('write', { delayMs: 0 }, { timeoutMs: 5000 }),
  ]);
  assert.equal(results, ['A', 'B']);
  assert.is(a.ran.write, 1, 'A ran only the first');
  assert.is(b.ran.write, 1, 'the refused one ran on B, once');
});

test("the client's idempotent option makes a message retryable", async () => {
  const { a, b, c } = await setup({ idempotent: ['write'] });
  assert.is(await c.call('write', { delayMs: 0 }, { timeoutMs: 5000 }), 'B');
  assert.is(a.ran.write, 1);
  assert.is(b.ran.write, 1);
});

test('maxAttempts 1: no retry even for an idempotent message', async () => {
  const { a, b, c } = await setup({ maxAttempts: 1 });
  const err = await rejection(c.call('read', { delayMs: 0 }, { timeoutMs: 5000 }));
  assert.is(err.code, Code.UNAVAILABLE);
  assert.is(a.ran.read, 1);
  assert.is(b.ran.read ?? 0, 0);
});

test('no retry past the deadline: the caller gets DEADLINE_EXCEEDED, not a late success', async () => {
  const { a, b, c } = await setup();
  // A holds the call until the deadline passes, then dies: the retry would start too late.
  a.hold = () => new Promise(() => {});
  const err = await rejection(c.call('read', { delayMs: 0 }, { timeoutMs: 150 }));
  assert.is(err.code, Code.DEADLINE_EXCEEDED, err.message);
  await a.server.close({ graceMs: 0 });
  assert.is(a.ran.read, 1);
  assert.is(b.ran.read ?? 0, 0, 'not retried after the deadline');
});

test('retry budget: each call deposits ratio of a token, each retry spends one; empty means no retry', () => {
  const budget = new RetryBudget(0.2, 10);
  let retries = 0;
  while (budget.withdraw()) retries++;
  assert.is(retries, 10, 'a burst can spend the saved tokens');
  // Steady state: 1000 calls allow about 200 retries (20% extra load).
  retries = 0;
  for (let i = 0; i < 1000; i++) {
    budget.deposit();
    if (budget.withdraw()) retries++;
  }
  assert.ok(retries >= 195 && retries <= 200, `${retries} retries for 1000 calls`);
  for (let i = 0; i < 1000; i++) budget.deposit();
  assert.ok(budget.available <= 10.2, 'capped at maxTokens');
});

test('retry budget end to end: with every endpoint failing UNAVAILABLE, retries stop at the budget', async () => {
  servers = await Promise.all(['A', 'B', 'C'].map((n) => startServer(n)));
  const tokens = 10;
  const ratio = 0.25; // exact in binary: the token count has no rounding drift
  const c = createClient({
    protocol: poolProtocol(),
    endpoints: servers.map((s) => s.endpoint),
    maxAttempts: 3,
    retryBudgetTokens: tokens,
    retryBudgetRatio: ratio,
    ejectAfterFailures: 1_000_000,
  });
  clients.push(c);
  await c.call('read', { delayMs: 0 });
  for (const s of servers) {
    s.ran.read = 0;
    s.failWith = new RpcError(Code.UNAVAILABLE, 'overloaded'); // thrown by the handler: retried because read is idempotent
  }
  const calls = 200;
  for (let i = 0; i < calls; i++) {
    const err = await rejection(c.call('read', { delayMs: 0 }, { timeoutMs: 5000 }));
    assert.is(err.code, Code.UNAVAILABLE, err.message);
  }
  const runs = servers.map((s) => s.ran.read ?? 0);
  const retries = runs.reduce((a, b) => a + b, 0) - calls;
  // The bucket starts with `tokens` and gains `ratio` per call: 10 + 200 * 0.25 = 60 at most, and
  // less than one token is left unspent. Without the budget, 200 calls x 2 retries = 400.
  assert.ok(retries <= tokens + ratio * calls && retries >= tokens + ratio * calls - 1, `${retries} retries (runs ${runs})`);
  assert.ok(
    runs.every((n) => n > 0),
    `every endpoint took attempts: ${runs}`,
  );
});

test('retryBudgetTokens is validated with its option path', () => {
  for (const bad of [0, 1.5, -1, 'x']) {
    assert.throws(
      () => createClient({ protocol: poolProtocol(), endpoints: ['127.0.0.1:1'], retryBudgetTokens: bad as number }),
      (e: unknown) => e instanceof RpcError && e.code === Code.INVALID_ARGUMENT && e.message.includes('options.retryBudgetTokens'),
    );
  }
});

test.run();
