/**
 * Reconnect decisions over fake connections and a fake clock: a failed attempt backs off
 * exponentially, a working connection that goes away is replaced at once (after a GOAWAY too, while
 * the old one drains), one that was failing calls backs off, and a success starts the backoff over.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakePool } from './fake-pool.js';

const test = suite('pool-reconnect');
const A = '10.0.0.1:1';

test('failed attempts back off 100, 200, 400 ... up to 1000 ms; no attempt before its delay', () => {
  const { pool, made, clock } = fakePool([A]);
  pool.pick();
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    made[i]!.lose();
    const [delay] = clock.pending();
    delays.push(delay!);
    clock.advance(delay! - 1);
    assert.is(made.length, i + 1, `no attempt ${i + 2} before its delay`);
    clock.advance(1);
    assert.is(made.length, i + 2);
  }
  assert.equal(delays, [100, 200, 400, 800, 1000, 1000]);
});

test('a connection that became ready resets the backoff', () => {
  const { pool, made, clock } = fakePool([A]);
  pool.pick();
  made[0]!.lose();
  clock.advance(100);
  made[1]!.lose();
  assert.equal(clock.pending(), [200]);
  clock.advance(200);
  made[2]!.ready();
  made[2]!.lose();
  assert.equal(clock.pending(), [0], 'a connection that worked is replaced at once');
  clock.advance(0);
  made[3]!.lose();
  assert.equal(clock.pending(), [100], 'and the next failed attempt starts from the first delay');
});

test('a ready connection that was failing calls backs off before it is replaced', () => {
  const { pool, made, clock } = fakePool([A], { ejectAfterFailures: 100 });
  pool.pick();
  made[0]!.ready();
  made[0]!.health.failed();
  made[0]!.lose();
  assert.equal(clock.pending(), [100]);
});

test('GOAWAY: a replacement connects at once while the old connection drains', () => {
  const { pool, made, clock } = fakePool([A]);
  pool.pick();
  made[0]!.ready();
  made[0]!.goaway();
  assert.equal(clock.pending(), [0]);
  clock.advance(0);
  assert.is(made.length, 2);
  assert.is(made[0]!.state, 'draining', 'the old one finishes its calls');
  made[0]!.lose();
  clock.advance(0);
  assert.is(made.length, 2, 'its close does not add a third: one connection per endpoint');
});

test('a closed pool reconnects nothing', async () => {
  const { pool, made, clock } = fakePool([A]);
  pool.pick();
  made[0]!.ready();
  await pool.close();
  made[0]!.lose();
  clock.advance(10_000);
  assert.is(made.length, 1);
});

test.run();
