/**
 * GOAWAY: a socket whose server is shutting down gets no new calls while its in-flight calls finish,
 * and calls the server never accepted (after the GOAWAY's last id) are retried elsewhere, idempotent
 * or not.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import type { ConnectionView } from '../../src/client/balancer.js';
import { idAfter } from '../../src/framing/frame.js';
import type { RpcObserver } from '../../src/observability/observer.js';
import { poolProtocol, startServer, until, type TestServer } from '../helpers/pool-fixture.js';

const test = suite('goaway');
const clients: Client[] = [];
const servers: TestServer[] = [];

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A server observer counting refused requests (UNAVAILABLE while draining, and the like). */
function refusals(): { observer: RpcObserver; count: () => number } {
  let n = 0;
  return {
    observer: {
      callEnded: (name) => {
        if (name === '(refused)') n++;
      },
    },
    count: () => n,
  };
}

/** A balancer that picks `server` whenever it is among the candidates. */
const preferA =
  (server: TestServer) =>
  (cs: readonly ConnectionView[]): ConnectionView =>
    cs.find((v) => v.endpointKey === server.endpoint) ?? cs[0]!;

/**
 * Servers A (counting its refusals) and B, and a client connected to both whose balancer picks A
 * whenever A is offered: after A's GOAWAY, only the pool can keep calls off A.
 */
async function preferringA(): Promise<{ a: TestServer; b: TestServer; c: Client; refusedA: ReturnType<typeof refusals> }> {
  const refusedA = refusals();
  const a = await startServer('A', 0, { observer: refusedA.observer });
  const b = await startServer('B');
  servers.push(a, b);
  const c = createClient({
    protocol: poolProtocol(),
    endpoints: [a.endpoint, b.endpoint],
    balancer: preferA(a),
    backoff: { initialMs: 50 },
  });
  clients.push(c);
  await c.call('read', { delayMs: 0 });
  await until(() => c.stats().every((e) => e.ready === 1), 5000, 'both ready');
  return { a, b, c, refusedA };
}

test('after GOAWAY the draining socket gets no new calls; its in-flight calls finish OK', async () => {
  const { a, c, refusedA } = await preferringA();

  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  a.hold = () => gate;
  const held: Array<Promise<string>> = [];
  for (let i = 0; i < 3; i++) held.push(c.call<string>('write', { delayMs: 0 }));
  await until(() => a.ran.write === 3, 5000, 'three calls running on A');
  assert.is(c.stats().find((e) => e.endpoint === a.endpoint)!.inFlight, 3);

  const closing = a.close(10_000);
  await until(() => c.stats().find((e) => e.endpoint === a.endpoint)!.ready === 0, 5000, 'client saw GOAWAY');
  const ranOnA = a.ran.write;
  const answers = await Promise.all(Array.from({ length: 40 }, () => c.call<string>('write', { delayMs: 0 })));
  assert.ok(
    answers.every((n) => n === 'B'),
    'new calls all went to B',
  );
  assert.is(a.ran.write, ranOnA, 'A ran nothing new');
  assert.is(refusedA.count(), 0, 'and refused nothing: the client did not even send it any');
  assert.is(c.stats().find((e) => e.endpoint === a.endpoint)!.inFlight, 3, 'A still holds its calls');

  release();
  const finished = await Promise.all(held);
  assert.ok(finished.filter((n) => n === 'A').length === 3, `held calls completed on A: ${finished}`);
  await closing;
});

test('a call sent after the server sent GOAWAY (but before the client read it) is retried, even non-idempotent', async () => {
  // A is preferred whenever it is usable, so that the racing call surely goes there.
  const { a, b, c } = await preferringA();
  const before = a.ran.write ?? 0;

  // Same tick: the server queues GOAWAY and ends its socket (nothing in flight); the client, which has
  // not read it yet, still sees A ready and sends the call there. The server reads and refuses it but
  // can no longer answer; the call was never run, which GOAWAY's last id tells the client.
  const closing = a.close(2000);
  const racing = c.call<string>('write', { delayMs: 0 }, { timeoutMs: 5000 });
  assert.is(await racing, 'B', 'retried on B');
  assert.is((a.ran.write ?? 0) - before, 0, 'never ran on A');
  assert.is(b.ran.write, 1, 'ran exactly once, on B');
  await closing;
});

test("GOAWAY's last id compares in wrap-around order: ids sent after the wrap are after it", () => {
  // Ids run 0xfffffffe, 0xffffffff, 1, 2 (0 is skipped): the server accepted up to lastId.
  assert.ok(idAfter(1, 0xffffffff), '1 was sent after 0xffffffff');
  assert.ok(idAfter(2, 0xffffffff));
  assert.ok(idAfter(0xffffffff, 0xfffffffe));
  assert.ok(!idAfter(0xffffffff, 1), '0xffffffff went before the wrap: accepted when lastId is 1');
  assert.ok(!idAfter(0xfffffffe, 2));
  assert.ok(!idAfter(7, 7), 'lastId itself was accepted');
  assert.ok(!idAfter(6, 7));
  assert.ok(idAfter(8, 7));
  assert.ok(idAfter(1, 0), 'a GOAWAY before any request (lastId 0): everything is after');
});

test.run();
