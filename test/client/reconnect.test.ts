/**
 * Reconnection: exponential backoff with jitter (pure policy), a server that is down when the first
 * call is made and starts later on that port, and a client that keeps working across a restart.
 */
import { createHook } from 'node:async_hooks';
import { createServer as createNetServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Backoff } from '../../src/client/backoff.js';
import { createClient, type Client } from '../../src/client/client.js';
import { Code } from '../../src/errors/code.js';
import { freePort, poolProtocol, rejection, seeded, startServer, until, type TestServer } from '../helpers/pool-fixture.js';

const test = suite('reconnect');
const clients: Client[] = [];
const servers: TestServer[] = [];

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

test('backoff grows by the multiplier up to the cap, spread by jitter, and resets on success', () => {
  const opts = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 };
  const mid = new Backoff(opts, () => 0.5); // jitter factor exactly 1
  assert.equal(
    Array.from({ length: 6 }, () => mid.fail()),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.is(mid.attempts, 6);
  mid.reset();
  assert.is(mid.fail(), 100, 'starts over after a success');
  assert.is(new Backoff(opts, () => 0).fail(), 80, 'lowest: -20%');
  assert.is(new Backoff(opts, () => 0.999999).fail(), 120, 'highest: +20%');
  // Two clients failing in lockstep do not retry in lockstep.
  const a = new Backoff(opts, seeded(1));
  const b = new Backoff(opts, seeded(2));
  const da = Array.from({ length: 5 }, () => a.fail());
  const db = Array.from({ length: 5 }, () => b.fail());
  assert.ok(
    da.some((d, i) => d !== db[i]),
    `jittered: ${da} vs ${db}`,
  );
  for (let i = 0; i < 5; i++) {
    const base = Math.min(1000, 100 * 2 ** i);
    assert.ok(da[i]! >= base * 0.8 && da[i]! <= base * 1.2, `${da[i]} within 20% of ${base}`);
  }
});

test('server down at the first call, waitForReady: the call waits and succeeds once the server starts on that port', async () => {
  const port = await freePort();
  const c = createClient({
    protocol: poolProtocol(),
    waitForReady: true,
    endpoints: [`127.0.0.1:${port}`],
    backoff: { initialMs: 50, maxMs: 200 },
  });
  clients.push(c);
  const call = c.call<string>('write', { delayMs: 0 }, { timeoutMs: 8000 });
  // Let several connection attempts fail first.
  await until(() => c.stats()[0]!.lastError !== undefined, 5000, 'a failed connection attempt');
  await sleep(300);
  assert.is(c.stats()[0]!.ready, 0);
  const s = await startServer('late', port);
  servers.push(s);
  assert.is(await call, 'late', 'the queued non-idempotent call ran once the server came up');
  assert.is(s.ran.write, 1);
  assert.is(await c.call('read', { delayMs: 0 }), 'late', 'later calls go straight through');
});

test('server down, waitForReady: a call with a short deadline fails DEADLINE_EXCEEDED, later calls succeed once it is up', async () => {
  const port = await freePort();
  const c = createClient({
    protocol: poolProtocol(),
    waitForReady: true,
    endpoints: [`127.0.0.1:${port}`],
    backoff: { initialMs: 50, maxMs: 200 },
  });
  clients.push(c);
  const early = await rejection(c.call('read', { delayMs: 0 }, { timeoutMs: 200 }));
  assert.is(early.code, Code.DEADLINE_EXCEEDED, early.message);
  const s = await startServer('up', port);
  servers.push(s);
  assert.is(await c.call('read', { delayMs: 0 }, { timeoutMs: 8000 }), 'up');
});

test('no server at all, waitForReady: calls fail UNAVAILABLE after waitForReadyMs, carrying the connection error', async () => {
  const port = await freePort();
  const c = createClient({
    protocol: poolProtocol(),
    waitForReady: true,
    endpoints: [`127.0.0.1:${port}`],
    waitForReadyMs: 300,
    backoff: { initialMs: 50 },
  });
  clients.push(c);
  const err = await rejection(c.call('read', { delayMs: 0 }));
  assert.is(err.code, Code.UNAVAILABLE, err.message);
  assert.ok(/ECONNREFUSED|refused/i.test(err.message), err.message);
});

test('connection attempts to a failing endpoint back off instead of spinning', async () => {
  // Accepts TCP and drops it at once: every attempt fails right after connecting.
  let accepted = 0;
  const sockets = new Set<Socket>();
  const dropper = createNetServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.destroy();
  });
  await new Promise<void>((resolve) => dropper.listen(0, '127.0.0.1', resolve));
  const { port } = dropper.address() as { port: number };
  const c = createClient({
    protocol: poolProtocol(),
    waitForReady: true,
    endpoints: [`127.0.0.1:${port}`],
    waitForReadyMs: 1500,
    backoff: { initialMs: 100, maxMs: 5000 },
  });
  clients.push(c);
  const err = await rejection(c.call('read', { delayMs: 0 }));
  assert.is(err.code, Code.UNAVAILABLE);
  // 1.5 s of backoff from 100 ms x 1.6^n (+-20%) leaves room for about 6 attempts; a spinning
  // client would make thousands. A bound on a count, generous for a loaded machine.
  assert.ok(accepted >= 2 && accepted <= 12, `${accepted} connection attempts`);
  await c.close();
  await new Promise<void>((resolve) => dropper.close(() => resolve()));
});

test('the first failed connect already backs off: no immediate second attempt at a closed port', async () => {
  // Counts the process's TCP connect requests (nothing else connects during this test).
  let attempts = 0;
  const hook = createHook({
    init: (_id, type) => {
      if (type === 'TCPCONNECTWRAP') attempts++;
    },
  }).enable();
  try {
    const port = await freePort();
    // Backoff 1000 ms (+-20%): inside the 500 ms this call waits, only the first attempt fits.
    const c = createClient({
      protocol: poolProtocol(),
      waitForReady: true,
      endpoints: [`127.0.0.1:${port}`],
      waitForReadyMs: 500,
      backoff: { initialMs: 1000, maxMs: 1000 },
    });
    clients.push(c);
    const err = await rejection(c.call('read', { delayMs: 0 }));
    assert.is(err.code, Code.UNAVAILABLE, err.message);
    assert.is(attempts, 1, `${attempts} connection attempts within waitForReadyMs`);
    await until(() => attempts >= 2, 5000, 'a second attempt after the backoff');
  } finally {
    hook.disable();
  }
});

test('a server restarted on the same port is reconnected to; calls before and after succeed (waitForReady)', async () => {
  const first = await startServer('first');
  const port = first.port;
  const c = createClient({
    protocol: poolProtocol(),
    waitForReady: true,
    endpoints: [first.endpoint],
    backoff: { initialMs: 50, maxMs: 200 },
  });
  clients.push(c);
  assert.is(await c.call('read', { delayMs: 0 }), 'first');
  await first.close();
  await until(() => c.stats()[0]!.ready === 0, 5000, 'client saw the close');
  const second = await startServer('second', port);
  servers.push(second);
  assert.is(await c.call('write', { delayMs: 0 }, { timeoutMs: 5000 }), 'second');
});

test.run();
