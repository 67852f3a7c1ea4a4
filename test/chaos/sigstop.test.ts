/**
 * Chaos (3): three server processes under steady load; one stops answering (SIGSTOP: its sockets
 * stay open, nothing comes back). With the client's DEFAULT keepalive settings, the socket with calls
 * in flight and nothing coming back is probed early, found silent and failed, and its calls fail over
 * to the others within a 3 s deadline: every call succeeds.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import { poolProtocol, until } from '../helpers/pool-fixture.js';
import { startLoad } from '../helpers/load.js';
import { spawnServer, type ServerProcess } from '../helpers/server-process.js';

const test = suite('chaos: SIGSTOP');
/** The calls' deadline: a common choice for service-to-service calls. */
const DEADLINE_MS = 3000;
let procs: ServerProcess[] = [];
let client: Client | undefined;

test.after(async () => {
  await client?.close();
  await Promise.all(procs.map((p) => p.kill())); // SIGCONT, then SIGKILL
});

test('a server that stops answering (SIGSTOP): its calls fail over within the deadline', async () => {
  procs = await Promise.all(['s1', 's2', 's3'].map((n) => spawnServer(n, { delayMs: 30 })));
  let closedWithError = 0;
  client = createClient({
    protocol: poolProtocol(),
    endpoints: procs.map((p) => p.endpoint),
    timeoutMs: DEADLINE_MS,
    observer: {
      connectionClosed: () => {
        closedWithError++;
      },
    }, // keepalive and everything else: defaults
  });
  const c = client;
  await c.call('read', { delayMs: 0 });
  await until(() => c.stats().every((e) => e.ready === 1), 5000, 'all connected');
  const load = startLoad(c, { concurrency: 12, messages: ['read'], timeoutMs: DEADLINE_MS });
  await sleep(1000);
  const victim = procs[1]!;
  victim.child.kill('SIGSTOP');
  const inFlightAtStop = c.stats().find((e) => e.endpoint === victim.endpoint)!.inFlight;
  await until(() => c.stats().find((e) => e.endpoint === victim.endpoint)!.ready === 0, 10_000, 'keepalive verdict');
  // Answers it wrote just before it stopped may still be read; after the verdict none can come.
  const stoppedAt = { ...load.tally.byServer };
  const detected = load.tally.ok;
  await sleep(2500);
  const t = await load.stop();
  console.log(`  ${JSON.stringify(t)}`);
  assert.is(load.failures(), 0, `failed calls: ${JSON.stringify(t.failed)} ${t.samples.join('; ')}`);
  assert.ok(inFlightAtStop > 0, 'calls were in flight on the stopped server (they had to fail over)');
  assert.ok(closedWithError >= 1, 'the silent connection was failed by keepalive');
  assert.is(t.byServer[victim.name] ?? 0, stoppedAt[victim.name] ?? 0, 'nothing answered by the stopped server');
  assert.ok(t.ok > detected + 100, `load went on after detection: ${t.ok} calls`);
});

test.run();
