/**
 * Ending an etcd watch must leave nothing behind and never hang: a client that discovered through
 * etcd is closed first and the registry after it (the natural order), a watch that etcd itself
 * cancelled (compacted revision) still lets the registry close, and the runner's leak check fails
 * this file if any timer or socket outlives the teardown.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient } from '../../src/client/client.js';
import { createEtcdRegistry, type Registry } from '../../src/discovery/index.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { poolProtocol, startServer, until, type TestServer } from '../helpers/pool-fixture.js';

const test = suite('etcd: ending a watch releases everything');
/** Bound on a close that must not hang (a hang detector, not a timing assertion). */
const BOUND_MS = 10_000;
let etcd: EtcdServer;
let raw: Etcd3;
const registries: Registry[] = [];
const servers: TestServer[] = [];

function registry(prefix: string): Registry {
  const created = createEtcdRegistry({ hosts: etcd.endpoint, prefix });
  registries.push(created);
  return created;
}

/** 'closed', or 'hung' when `close` did not settle within BOUND_MS. */
async function closeBounded(reg: Registry): Promise<string> {
  const bound = new AbortController();
  const result = await Promise.race([reg.close().then(() => 'closed'), sleep(BOUND_MS, 'hung', { signal: bound.signal })]);
  bound.abort();
  return result;
}

test.before(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.endpoint });
});

test.after(async () => {
  // Bounded, so a hung close fails the test above instead of the whole file timing out.
  await Promise.all(registries.map((r) => closeBounded(r)));
  await Promise.all(servers.map((s) => s.close()));
  raw.close();
  await etcd.stop();
});

test('client closed before the registry: no reconnect timer outlives the registry', async () => {
  const server = await startServer('s1');
  servers.push(server);
  const reg = registry('/release/');
  await reg.register({ name: 'pool', version: '1.0.0', host: '127.0.0.1', port: server.port });
  const client = createClient({ protocol: poolProtocol(), discovery: { registry: reg, service: 'pool' }, timeoutMs: 5000 });
  assert.is(await client.call('read', { delayMs: 0 }), 's1');
  await until(() => client.stats().length === 1, 10_000, 'discovered');
  await client.close(); // cancels the watch; the registry stays open
  // A second watch on the same registry, ended by its consumer, while the registry stays open.
  const watch = reg.watch('pool')[Symbol.asyncIterator]();
  assert.is((await watch.next()).value?.length, 1);
  await watch.return?.();
  assert.is(await closeBounded(reg), 'closed');
});

test('a watch etcd cancelled (its start revision was compacted) fails UNAVAILABLE, and the registry still closes', async () => {
  const reg = registry('/compacted/');
  await reg.register({ name: 'pool', version: '1.0.0', host: '127.0.0.1', port: 7000 });
  // The race this reproduces: the registry reads, then etcd compacts past that read before the
  // watch (which starts right after it) is created. Real etcd operations, done in that window.
  const client = (reg as unknown as { client: Etcd3 }).client;
  const getAll = client.getAll.bind(client);
  let compacted = false;
  client.getAll = () => {
    const builder = getAll();
    const exec = builder.exec.bind(builder);
    builder.exec = async () => {
      const response = await exec();
      if (!compacted) {
        compacted = true;
        for (let i = 0; i < 3; i++) await raw.put('/compacted/other').value(String(i));
        await raw.kv.compact({ revision: (await raw.get('/compacted/other').exec()).header.revision });
      }
      return response;
    };
    return builder;
  };
  const watch = reg.watch('pool')[Symbol.asyncIterator]();
  assert.is((await watch.next()).value?.length, 1, 'the snapshot read before the compaction');
  const err = await watch.next().then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(err, RpcError);
  assert.is((err as RpcError).code, Code.UNAVAILABLE, (err as RpcError).message);
  assert.is(await closeBounded(reg), 'closed', 'close() must not wait forever on the watch etcd already cancelled');
});

test.run();
