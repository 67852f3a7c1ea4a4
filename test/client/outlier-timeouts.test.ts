/**
 * Issue 14: a server that answers PINGs but never answers calls was never ejected (round-robin: 20 of
 * 58 calls failed in 6 s). Timeouts now count toward failure-percentage outlier detection when other
 * endpoints answered the same message in time, so after a detection interval calls stop going to it;
 * deadlines too short for every server eject none. Two real servers on 127.0.0.1.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import type { BalancerName } from '../../src/client/balancer.js';
import { Code } from '../../src/errors/code.js';
import { poolProtocol, startServer, until, type TestServer } from '../helpers/pool-fixture.js';

const test = suite('outlier detection: timeouts');
let good: TestServer;
let hole: TestServer;
const clients: Client[] = [];

test.before.each(async () => {
  good = await startServer('good');
  hole = await startServer('hole');
});

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all([good.close(100), hole.close(100)]);
});

function client(balancer: BalancerName): Client {
  const c = createClient({
    protocol: poolProtocol(),
    endpoints: [good.endpoint, hole.endpoint],
    balancer,
    // Only the failure-percentage rule: consecutive failures alone would never reach 1000 here.
    ejectAfterFailures: 1000,
    ejectIntervalMs: 300,
    ejectMinCalls: 4,
    ejectMs: 60_000,
    maxAttempts: 1,
  });
  clients.push(c);
  return c;
}

/** Runs `n` calls at once with a 150 ms deadline; counts who answered and how many failed. */
async function burst(c: Client, n: number): Promise<{ good: number; deadline: number }> {
  const results = await Promise.all(
    Array.from({ length: n }, () =>
      c.call('write', { delayMs: 0 }, { timeoutMs: 150 }).then(
        (r: string) => r,
        (e: { code?: number }) => (e.code === Code.DEADLINE_EXCEEDED ? 'deadline' : Promise.reject(e)),
      ),
    ),
  );
  return { good: results.filter((r) => r === 'good').length, deadline: results.filter((r) => r === 'deadline').length };
}

for (const balancer of ['roundRobin', 'leastConnections'] as const) {
  test(`${balancer}: a server that answers PINGs but never calls is ejected after an interval; then every call goes to the other`, async () => {
    hole.hold = () => new Promise<void>(() => undefined); // its handlers never finish; its PONGs come at once
    const c = client(balancer);
    await c.call('write', { delayMs: 0 }, { timeoutMs: 150 }).catch(() => undefined); // connects the pool
    await until(() => c.stats().every((e) => e.ready === 1), 5000, 'both connected');
    const goodBefore = good.ran.write ?? 0;
    const holeBefore = hole.ran.write ?? 0;
    let failed = 0;
    let bursts = 0;
    const holeStats = (): { ejected: boolean } => c.stats().find((e) => e.endpoint === hole.endpoint)!;
    while (!holeStats().ejected) {
      assert.ok(++bursts <= 40, `never ejected: ${hole.ran.write ?? 0} calls reached it, ${failed} failed, ${JSON.stringify(c.stats())}`);
      failed += (await burst(c, 8)).deadline;
    }
    assert.ok(failed >= 4, `the failures that ejected it: ${failed}`);
    assert.is(failed, (hole.ran.write ?? 0) - holeBefore, 'every call the silent server took failed at its deadline, and only those');
    const reached = hole.ran.write;
    const after = await burst(c, 40);
    assert.equal(after, { good: 40, deadline: 0 }, 'ejected: every call is served');
    assert.is(hole.ran.write, reached, 'no call reached it while ejected');
    assert.is((good.ran.write ?? 0) - goodBefore, bursts * 8 - failed + 40, 'all the other calls were served by good');
  });
}

test('deadlines too short for every server eject none: both slow, every call times out, both stay in rotation', async () => {
  good.delayMs = 400;
  hole.delayMs = 400;
  const c = client('roundRobin');
  let failed = 0;
  for (let i = 0; i < 6; i++) failed += (await burst(c, 8)).deadline;
  assert.is(failed, 48, 'every call timed out');
  await new Promise((r) => setTimeout(r, 400)); // at least one more interval ends
  assert.equal(
    c.stats().map((e) => e.ejected),
    [false, false],
  );
  good.delayMs = 0;
  hole.delayMs = 0;
  const after = await Promise.all(Array.from({ length: 10 }, () => c.call('write', { delayMs: 0 })));
  assert.equal(new Set(after), new Set(['good', 'hole']), 'both still serve');
});

test.run();
