/**
 * serveCluster with real processes on 127.0.0.1: an app (test/helpers/cluster-app.ts) whose primary
 * forks N workers accepting on one port; calls answer the pid of the worker that ran them.
 */
import { connect, type Socket } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import { Code } from '../../src/errors/code.js';
import { serveCluster } from '../../src/server/cluster.js';
import { codeOf } from '../helpers/code-of.js';
import { processGone, startClusterApp } from '../helpers/cluster-app.js';
import { poolProtocol } from '../helpers/pool-fixture.js';

const client = (port: number): Client => createClient({ protocol: poolProtocol(), endpoints: [`127.0.0.1:${port}`] });

test('N workers accept on one port: connections go to every worker, none to the primary', async () => {
  const app = startClusterApp({ threads: 3 });
  const ready = await app.waitFor('ready');
  const pids = ready.pids as number[];
  assert.equal(pids.length, 3);
  assert.equal(new Set(pids).size, 3);
  assert.not.ok(pids.includes(app.child.pid!));
  // node:cluster hands connections round: three connections, one after the other, meet three workers.
  const clients = [client(ready.port as number), client(ready.port as number), client(ready.port as number)];
  const seen = new Set<number>();
  for (const c of clients) seen.add(Number(await c.call('read', { delayMs: 0 })));
  assert.equal([...seen].sort(), [...pids].sort());
  await Promise.all(clients.map((c) => c.close()));
  app.child.kill('SIGTERM');
  assert.is(await app.exited, 0);
});

test('SIGTERM to the primary drains every worker: running calls finish, then all exit 0', async () => {
  const app = startClusterApp({ threads: 2, graceMs: 5000 });
  const ready = await app.waitFor('ready');
  const pids = ready.pids as number[];
  const a = client(ready.port as number);
  const b = client(ready.port as number);
  // One connection each, on each worker.
  const ran = [Number(await a.call('read', { delayMs: 0 })), Number(await b.call('read', { delayMs: 0 }))];
  assert.equal(ran.sort(), [...pids].sort());
  const running = [a.call('read', { delayMs: 400 }), b.call('read', { delayMs: 400 })];
  // Both calls are in their handlers (each worker says so) before the signal.
  await app.waitFor('running');
  await app.waitFor('running');
  app.child.kill('SIGTERM');
  assert.equal((await Promise.all(running)).map(Number).sort(), [...pids].sort());
  assert.is(await app.exited, 0);
  for (const pid of pids) await processGone(pid);
  await Promise.all([a.close(), b.close()]);
  // Nothing listens any more.
  const refused = await new Promise<string>((resolve) =>
    connect(ready.port as number, '127.0.0.1')
      .on('connect', function (this: Socket) {
        this.destroy();
        resolve('connected');
      })
      .on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? '')),
  );
  assert.is(refused, 'ECONNREFUSED');
});

test("one metrics view: the primary's /metrics sums every worker's calls", async () => {
  const app = startClusterApp({ threads: 2, metrics: true });
  const ready = await app.waitFor('ready');
  const clients = [client(ready.port as number), client(ready.port as number)];
  const seen = new Set<number>();
  for (let i = 0; i < 5; i++) for (const c of clients) seen.add(Number(await c.call('read', { delayMs: 0 })));
  assert.is(seen.size, 2, 'calls ran on both workers');
  const res = await fetch(ready.metricsUrl as string);
  assert.is(res.status, 200);
  const text = await res.text();
  const m = /^avrpc_calls_total\{side="server",message="read",code="OK"\} (\d+)$/m.exec(text);
  assert.ok(m !== null, text);
  assert.is(Number(m[1]), 10);
  assert.match(text, /^avrpc_connections\{side="server"\} 2$/m);
  await Promise.all(clients.map((c) => c.close()));
  app.child.kill('SIGTERM');
  assert.is(await app.exited, 0);
});

test('a crashed worker is replaced on the same port', async () => {
  const app = startClusterApp({ threads: 2, restartDelayMs: 10 });
  const ready = await app.waitFor('ready');
  const [victim, other] = ready.pids as [number, number];
  process.kill(victim, 'SIGKILL');
  let restarted = await app.next();
  while (restarted.msg !== 'worker restarted') restarted = await app.next();
  assert.is(restarted.worker, 0);
  const fresh = restarted.pid as number;
  assert.ok(fresh !== victim && fresh !== other);
  const seen = new Set<number>();
  const clients = [client(ready.port as number), client(ready.port as number)];
  for (const c of clients) seen.add(Number(await c.call('read', { delayMs: 0 })));
  assert.equal([...seen].sort(), [fresh, other].sort());
  await Promise.all(clients.map((c) => c.close()));
  app.child.kill('SIGTERM');
  assert.is(await app.exited, 0);
});

test('workers stopped one by one with their own SIGTERM are not replaced; the primary then exits 0', async () => {
  const app = startClusterApp({ threads: 2, restartDelayMs: 10 });
  const ready = await app.waitFor('ready');
  const pids = ready.pids as number[];
  for (const pid of pids) {
    process.kill(pid, 'SIGTERM');
    await processGone(pid);
  }
  assert.is(await app.exited, 0);
  assert.not.match(app.output(), /worker restarted/);
});

test('a worker that fails to start fails serveCluster in the primary, and no worker is left', async () => {
  const app = startClusterApp({ threads: 2, failWorker: 1 });
  const failed = await app.waitFor('failed');
  assert.is(failed.code, Code.INTERNAL);
  assert.match(failed.message as string, /worker 1: worker 1 cannot start/);
  assert.is(await app.exited, 1);
});

test('a primary killed outright: its workers drain and exit (no orphans)', async () => {
  const app = startClusterApp({ threads: 2 });
  const ready = await app.waitFor('ready');
  app.child.kill('SIGKILL');
  await app.exited;
  for (const pid of ready.pids as number[]) await processGone(pid);
});

test('bad options fail with INVALID_ARGUMENT before any worker starts', async () => {
  const start = () => {
    throw new Error('not called');
  };
  const bad: unknown[] = [
    undefined,
    {},
    { start, threads: 0 },
    { start, threads: 1.5 },
    { start, thread: 2 },
    { start, listen: { port: 1, register: {} } },
    { start, metrics: { port: -1 } },
    { start, graceMs: -1 },
  ];
  for (const options of bad) {
    assert.is(await codeOf(serveCluster(options as never)), Code.INVALID_ARGUMENT, JSON.stringify(options));
  }
});

test.run();
