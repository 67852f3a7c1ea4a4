/**
 * Hedged requests: the pure policy (which calls hedge, the p95 delay) fed numbers, and real loopback
 * servers for the rest: a held call is hedged to the other server, the first answer wins, the loser is
 * cancelled on its server (CANCEL), only idempotent unary calls hedge, only to another endpoint, and
 * only while the retry budget has tokens.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Balancer } from '../../src/client/balancer.js';
import { createClient, type Client } from '../../src/client/client.js';
import type { ClientOptions } from '../../src/client/client-options.js';
import { HedgePolicy, LatencyWindow, MIN_SAMPLES } from '../../src/client/hedging.js';
import { parseProtocol } from '../../src/codec/protocol.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { createServer, type Server } from '../../src/server/server.js';
import { rejection, until } from '../helpers/pool-fixture.js';

const test = suite('hedging');

const IDL = `
protocol Hedge {
  @idempotent(true) string read(int n);
  string write(int n);
  string listed(int n);
  @idempotent(true) void ping(int n) oneway;
  @idempotent(true) @stream("server") string watch(int n);
}`;
const protocol = parseProtocol(IDL);

/** A server whose handlers wait at `gate` (when set) and record what happened to each call. */
interface HedgeServer {
  readonly name: string;
  readonly endpoint: string;
  readonly ran: string[];
  /** Calls whose signal aborted (the client cancelled them). */
  readonly cancelled: string[];
  gate: Promise<void> | undefined;
  failWith: Error | undefined;
  close(): Promise<void>;
}

const servers: Server[] = [];
const clients: Client[] = [];
const releases: (() => void)[] = [];

test.after.each(async () => {
  for (const open of releases.splice(0)) open();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 500 })));
});

/** A gate handlers wait at until the test (or the teardown) opens it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  releases.push(open);
  return { wait, open };
}

async function hedgeServer(name: string): Promise<HedgeServer> {
  const t: HedgeServer = { name, endpoint: '', ran: [], cancelled: [], gate: undefined, failWith: undefined, close: () => server.close() };
  const handler =
    (message: string) =>
    async (req: { n: number }, ctx: { signal: AbortSignal }): Promise<string> => {
      const what = `${message}${req.n}`;
      t.ran.push(what);
      ctx.signal.addEventListener('abort', () => t.cancelled.push(what), { once: true });
      if (t.gate !== undefined) await t.gate;
      if (t.failWith !== undefined) throw t.failWith;
      return name;
    };
  const server = createServer({
    protocol,
    handlers: {
      read: handler('read'),
      write: handler('write'),
      listed: handler('listed'),
      ping: () => {},
      watch: async function* () {
        yield name;
      },
    },
  });
  servers.push(server);
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  return Object.assign(t, { endpoint: `127.0.0.1:${bound.port}` });
}

/** Picks a connection to `key` whenever one is offered: the first attempt goes there, the hedge elsewhere. */
const prefer =
  (key: string): Balancer =>
  (conns) =>
    conns.find((c) => c.endpointKey === key) ?? conns[0]!;

function client(endpoints: string[], options: Partial<ClientOptions>): Client {
  const c = createClient({ protocol, endpoints, timeoutMs: 20_000, ...options });
  clients.push(c);
  return c;
}

/** Two servers, A held and preferred, B answering; both connected before the test's call. */
async function pair(options: Partial<ClientOptions>): Promise<{ a: HedgeServer; b: HedgeServer; c: Client; open: () => void }> {
  const a = await hedgeServer('A');
  const b = await hedgeServer('B');
  const c = client([a.endpoint, b.endpoint], { balancer: prefer(a.endpoint), ...options });
  await c.call('listed', { n: 0 });
  await until(() => c.stats().every((s) => s.ready === 1), 5000, 'both endpoints connected');
  a.ran.length = 0;
  b.ran.length = 0;
  const held = gate();
  a.gate = held.wait;
  return { a, b, c, open: held.open };
}

