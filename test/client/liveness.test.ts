/**
 * Liveness under event-loop stalls: keepalive must not declare a healthy peer dead because our own
 * loop was blocked (the peer's answer sits unread in the socket), nor drop the calls in flight. A peer
 * whose process is blocked answers nothing, so tolerating a peer's stall needs a keepaliveTimeoutMs
 * longer than that stall; our own stalls are measured and never counted against the peer.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import type { RpcObserver } from '../../src/observability/observer.js';
import { busyLoop, poolProtocol, startServer, until, type TestServer } from '../helpers/pool-fixture.js';
import { spawnServer, type ServerProcess } from '../helpers/server-process.js';

const test = suite('liveness');
const STALL_MS = 1500;
const clients: Client[] = [];
const procs: ServerProcess[] = [];
const servers: TestServer[] = [];

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(procs.splice(0).map((p) => p.kill()));
});

/** The value, or the error code name: settles either way, so a failed call cannot go unhandled. */
function outcome(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => v,
    (e: { code?: number; message?: string }) => `error ${e.code}: ${e.message}`,
  );
}

/** Counts connections a client opened and closed (a keepalive verdict shows as a close and a reopen). */
function connectionLog(): RpcObserver & { opened: number; closed: number } {
  const log = {
    opened: 0,
    closed: 0,
    connectionOpened: () => {
      log.opened++;
    },
    connectionClosed: () => {
      log.closed++;
    },
  };
  return log;
}

test('server process blocked 1.5 s by a CPU-heavy handler, keepalive 250 ms: no call dropped, no reconnect', async () => {
  const p = await spawnServer('busy', { keepaliveMs: 250, keepaliveTimeoutMs: 300 });
  procs.push(p);
  const log = connectionLog();
  const c = createClient({
    protocol: poolProtocol(),
    endpoints: [p.endpoint],
    keepaliveMs: 250,
    keepaliveTimeoutMs: 3000,
    observer: log,
  });
  clients.push(c);
  assert.is(await c.call('write', { delayMs: 0 }), 'busy');
  const spin = outcome(c.call('spin', { ms: STALL_MS }));
  // Non-idempotent calls queued behind the stall: any connection drop would fail them UNAVAILABLE.
  const behind = Array.from({ length: 20 }, (_, i) => outcome(c.call('write', { delayMs: i % 3 })));
  assert.is(await spin, 'busy');
  assert.equal(await Promise.all(behind), Array(20).fill('busy'));
  // Idle a while with short keepalives on both sides, after the stall: still the same connection.
  await new Promise((r) => setTimeout(r, 700));
  assert.is(await c.call('write', { delayMs: 0 }), 'busy');
  assert.equal({ opened: log.opened, closed: log.closed }, { opened: 1, closed: 0 });
});

test("client loop blocked 1.5 s right after it sent a PING, keepalive timeout 300 ms: its own lag is not the peer's fault", async () => {
  const p = await spawnServer('patient', { keepaliveMs: 250, keepaliveTimeoutMs: 3000 });
  procs.push(p);
  let stallOnNextWrite = false;
  let stalled = 0;
  const log = connectionLog();
  const observer: RpcObserver = {
    ...log,
    connectionOpened: () => {
      log.opened++;
    },
    connectionClosed: () => {
      log.closed++;
    },
    bytesSent: () => {
      if (!stallOnNextWrite) return;
      stallOnNextWrite = false;
      stalled++;
      busyLoop(STALL_MS); // the write that just went out is our keepalive PING
    },
  };
  const c = createClient({ protocol: poolProtocol(), endpoints: [p.endpoint], keepaliveMs: 250, keepaliveTimeoutMs: 300, observer });
  clients.push(c);
  assert.is(await c.call('write', { delayMs: 0 }), 'patient');
  // Calls in flight for 1 s: the server answers them while we are blocked.
  const inFlight = Array.from({ length: 10 }, () => outcome(c.call('write', { delayMs: 1000 })));
  await new Promise((r) => setImmediate(r));
  stallOnNextWrite = true; // the requests are written; the next write is the PING after 250 ms of silence
  assert.equal(await Promise.all(inFlight), Array(10).fill('patient'));
  assert.is(stalled, 1, 'the client loop was blocked once');
  assert.is(await c.call('write', { delayMs: 0 }), 'patient');
  assert.equal({ opened: log.opened, closed: log.closed }, { opened: 1, closed: 0 });
});

test('own stall ending just after the keepalive deadline, the PONG unread in the socket: not a dead peer', async () => {
  // The server never pings (keepaliveMs 0), so after the PONG nothing else arrives to save us.
  let pingSeenAt = -1;
  let armed = false;
  const serverObserver: RpcObserver = {
    bytesReceived: () => {
      if (!armed) return;
      armed = false;
      pingSeenAt = performance.now();
      // Two ticks later the server has written its PONG (flushed on the next tick): block the loop
      // until 30 ms past the client's keepalive deadline (PING + 200 ms), so its timer fires only a
      // little late while the PONG is still unread.
      process.nextTick(() => process.nextTick(() => busyLoop(pingSeenAt + 230 - performance.now())));
    },
  };
  const s = await startServer('quiet', 0, { keepaliveMs: 0, observer: serverObserver });
  servers.push(s);
  const log = connectionLog();
  const c = createClient({ protocol: poolProtocol(), endpoints: [s.endpoint], keepaliveMs: 100, keepaliveTimeoutMs: 200, observer: log });
  clients.push(c);
  assert.is(await c.call('write', { delayMs: 0 }), 'quiet');
  armed = true; // the next bytes the server receives are the client's idle PING
  await until(() => pingSeenAt >= 0, 5000, 'client PING');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal({ opened: log.opened, closed: log.closed }, { opened: 1, closed: 0 }, 'connection kept');
  assert.is(await c.call('write', { delayMs: 0 }), 'quiet');
  assert.is(log.opened, 1);
});

test('a peer that really went silent is still detected: keepalive fails the connection UNAVAILABLE', async () => {
  const p = await spawnServer('frozen', { keepaliveMs: 0 });
  procs.push(p);
  const log = connectionLog();
  const c = createClient({
    protocol: poolProtocol(),
    endpoints: [p.endpoint],
    keepaliveMs: 100,
    keepaliveTimeoutMs: 200,
    observer: log,
    connectTimeoutMs: 1000,
  });
  clients.push(c);
  assert.is(await c.call('write', { delayMs: 0 }), 'frozen');
  p.child.kill('SIGSTOP');
  const call = c.call('write', { delayMs: 0 }).then(
    () => 'ok',
    (e: { code: number }) => e.code,
  );
  call.catch(() => undefined);
  await until(() => log.closed === 1, 5000, 'keepalive verdict');
  assert.is(await call, 14 /* UNAVAILABLE: a write that may have run is not retried */);
});

test('keepalive shorter than a slow handshake (credentials fetched for 100 ms): no PING before the preface', async () => {
  const s = await startServer('auth', 0, { keepaliveMs: 20, authenticate: (h: { token?: string }) => ({ user: h.token }) });
  servers.push(s);
  const c = createClient({
    protocol: poolProtocol(),
    endpoints: [s.endpoint],
    keepaliveMs: 20,
    waitForReadyMs: 3000,
    credentials: () => new Promise<string>((resolve) => setTimeout(resolve, 100, 'token')),
  });
  clients.push(c);
  assert.is(await c.call('write', { delayMs: 0 }), 'auth');
});

test.run();
