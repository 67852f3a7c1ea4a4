/**
 * Chaos (1): three server processes under steady load; one is killed with SIGKILL mid-run. Its calls
 * in flight die with the socket and, being idempotent, are retried on the other two: zero failures.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import { poolProtocol, until } from '../helpers/pool-fixture.js';
import { startLoad } from '../helpers/load.js';
import { spawnServer, type ServerProcess } from '../helpers/server-process.js';

const test = suite('chaos: SIGKILL');
let procs: ServerProcess[] = [];
let client: Client | undefined;

test.after(async () => {
  await client?.close();
  await Promise.all(procs.map((p) => p.kill()));
});

test('SIGKILL one of three servers under load: zero failed idempotent calls', async () => {
  procs = await Promise.all(['s1', 's2', 's3'].map((n) => spawnServer(n, { delayMs: 30 })));
  client = createClient({ protocol: poolProtocol(), endpoints: procs.map((p) => p.endpoint), timeoutMs: 3000 });
  const c = client;
  await c.call('read', { delayMs: 0 });
  await until(() => c.stats().every((e) => e.ready === 1), 5000, 'all connected');
  const load = startLoad(c, { concurrency: 12, messages: ['read'] });
  await sleep(1500);
  const victim = procs[1]!;
  const victimInFlight = (): number => c.stats().find((e) => e.endpoint === victim.endpoint)!.inFlight;
  // Kill at a moment the victim holds calls, so the test always exercises their retry.
  await until(() => victimInFlight() > 0, 5000, 'calls in flight on the victim');
  const inFlightAtKill = victimInFlight();
  const beforeKill = load.tally.byServer[victim.name] ?? 0;
  await victim.kill('SIGKILL');
  await until(() => c.stats().find((e) => e.endpoint === victim.endpoint)!.ready === 0, 5000, 'client saw the crash');
  const afterCrash = { ...load.tally.byServer };
  await sleep(2000);
  const t = await load.stop();
  console.log(`  ${JSON.stringify(t)}; calls in flight on the victim when killed: ${inFlightAtKill}`);
  assert.is(load.failures(), 0, `failed calls: ${JSON.stringify(t.failed)} ${t.samples.join('; ')}`);
  assert.ok(inFlightAtKill > 0, 'calls were in flight on the victim when it died (they had to be retried)');
  assert.ok(beforeKill > 10, 'the victim served its share before the kill');
  assert.is(t.byServer[victim.name] ?? 0, afterCrash[victim.name] ?? 0, 'and nothing after');
  for (const s of ['s1', 's3']) assert.ok((t.byServer[s] ?? 0) > (afterCrash[s] ?? 0), `${s} kept serving`);
  assert.ok(t.ok > 100, `steady load: ${t.ok} calls`);
});

test.run();
