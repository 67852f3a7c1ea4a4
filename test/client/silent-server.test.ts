/**
 * A server that accepts calls and then says nothing (SIGSTOP, a frozen VM). That with calls in flight
 * the client PINGs after a short silence, so the default settings find a silent server within a call's
 * deadline, and that a server answering the PING is alive however slow its handlers, is keepalive's
 * policy: test/connection/keepalive.test.ts, on a fake clock (test/chaos/sigstop.test.ts end to end).
 * Here, on real sockets: calls that time out while the PING goes unanswered count against the
 * endpoint (outlier ejection); calls that time out on a slow but answering server count only when
 * other endpoints answer in time (outlier-timeouts.test.ts); while our own loop was blocked with the
 * answer unread, never.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import type { ConnectionView } from '../../src/client/balancer.js';
import type { Protocol } from '../../src/codec/protocol.js';
import { Code } from '../../src/errors/code.js';
import { FrameType } from '../../src/framing/frame.js';
import type { RpcObserver } from '../../src/observability/observer.js';
import { item, loadEcho, rejection, startServer, until, type Started } from '../helpers/echo-fixture.js';
import { fakeServer } from '../helpers/fake-server.js';
import type { RawServer } from '../helpers/echo-fixture.js';
import { busyLoop, poolProtocol } from '../helpers/pool-fixture.js';
import { spawnServer, type ServerProcess } from '../helpers/server-process.js';

const test = suite('silent server');
let protocol: Protocol;
const clients: Client[] = [];
const fakes: RawServer[] = [];
const servers: Started[] = [];
const procs: ServerProcess[] = [];

test.before(async () => {
  protocol = await loadEcho();
});

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(fakes.splice(0).map((f) => f.close()));
  await Promise.all(servers.splice(0).map((s) => s.server.close({ graceMs: 100 })));
  await Promise.all(procs.splice(0).map((p) => p.kill()));
});

/** A server that completes the handshake, never answers a call, and answers PINGs only if `alive`. */
async function silentServer(alive: boolean): Promise<{ endpoint: string; pings: number; requests: number }> {
  const seen = { endpoint: '', pings: 0, requests: 0 };
  const fake = await fakeServer({
    answerPings: alive,
    onFrame: (_socket, type) => {
      if (type === FrameType.PING) seen.pings++;
      if (type === FrameType.REQUEST) seen.requests++;
    },
  });
  fakes.push(fake);
  seen.endpoint = fake.endpoint;
  return seen;
}

/** A client preferring `first` whenever it is in the snapshot (ejection takes it out). */
function preferring(first: string, endpoints: string[], extra: object = {}): Client {
  const prefer = (cs: readonly ConnectionView[]): ConnectionView => cs.find((v) => v.endpointKey === first) ?? cs[0]!;
  const c = createClient({
    protocol,
    endpoints,
    balancer: prefer,
    ejectAfterFailures: 5,
    ejectMs: 60_000,
    // A long PING timeout: the calls below time out while the PING is outstanding, before any verdict.
    keepaliveMs: 100,
    keepaliveTimeoutMs: 20_000,
    ...extra,
  });
  clients.push(c);
  return c;
}

async function echoServer(): Promise<Started> {
  const s = await startServer({ protocol, handlers: { echo: (req: { item: unknown }) => req.item, fail: () => null } });
  servers.push(s);
  return s;
}

test('calls timing out while the server leaves the PING unanswered count as endpoint failures: it is ejected', async () => {
  const silent = await silentServer(false);
  const good = await echoServer();
  const c = preferring(silent.endpoint, [silent.endpoint, good.endpoint]);
  await c.call('echo', { item: item(0) }, { timeoutMs: 300 }).catch(() => undefined); // connects the pool
  await until(() => c.stats().every((e) => e.ready === 1), 'both connected');
  const errors = await Promise.all(Array.from({ length: 5 }, (_, i) => rejection(c.call('echo', { item: item(i) }, { timeoutMs: 1000 }))));
  assert.equal(
    errors.map((e) => e.code),
    Array(5).fill(Code.DEADLINE_EXCEEDED),
  );
  assert.ok(silent.pings >= 1);
  await until(() => c.stats().find((e) => e.endpoint === silent.endpoint)!.ejected, 'silent endpoint ejected', 5000);
  // Calls now go to the other endpoint.
  const r = await c.call('echo', { item: item(9) }, { timeoutMs: 1000 });
  assert.is(r.id, 9);
  assert.is(silent.requests, 6, 'the first call and the five that timed out');
});

test('calls timing out on a slow server that answers PINGs are not endpoint failures while no other endpoint answers in time', async () => {
  // Both slow: the deadline is too short for every server, so it is the caller's, not an outlier's
  // (test/client/outlier-timeouts.test.ts has the server that answers PINGs while its peers answer calls).
  const slow = await silentServer(true);
  const other = await silentServer(true);
  const c = preferring(slow.endpoint, [slow.endpoint, other.endpoint]);
  await c.call('echo', { item: item(0) }, { timeoutMs: 300 }).catch(() => undefined);
  await until(() => c.stats().every((e) => e.ready === 1), 'both connected');
  for (let round = 0; round < 2; round++) {
    const errors = await Promise.all(
      Array.from({ length: 5 }, (_, i) => rejection(c.call('echo', { item: item(i) }, { timeoutMs: 1000 }))),
    );
    assert.equal(
      errors.map((e) => e.code),
      Array(5).fill(Code.DEADLINE_EXCEEDED),
    );
  }
  assert.ok(slow.pings >= 2, `it was pinged, and answered: ${slow.pings} ${slow.requests} ${JSON.stringify(c.stats())}`);
  assert.is(c.stats().find((e) => e.endpoint === slow.endpoint)!.ejected, false);
});

test('calls timing out while our own loop was blocked, the PONG unread in the socket, are not endpoint failures', async () => {
  // A server in another process, so that it answers our PING while this process is blocked.
  const proc = await spawnServer('slow', { delayMs: 60_000 });
  procs.push(proc);
  let stallOnNextWrite = false;
  let stalled = 0;
  const observer: RpcObserver = {
    bytesSent: () => {
      if (!stallOnNextWrite) return;
      stallOnNextWrite = false;
      stalled++;
      // The write that just went out is the PING. Block after this turn's I/O: the PONG arrives during
      // the stall, and the calls' deadlines pass, so their timers fire before the PONG is read.
      setImmediate(() => busyLoop(1500));
    },
  };
  const c = createClient({
    protocol: poolProtocol(),
    endpoints: [proc.endpoint],
    ejectAfterFailures: 5,
    ejectMs: 60_000,
    keepaliveMs: 100,
    keepaliveTimeoutMs: 20_000,
    observer,
  });
  clients.push(c);
  await c.call('spin', { ms: 0 }, { timeoutMs: 5000 }); // connected (spin is not delayed)
  const calls = Array.from({ length: 6 }, () => rejection(c.call('read', { delayMs: 0 }, { timeoutMs: 500 })));
  await new Promise((r) => setImmediate(r));
  stallOnNextWrite = true; // the requests are written; the next write is the PING after 100 ms of silence
  const errors = await Promise.all(calls);
  assert.equal(
    errors.map((e) => e.code),
    Array(6).fill(Code.DEADLINE_EXCEEDED),
  );
  assert.is(stalled, 1);
  await new Promise((r) => setTimeout(r, 50));
  assert.is(c.stats()[0]!.ejected, false, "our own stall is not the server's failure");
});

test.run();
