/**
 * Cancelling an etcd watch while the registry stays open must leave nothing behind: a client that
 * discovered through etcd is closed first, the registry after it (the natural order), and the
 * runner's leak check fails this file if any timer or socket outlives the teardown.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient } from '../../src/client/client.js';
import { createEtcdRegistry, type Registry } from '../../src/discovery/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { poolProtocol, startServer, until, type TestServer } from '../helpers/pool-fixture.js';

const test = suite('etcd: a cancelled watch releases everything');
let etcd: EtcdServer | undefined;
let registry: Registry | undefined;
let server: TestServer | undefined;

test.after(async () => {
  await registry?.close();
  await server?.close();
  await etcd?.stop();
});

test('client closed before the registry: no reconnect timer outlives the registry', async () => {
  etcd = await startEtcd();
  server = await startServer('s1');
  registry = createEtcdRegistry({ hosts: etcd.endpoint, prefix: '/release/' });
  const reg = registry;
  await reg.register({ name: 'pool', version: '1.0.0', host: '127.0.0.1', port: server.port });
  const client = createClient({ protocol: poolProtocol(), discovery: { registry: reg, service: 'pool' }, timeoutMs: 5000 });
  assert.is(await client.call('read', { delayMs: 0 }), 's1');
  await until(() => client.stats().length === 1, 10_000, 'discovered');
  await client.close(); // cancels the watch; the registry stays open
  // A second watch on the same registry, cancelled by its consumer, while the registry stays open.
  const watch = reg.watch('pool')[Symbol.asyncIterator]();
  assert.is((await watch.next()).value?.length, 1);
  await watch.return?.();
  await reg.close();
});

test.run();
