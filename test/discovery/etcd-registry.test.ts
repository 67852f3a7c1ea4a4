import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Etcd3 } from 'etcd3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { createEtcdRegistry, type Registry, type ServiceInstance } from '../../src/discovery/index.js';
import { freePort, startEtcd, type EtcdServer } from '../helpers/etcd.js';

const test = suite('etcd registry');
/** Generous bound for anything that waits on a lease TTL; a bound, not an assertion on timing. */
const BOUND_MS = 15_000;
const base = { name: 'echo', host: '127.0.0.1', port: 7000 };

let etcd: EtcdServer;
/** A raw etcd3 client, to inspect and tamper with what the registry stored. */
let raw: Etcd3;
const registries: Registry[] = [];

/** A registry on the test etcd, closed in `after` even when a test fails half-way. */
function registry(options: Partial<Parameters<typeof createEtcdRegistry>[0]> = {}): Registry {
  const created = createEtcdRegistry({ hosts: etcd.endpoint, ...options });
  registries.push(created);
  return created;
}

const ids = (list: ServiceInstance[]): string[] => list.map((i) => i.id);

/** Reads a watch until a snapshot satisfies `ok`; the watch's signal bounds the wait. */
async function until(watch: AsyncIterator<ServiceInstance[]>, ok: (s: ServiceInstance[]) => boolean): Promise<ServiceInstance[]> {
  for (let r = await watch.next(); !r.done; r = await watch.next()) if (ok(r.value)) return r.value;
  throw new Error('watch ended before the expected snapshot');
}

/** Polls `resolve` (bounded) until `ok` holds; returns the last result. */
async function pollResolve(reg: Registry, name: string, ok: (s: ServiceInstance[]) => boolean): Promise<ServiceInstance[]> {
  const deadline = Date.now() + BOUND_MS;
  let last = await reg.resolve(name);
  while (!ok(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    last = await reg.resolve(name);
  }
  return last;
}

async function rejection(promise: Promise<unknown>): Promise<RpcError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(err, RpcError, 'expected an RpcError');
  return err as RpcError;
}

test.before(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.endpoint });
});

test.after(async () => {
  await Promise.all(registries.map((r) => r.close()));
  raw.close();
  await etcd.stop();
});

test('register stores JSON under prefix/name/version/id with a lease; resolve reads it back', async () => {
  const reg = registry({ prefix: '/t1' }); // trailing slash added
  const r = await reg.register({ ...base, version: '1.2.3', id: 'one', weight: 3, metadata: { zone: 'a' } });
  const stored = await raw.getAll().prefix('/t1/echo/').exec();
  assert.equal(
    stored.kvs.map((kv) => kv.key.toString()),
    ['/t1/echo/1.2.3/one'],
  );
  assert.equal(JSON.parse(stored.kvs[0]!.value.toString()), r.instance);
  assert.is.not(stored.kvs[0]!.lease, '0', 'the key is attached to a lease');
  assert.equal(await reg.resolve('echo'), [r.instance]);
  await r.deregister();
  await r.deregister(); // idempotent
  assert.equal(await reg.resolve('echo'), []);
});

test("semver selection: '^2.1' picks 2.3.0, not 3.0.0 nor 2.0.9", async () => {
  const reg = registry({ prefix: '/t2/' });
  for (const version of ['2.0.9', '2.3.0', '3.0.0']) await reg.register({ ...base, version, id: `v${version}` });
  assert.equal(
    (await reg.resolve('echo', { version: '^2.1' })).map((i) => i.version),
    ['2.3.0'],
  );
  assert.is((await reg.resolve('echo')).length, 3);
});

test('watch sees instances added and removed by another process-level client', async () => {
  const watcherSide = registry({ prefix: '/t3/' });
  const serverSide = registry({ prefix: '/t3/' });
  const watch = watcherSide.watch('echo', { signal: AbortSignal.timeout(BOUND_MS) })[Symbol.asyncIterator]();
  assert.equal(await until(watch, () => true), [], 'first snapshot: current (empty) set');
  const a = await serverSide.register({ ...base, version: '1.0.0', id: 'a' });
  const b = await serverSide.register({ ...base, version: '1.0.0', id: 'b' });
  assert.equal(ids(await until(watch, (s) => s.length === 2)), ['a', 'b']);
  await a.deregister();
  assert.equal(ids(await until(watch, (s) => s.length === 1)), ['b']);
  await b.deregister();
  assert.equal(await until(watch, (s) => s.length === 0), []);
  await watch.return?.();
});

