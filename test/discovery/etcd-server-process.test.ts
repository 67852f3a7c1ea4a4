/**
 * Lease expiry with real avrpc server processes: two servers register themselves in a real etcd on
 * `listen`; a client discovers them through a watch. One is killed with SIGKILL (no deregistration):
 * it disappears from the registry after its TTL, and the client's calls go on without a failure.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import { createEtcdRegistry, type Registry } from '../../src/discovery/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { poolProtocol, until } from '../helpers/pool-fixture.js';
import { startLoad } from '../helpers/load.js';
import { spawnServer, type ServerProcess } from '../helpers/server-process.js';

const test = suite('etcd: server process SIGKILL');
const PREFIX = '/sigkill/';
const TTL_SEC = 2;
let etcd: EtcdServer | undefined;
let registry: Registry | undefined;
let client: Client | undefined;
let procs: ServerProcess[] = [];

test.after(async () => {
  await client?.close();
  await registry?.close();
  await Promise.all(procs.map((p) => p.kill()));
  await etcd?.stop();
});

test('a SIGKILLed server process disappears from etcd after its TTL; calls go on without failures', async () => {
  etcd = await startEtcd();
  const etcdOpt = { endpoint: etcd.endpoint, prefix: PREFIX, ttlSec: TTL_SEC };
  procs = await Promise.all(['e1', 'e2'].map((n) => spawnServer(n, { etcd: etcdOpt, delayMs: 10 })));
  registry = createEtcdRegistry({ hosts: etcd.endpoint, prefix: PREFIX });
  const reg = registry;
  assert.equal((await reg.resolve('pool')).map((i) => i.port).sort(), procs.map((p) => p.port).sort(), 'both registered on listen');

  client = createClient({ protocol: poolProtocol(), discovery: { registry: reg, service: 'pool', version: '^1' }, timeoutMs: 3000 });
  const c = client;
  await c.call('read', { delayMs: 0 });
  await until(() => c.stats().length === 2 && c.stats().every((e) => e.ready === 1), 10_000, 'both discovered');
  const load = startLoad(c, { concurrency: 6, messages: ['read'] });
  await sleep(500);
  const victim = procs[0]!;
  await victim.kill('SIGKILL'); // no deregister, no lease revoke: only the TTL removes it
  assert.is((await reg.resolve('pool')).length, 2, 'still registered right after the crash');
  let left = await reg.resolve('pool');
  for (let i = 0; i < 150 && left.length > 1; i++) {
    await sleep(100);
    left = await reg.resolve('pool');
  }
  assert.equal(
    left.map((i) => i.port),
    [procs[1]!.port],
    'gone from etcd after its TTL',
  );
  await until(() => c.stats().length === 1, 5000, 'the client dropped the endpoint it no longer sees');
  const t = await load.stop();
  console.log(`  ${JSON.stringify(t)}`);
  assert.is(load.failures(), 0, `failed calls: ${JSON.stringify(t.failed)} ${t.samples.join('; ')}`);
  assert.ok((t.byServer.e1 ?? 0) > 0 && (t.byServer.e2 ?? 0) > 0, 'both served');
});

test.run();
