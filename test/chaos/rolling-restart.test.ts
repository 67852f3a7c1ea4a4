/**
 * Chaos (2): three server processes under steady load of idempotent and non-idempotent calls; each
 * in turn is closed gracefully (SIGTERM: GOAWAY, in-flight calls finish) and restarted on the same
 * port. Zero failed calls of any kind.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import { poolProtocol, until } from '../helpers/pool-fixture.js';
import { startLoad } from '../helpers/load.js';
import { spawnServer, type ServerProcess } from '../helpers/server-process.js';

const test = suite('chaos: rolling restart');
let procs: ServerProcess[] = [];
let client: Client | undefined;

test.after(async () => {
  await client?.close();
  await Promise.all(procs.map((p) => p.kill()));
});

test('rolling restart of all three servers with graceful close: zero failed calls of any kind', async () => {
  procs = await Promise.all(['s1', 's2', 's3'].map((n) => spawnServer(n, { delayMs: 2 })));
  client = createClient({
    protocol: poolProtocol(),
    endpoints: procs.map((p) => p.endpoint),
    timeoutMs: 5000,
    backoff: { initialMs: 50, maxMs: 500 },
  });
  const c = client;
  await c.call('read', { delayMs: 0 });
  await until(() => c.stats().every((e) => e.ready === 1), 5000, 'all connected');
  const load = startLoad(c, { concurrency: 12, messages: ['read', 'write'] });
  await sleep(500);
  const served: Record<string, number> = {};
  for (let i = 0; i < procs.length; i++) {
    const old = procs[i]!;
    const before = load.tally.byServer[old.name] ?? 0;
    await old.stop();
    served[old.name] = (load.tally.byServer[old.name] ?? 0) - before;
    procs[i] = await spawnServer(old.name, { port: old.port, delayMs: 2 });
    await until(() => c.stats().find((e) => e.endpoint === old.endpoint)!.ready === 1, 5000, `${old.name} reconnected`);
    const back = load.tally.byServer[old.name] ?? 0;
    await until(() => (load.tally.byServer[old.name] ?? 0) > back, 5000, `${old.name} serving again`);
  }
  await sleep(300);
  const t = await load.stop();
  console.log(`  ${JSON.stringify(t)}`);
  assert.is(load.failures(), 0, `failed calls: ${JSON.stringify(t.failed)} ${t.samples.join('; ')}`);
  assert.ok(t.ok > 500, `steady load: ${t.ok} calls`);
  assert.equal(
    c.stats().map((e) => e.ready),
    [1, 1, 1],
    'all three back',
  );
});

test.run();
