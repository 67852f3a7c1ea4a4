/**
 * Pool admission and picking over fake connections and a fake clock (no sockets, no real timers):
 * calls queue while connections are on their way, fail at once when every endpoint fails for good,
 * prefer an endpoint other than the one to avoid, and stay off ejected endpoints while others serve.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { fakePool, prefer } from './fake-pool.js';

const test = suite('pool-admission');
const A = '10.0.0.1:1';
const B = '10.0.0.2:1';

test('queue while connecting; the first pick starts the pool; a ready connection is picked', () => {
  const { pool, made, readies } = fakePool([A, B], { connectionsPerEndpoint: 2 });
  assert.is(made.length, 0, 'nothing connects before the first call');
  assert.equal(pool.pick(), { type: 'queue' });
  assert.is(made.length, 4, 'two connections per endpoint');
  assert.equal(pool.pick(), { type: 'queue' }, 'still connecting');
  made[2]!.ready();
  assert.is(readies(), 1);
  const r = pool.pick();
  assert.is(r.type, 'pick');
  assert.is(r.type === 'pick' && r.conn, made[2]);
});

test('a draining or closed connection is never picked', () => {
  const { pool, to } = fakePool([A, B], { balancer: prefer(A) });
  pool.pick();
  const [a] = to(A);
  const [b] = to(B);
  a!.ready();
  b!.ready();
  assert.is((pool.pick() as { conn: unknown }).conn, a);
  a!.goaway();
  assert.is((pool.pick() as { conn: unknown }).conn, b);
  b!.lose();
  assert.equal(pool.pick(), { type: 'queue' }, 'a replacement for A is on its way');
});

test('fail, not queue, once every endpoint failed for good; a transient failure means wait again', () => {
  const { pool, made, clock, fatal } = fakePool([A]);
  pool.pick();
  const notAvrpc = new RpcError(Code.UNAVAILABLE, `${A} is not an avrpc v1 server: it answered in HTTP`);
  made[0]!.lose(notAvrpc, 'permanent');
  const r = pool.pick();
  assert.is(r.type, 'fail');
  assert.is(r.type === 'fail' && r.error, notAvrpc, 'the one endpoint: its own error');
  assert.equal(fatal, [notAvrpc], 'the queue is failed too');
  clock.advance(100);
  assert.is(made.length, 2, 'reconnects after the backoff');
  made[1]!.lose(new RpcError(Code.UNAVAILABLE, 'connect ECONNREFUSED'), 'transient');
  const r2 = pool.pick();
  assert.is(r2.type, 'down', 'a server that may come back: known down, a call waiting for ready waits for it');
  assert.match(r2.type === 'down' ? r2.error.message : '', /is down: connect ECONNREFUSED/);
});

test('suspect failures fail calls only after three in a row', () => {
  const { pool, made, clock } = fakePool([A]);
  pool.pick();
  const closed = new RpcError(Code.UNAVAILABLE, `${A} closed the connection during the handshake`);
  for (let i = 0; i < 3; i++) {
    assert.is(pool.pick().type, i === 0 ? 'queue' : 'down', `attempt ${i + 1}`);
    made[i]!.lose(closed, 'suspect');
    clock.advance(10_000);
  }
  const r = pool.pick();
  assert.is(r.type, 'fail');
  assert.match(r.type === 'fail' ? r.error.message : '', /3 attempts in a row/);
});

test('fail only when every endpoint fails for good', () => {
  const { pool, to } = fakePool([A, B]);
  pool.pick();
  to(A)[0]!.lose(new RpcError(Code.UNAVAILABLE, 'TLS handshake failed'), 'permanent');
  assert.is(pool.pick().type, 'queue', 'B may still come up');
  to(B)[0]!.lose(new RpcError(Code.UNAVAILABLE, 'TLS handshake failed'), 'permanent');
  const r = pool.pick();
  assert.is(r.type, 'fail');
  assert.match(r.type === 'fail' ? r.error.message : '', /all 2 endpoints fail/);
});

test('pick(avoid) prefers another endpoint, and takes the avoided one when it is the only one', () => {
  const { pool, to } = fakePool([A, B], { balancer: prefer(A) });
  pool.pick();
  to(A)[0]!.ready();
  assert.is((pool.pick(A) as { conn: unknown }).conn, to(A)[0], 'only A is ready');
  to(B)[0]!.ready();
  for (let i = 0; i < 5; i++) assert.is((pool.pick(A) as { conn: unknown }).conn, to(B)[0]);
  assert.is((pool.pick() as { conn: unknown }).conn, to(A)[0]);
});

test('consecutive call failures eject an endpoint for ejectMs, unless it is the last one serving', () => {
  const { pool, to, clock } = fakePool([A, B], { balancer: prefer(A), ejectAfterFailures: 3, ejectMs: 1000 });
  pool.pick();
  const a = to(A)[0]!;
  const b = to(B)[0]!;
  a.ready();
  b.ready();
  const health = () => pool.stats().find((s) => s.endpoint === A)!;
  for (let i = 0; i < 2; i++) a.health.failed();
  assert.is(health().ejected, false, 'two failures: not yet');
  assert.is((pool.pick() as { conn: unknown }).conn, a);
  a.health.failed();
  assert.is(health().ejected, true);
  assert.is((pool.pick() as { conn: unknown }).conn, b, 'ejected: B serves');
  b.lose();
  assert.is((pool.pick() as { conn: unknown }).conn, a, 'an ejected endpoint beats none');
  clock.advance(1000);
  assert.is(health().ejected, false, 'the ejection ended');
});

test('an answer resets consecutive failures', () => {
  const { pool, to } = fakePool([A, B], { ejectAfterFailures: 2 });
  pool.pick();
  const a = to(A)[0]!;
  a.ready();
  to(B)[0]!.ready();
  a.health.failed();
  a.health.answered(0, 1);
  a.health.failed();
  assert.is(pool.stats().find((s) => s.endpoint === A)!.ejected, false);
  a.health.failed();
  assert.is(pool.stats().find((s) => s.endpoint === A)!.ejected, true);
});

test('an unreachable endpoint backs off instead of being ejected', () => {
  const { pool, to } = fakePool([A, B], { ejectAfterFailures: 1 });
  pool.pick();
  to(B)[0]!.ready();
  to(A)[0]!.lose();
  assert.is(pool.stats().find((s) => s.endpoint === A)!.ejected, false);
});

test.run();