test('policy: only idempotent unary messages are covered (not one-way, not streams)', () => {
  const policy = new HedgePolicy(10, new Set(['listed']));
  const m = (name: string) => protocol.message(name)!;
  assert.ok(policy.covers(m('read')), '@idempotent(true)');
  assert.ok(policy.covers(m('listed')), 'in the idempotent option');
  assert.not.ok(policy.covers(m('write')), 'not idempotent');
  assert.not.ok(policy.covers(m('ping')), 'one-way');
  assert.not.ok(policy.covers(m('watch')), 'a stream');
  assert.is(policy.delayFor(m('read')), 10, 'a fixed delay');
});

test('policy p95: no hedging before enough answers, then the 95th percentile of the recent ones', () => {
  const policy = new HedgePolicy('p95', new Set());
  const read = protocol.message('read')!;
  for (let i = 1; i < MIN_SAMPLES; i++) policy.record(read, i);
  assert.is(policy.delayFor(read), Infinity, `${MIN_SAMPLES - 1} answers: not yet`);
  policy.record(read, MIN_SAMPLES);
  assert.is(policy.delayFor(read), 95, 'p95 of 1..100');
  assert.is(policy.delayFor(protocol.message('listed')!), Infinity, 'per message');
  // The window follows recent latencies: 1000 answers of 2 ms replace the old ones.
  for (let i = 0; i < 1000; i++) policy.record(read, 2);
  assert.is(policy.delayFor(read), 2);
  const w = new LatencyWindow();
  for (let i = 0; i < 94; i++) w.record(1);
  for (let i = 0; i < 6; i++) w.record(50);
  assert.is(w.value, 50, '6% slow: the p95 is slow');
});

test('a held idempotent call is hedged to the other server; the first answer wins, the loser is cancelled there', async () => {
  const { a, b, c } = await pair({ hedgeDelayMs: 20 });
  assert.is(await c.call('read', { n: 1 }), 'B');
  assert.equal(a.ran, ['read1'], 'the first attempt went to A');
  assert.equal(b.ran, ['read1'], 'the hedge to B');
  await until(() => a.cancelled.length === 1, 5000, 'A told to stop (CANCEL)');
  assert.equal(a.cancelled, ['read1']);
  assert.equal(b.cancelled, [], 'the winner was not cancelled');
});

test('messages idempotent by the client option are hedged too', async () => {
  const { a, b, c } = await pair({ hedgeDelayMs: 20, idempotent: ['listed'] });
  assert.is(await c.call('listed', { n: 2 }), 'B');
  assert.equal(a.ran, ['listed2']);
  assert.equal(b.ran, ['listed2']);
});

test('a non-idempotent call is never hedged: it waits for its one server', async () => {
  const { a, b, c, open } = await pair({ hedgeDelayMs: 5 });
  const pending = c.call('write', { n: 3 });
  await until(() => a.ran.length === 1, 5000, 'the call running on A');
  // Long past the hedge delay, B still has not seen it (a bound on waiting, not a timing assertion).
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.ran, []);
  open();
  assert.is(await pending, 'A');
});

test('no hedging without a hedge delay (the default)', async () => {
  const { a, b, c, open } = await pair({});
  const pending = c.call('read', { n: 4 });
  await until(() => a.ran.length === 1, 5000, 'the call running on A');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.ran, []);
  open();
  assert.is(await pending, 'A');
});

test('calls with onTrailer are not hedged (their hooks see one attempt)', async () => {
  const { a, b, c, open } = await pair({ hedgeDelayMs: 5 });
  let trailers = 0;
  const pending = c.call('read', { n: 5 }, { onTrailer: () => trailers++ });
  await until(() => a.ran.length === 1, 5000, 'the call running on A');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.ran, []);
  open();
  assert.is(await pending, 'A');
  assert.is(trailers, 1);
});