test('lease expiry: a SIGKILLed server disappears from resolve and watch after its TTL', async () => {
  const reg = registry({ prefix: '/t4/' });
  const watch = reg.watch('crashy', { signal: AbortSignal.timeout(2 * BOUND_MS) })[Symbol.asyncIterator]();
  assert.equal(await until(watch, () => true), []);
  const script = [
    `const { createEtcdRegistry } = await import(process.env.DISCOVERY_MODULE);`,
    `const registry = createEtcdRegistry({ hosts: process.env.ETCD_ENDPOINT, prefix: '/t4/', ttlSec: 2 });`,
    `await registry.register({ name: 'crashy', version: '1.0.0', host: '127.0.0.1', port: 9, id: 'child' });`,
    `process.stdout.write('registered\\n');`,
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ETCD_ENDPOINT: etcd.endpoint, DISCOVERY_MODULE: new URL('../../src/discovery/index.js', import.meta.url).href },
  });
  const exited = once(child, 'exit');
  try {
    const failed = exited.then(([code]) => {
      throw new Error(`child exited (${String(code)}) before registering`);
    });
    const [line] = (await Promise.race([once(child.stdout!, 'data'), failed])) as [Buffer];
    assert.is(String(line).trim(), 'registered');
    assert.equal(ids(await until(watch, (s) => s.length === 1)), ['child']);
    assert.equal(ids(await reg.resolve('crashy')), ['child']);
  } finally {
    child.kill('SIGKILL'); // no deregister, no revoke: only the lease TTL can remove it
    await exited;
  }
  assert.equal(await pollResolve(reg, 'crashy', (s) => s.length === 0), [], 'gone from resolve');
  assert.equal(await until(watch, (s) => s.length === 0), [], 'gone from watch');
  await watch.return?.();
});

test('a lost lease is reported and the instance re-registered under a new lease', async () => {
  const errors: RpcError[] = [];
  const reg = registry({ prefix: '/t5/', ttlSec: 3, onError: (err) => errors.push(err) });
  await reg.register({ ...base, version: '1.0.0', id: 'phoenix' });
  const [before] = (await raw.getAll().prefix('/t5/').exec()).kvs;
  await raw.leaseClient.leaseRevoke({ ID: before!.lease }); // etcd drops the key with the lease
  assert.equal(await reg.resolve('echo'), []);
  const back = await pollResolve(reg, 'echo', (s) => s.length === 1);
  assert.equal(ids(back), ['phoenix']);
  const [after] = (await raw.getAll().prefix('/t5/').exec()).kvs;
  assert.is.not(after!.lease, before!.lease);
  assert.ok(
    errors.some((e) => e.code === Code.UNAVAILABLE && e.message.includes('lease')),
    'loss reported via onError',
  );
});

test('malformed values are skipped and reported; close() revokes registrations and ends watches', async () => {
  const errors: RpcError[] = [];
  const reg = registry({ prefix: '/t6/', onError: (err) => errors.push(err) });
  const observer = registry({ prefix: '/t6/' });
  await raw.put('/t6/echo/1.0.0/junk').value('{not json');
  await reg.register({ ...base, version: '1.0.0', id: 'ok' });
  assert.equal(ids(await reg.resolve('echo')), ['ok']);
  assert.ok(errors.some((e) => e.code === Code.INTERNAL && e.message.includes('/t6/echo/1.0.0/junk')));
  let snapshots = 0;
  let first!: () => void;
  const watching = new Promise<void>((resolve) => {
    first = resolve;
  });
  const loop = (async () => {
    for await (const _ of reg.watch('echo')) {
      snapshots++;
      first();
    }
  })();
  await watching;
  await reg.close();
  await loop; // ended by close, not by an error
  assert.is(snapshots, 1);
  assert.equal(await observer.resolve('echo'), [], 'close() revoked the lease');
  assert.is((await rejection(reg.resolve('echo'))).code, Code.FAILED_PRECONDITION);
});

test('bad options are INVALID_ARGUMENT, thrown synchronously, naming the option', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ hosts: etcd.endpoint, ttlSec: 0 }, 'createEtcdRegistry: options.ttlSec must be a positive integer'],
    [{ hosts: etcd.endpoint, ttlSec: 1.5 }, 'options.ttlSec'],
    [{ hosts: [] }, 'options.hosts must not be empty'],
    [{ hosts: [etcd.endpoint, 'localhost:2379'] }, 'options.hosts[1]'],
    [{ hosts: etcd.endpoint, prefix: '' }, 'options.prefix'],
    [{ hosts: etcd.endpoint, onError: 'log' }, 'options.onError'],
  ];
  for (const [options, text] of cases) {
    let thrown: unknown;
    try {
      createEtcdRegistry(options as never);
    } catch (err) {
      thrown = err;
    }
    assert.instance(thrown, RpcError, `accepted ${JSON.stringify(options)}`);
    const { code, message } = thrown as RpcError;
    assert.is(code, Code.INVALID_ARGUMENT);
    assert.ok(message.includes(text), message);
  }
});

test('etcd down: resolve, register and watch fail with UNAVAILABLE', async () => {
  const reg = createEtcdRegistry({ hosts: `http://127.0.0.1:${await freePort()}`, dialTimeoutMs: 1000, callTimeoutMs: 1000 });
  try {
    assert.is((await rejection(reg.resolve('echo'))).code, Code.UNAVAILABLE);
    assert.is((await rejection(reg.register({ ...base, version: '1.0.0' }))).code, Code.UNAVAILABLE);
    const watch = reg.watch('echo')[Symbol.asyncIterator]();
    assert.is((await rejection(watch.next())).code, Code.UNAVAILABLE);
    assert.equal(await watch.next(), { done: true, value: undefined }, 'a failed watch is finished');
  } finally {
    await reg.close();
  }
});

test.run();
