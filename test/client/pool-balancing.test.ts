/**
 * Balancing end to end: three real servers on loopback, one of them slow; least-connections steers
 * calls away from it, round-robin does not. A user's balancer function is what picks.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import type { ClientOptions } from '../../src/client/client-options.js';
import type { ConnectionView } from '../../src/client/balancer.js';
import { createStaticRegistry } from '../../src/discovery/index.js';
import { createServer } from '../../src/server/server.js';
import type { CallContext } from '../../src/server/call-context.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { poolProtocol, startServer, until, type TestServer } from '../helpers/pool-fixture.js';

const test = suite('pool balancing');
const CALLS = 600;
const CONCURRENCY = 24;
const SLOW_MS = 15;

let servers: TestServer[] = [];
const clients: Client[] = [];

function client(options: Partial<ClientOptions>): Client {
  const c = createClient({ protocol: poolProtocol(), endpoints: servers.map((s) => s.endpoint), ...options });
  clients.push(c);
  return c;
}

/** Runs CALLS `read` calls, CONCURRENCY at a time; returns how many each server answered. */
async function load(c: Client): Promise<Record<string, number>> {
  // Warm up: calls made before every socket is ready would all go to the first ready one.
  await c.call('read', { delayMs: 0 });
  await until(() => c.stats().every((e) => e.ready > 0), 5000, 'all sockets ready');
  const by: Record<string, number> = {};
  let left = CALLS;
  const worker = async (): Promise<void> => {
    while (left-- > 0) {
      const name = await c.call<string>('read', { delayMs: 0 }, { timeoutMs: 10_000 });
      by[name] = (by[name] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return by;
}

test.before(async () => {
  servers = await Promise.all(['s0', 's1', 'slow'].map((n) => startServer(n)));
  servers[2]!.delayMs = SLOW_MS;
});

test.after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

test('least-connections sends the slow server fewer calls than round-robin does', async () => {
  const rr = await load(client({ balancer: 'roundRobin' }));
  const lc = await load(client({ balancer: 'leastConnections' }));
  const rrShare = (rr.slow ?? 0) / CALLS;
  const lcShare = (lc.slow ?? 0) / CALLS;
  console.log(
    `  slow server share: round-robin ${rrShare.toFixed(3)} ${JSON.stringify(rr)}, least-connections ${lcShare.toFixed(3)} ${JSON.stringify(lc)}`,
  );
  assert.ok(rrShare > 0.3 && rrShare < 0.37, `round-robin gives each server ~1/3: ${JSON.stringify(rr)}`);
  for (const s of ['s0', 's1']) assert.ok((rr[s] ?? 0) / CALLS > 0.3, `round-robin: ${JSON.stringify(rr)}`);
  assert.ok(lcShare < rrShare, `least-connections ${lcShare} < round-robin ${rrShare}`);
  assert.ok(lcShare < 0.2, `least-connections keeps the slow server well under its third: ${JSON.stringify(lc)}`);
  assert.ok(lcShare > 0, 'but still uses it');
  assert.is(
    servers.reduce((n, s) => n + (s.ran.read ?? 0), 0),
    2 * CALLS + 2,
    'every call ran exactly once',
  );
});

test('power-of-two-choices also steers away from the slow server', async () => {
  const p2c = await load(client({ balancer: 'powerOfTwoChoices' }));
  assert.ok((p2c.slow ?? 0) / CALLS < 0.3, JSON.stringify(p2c));
});

test("a user's balancer function picks, over a frozen snapshot of ready connections of every endpoint", async () => {
  const seen: Array<readonly ConnectionView[]> = [];
  const onlyS1 = (candidates: readonly ConnectionView[]): ConnectionView => {
    seen.push(candidates);
    return candidates.find((v) => v.endpointKey === servers[1]!.endpoint) ?? candidates[0]!;
  };
  const c = client({ balancer: onlyS1, connectionsPerEndpoint: 2 });
  // The first call goes out as soon as any socket is ready: wait for all six before counting.
  await c.call('write', { delayMs: 0 });
  await until(() => c.stats().every((e) => e.ready === 2), 5000, 'all sockets ready');
  seen.length = 0;
  const before = servers.map((s) => s.ran.write ?? 0);
  for (let i = 0; i < 20; i++) await c.call('write', { delayMs: 0 });
  assert.equal(
    servers.map((s, i) => (s.ran.write ?? 0) - before[i]!),
    [0, 20, 0],
  );
  assert.is(seen.length, 20, 'called once per call');
  const last = seen[seen.length - 1]!;
  assert.ok(Object.isFrozen(last), 'snapshot is immutable');
  assert.is(last.length, 6, 'three endpoints x connectionsPerEndpoint 2');
  assert.equal([...new Set(last.map((v) => v.endpointKey))].sort(), servers.map((s) => s.endpoint).sort());
  assert.ok(last.every((v) => v.weight === 1 && v.inFlight >= 0 && v.latencyEwmaMs >= 0));
});

test('connectionsPerEndpoint sockets per endpoint; least-connections spreads over all of them', async () => {
  // Servers that count the calls of each client socket, by the socket's port as they see it.
  const perSocket = new Map<string, number>();
  const own = await Promise.all(
    ['p0', 'p1', 'p2'].map(async (name) => {
      const server = createServer({
        protocol: poolProtocol(),
        handlers: {
          read: async (_req: unknown, ctx: CallContext) => {
            const key = `${name} ${ctx.peer.port}`;
            perSocket.set(key, (perSocket.get(key) ?? 0) + 1);
            await sleep(5);
            return name;
          },
          write: () => name,
          spin: () => name,
        },
      });
      const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
      return { server, endpoint: `127.0.0.1:${port}` };
    }),
  );
  const c = createClient({ protocol: poolProtocol(), endpoints: own.map((s) => s.endpoint), connectionsPerEndpoint: 3 });
  try {
    await c.call('read', { delayMs: 0 });
    await until(() => c.stats().every((e) => e.ready === 3), 5000, 'all nine sockets ready');
    perSocket.clear();
    // Started together: each call goes to a socket with the fewest in flight, so 30 over 9 sockets is 3 or 4 each.
    await Promise.all(Array.from({ length: 30 }, () => c.call('read', { delayMs: 0 })));
    const stats = c.stats();
    assert.is(stats.length, 3);
    for (const s of stats) assert.is(s.connections, 3, JSON.stringify(stats));
    const counts = [...perSocket.entries()];
    assert.is(counts.length, 9, `every socket was used: ${JSON.stringify(counts)}`);
    for (const name of ['p0', 'p1', 'p2']) assert.is(counts.filter(([k]) => k.startsWith(`${name} `)).length, 3, JSON.stringify(counts));
    assert.ok(
      counts.every(([, n]) => n === 3 || n === 4),
      `spread evenly: ${JSON.stringify(counts)}`,
    );
  } finally {
    await c.close();
    await Promise.all(own.map((s) => s.server.close({ graceMs: 1000 })));
  }
});

test('weighted follows the weights the servers registered with', async () => {
  const registry = createStaticRegistry();
  const weights = [1, 3, 0];
  const regs = await Promise.all(
    servers.map((s, i) =>
      registry.register({
        name: 'pool',
        version: '1.0.0',
        host: '127.0.0.1',
        port: s.port,
        weight: weights[i]!,
      }),
    ),
  );
  const c = client({ endpoints: undefined, discovery: { registry, service: 'pool' }, balancer: 'weighted' });
  await c.call('read', { delayMs: 0 });
  await until(() => c.stats().length === 3 && c.stats().every((e) => e.ready === 1), 5000, 'all discovered');
  const by: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const name = await c.call<string>('read', { delayMs: 0 });
    by[name] = (by[name] ?? 0) + 1;
  }
  assert.is(by.slow ?? 0, 0, `weight 0 gets nothing: ${JSON.stringify(by)}`);
  assert.ok((by.s1 ?? 0) > 2 * (by.s0 ?? 0), `weight 3 vs 1: ${JSON.stringify(by)}`);
  assert.ok((by.s0 ?? 0) > 40, `weight 1 still gets its quarter: ${JSON.stringify(by)}`);
  await c.close();
  await Promise.all(regs.map((r) => r.deregister()));
  await registry.close();
});

test.run();