test('only to another endpoint: with one server, a held call is not sent twice', async () => {
  const a = await hedgeServer('A');
  const c = client([a.endpoint], { hedgeDelayMs: 5 });
  await c.call('listed', { n: 0 });
  const held = gate();
  a.gate = held.wait;
  const pending = c.call('read', { n: 6 });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(a.ran, ['listed0', 'read6']);
  held.open();
  assert.is(await pending, 'A');
});

test('hedges spend retry-budget tokens: with the budget empty, calls are not hedged', async () => {
  const { a, b, c, open } = await pair({ hedgeDelayMs: 10, retryBudgetTokens: 1, retryBudgetRatio: 0 });
  assert.is(await c.call('read', { n: 7 }), 'B', 'the one token: hedged');
  const pending = c.call('read', { n: 8 });
  await until(() => a.ran.length === 2, 5000, 'the second call running on A');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.ran, ['read7'], 'no token left: no hedge');
  open();
  assert.is(await pending, 'A');
});

test('the first attempt answers after the hedge went out: its answer wins, the hedge is cancelled', async () => {
  const { a, b, c, open } = await pair({ hedgeDelayMs: 10 });
  const heldB = gate();
  b.gate = heldB.wait;
  const pending = c.call('read', { n: 9 });
  await until(() => b.ran.includes('read9'), 5000, 'the hedge running on B');
  open();
  assert.is(await pending, 'A');
  await until(() => b.cancelled.length === 1, 5000, 'B told to stop');
  assert.equal(b.cancelled, ['read9']);
  assert.equal(a.cancelled, []);
});

test('an error answer is an answer: it wins, and the other attempt is cancelled', async () => {
  const { a, b, c, open } = await pair({ hedgeDelayMs: 10 });
  void b;
  b.failWith = new RpcError(Code.NOT_FOUND, 'no such row');
  const err = await rejection(c.call('read', { n: 10 }));
  assert.is(err.code, Code.NOT_FOUND, err.message);
  assert.ok(err.mayHaveRun, 'two attempts ran');
  await until(() => a.cancelled.length === 1, 5000, 'A told to stop');
  open();
});

test('a hedge failing UNAVAILABLE leaves the first attempt to answer', async () => {
  const { b, c, open } = await pair({ hedgeDelayMs: 10, maxAttempts: 1 });
  const heldB = gate();
  b.gate = heldB.wait;
  b.failWith = new RpcError(Code.UNAVAILABLE, 'overloaded');
  let settled = false;
  const pending = c.call('read', { n: 11 }).finally(() => (settled = true));
  await until(() => b.ran.includes('read11'), 5000, 'the hedge running on B');
  heldB.open();
  await new Promise((r) => setTimeout(r, 50));
  assert.not.ok(settled, 'the call waits for its first attempt');
  open();
  assert.is(await pending, 'A');
});

test('a deadline ends a hedged call once, DEADLINE_EXCEEDED, both attempts cancelled', async () => {
  const { a, b, c } = await pair({ hedgeDelayMs: 10 });
  b.gate = gate().wait;
  const err = await rejection(c.call('read', { n: 12 }, { timeoutMs: 150 }));
  assert.is(err.code, Code.DEADLINE_EXCEEDED, err.message);
  await until(() => a.cancelled.length === 1 && b.cancelled.length === 1, 5000, 'both told to stop');
});

test('options: hedgeDelayMs must be ms or p95', () => {
  for (const bad of [-1, 'p99', '10', Number.NaN]) {
    try {
      createClient({ protocol, endpoints: ['127.0.0.1:1'], hedgeDelayMs: bad as number });
      assert.unreachable(`accepted ${String(bad)}`);
    } catch (err) {
      assert.ok(err instanceof RpcError && err.code === Code.INVALID_ARGUMENT, String(err));
      assert.match((err as Error).message, /hedgeDelayMs/);
    }
  }
});

test.run();
