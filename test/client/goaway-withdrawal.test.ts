/**
 * GOAWAY withdrawal through the call runner and the pool, over fake connections: calls whose REQUEST
 * never went out come back with "did not run" and go to another endpoint, even non-idempotent ones,
 * and an error they end with elsewhere says `mayHaveRun === false`; a call that went out before the
 * GOAWAY stays where it is. No sockets, no timers (no deadlines, every call finds a ready connection).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CallRunner, type RunnerOptions } from '../../src/client/call-runner.js';
import type { Pool } from '../../src/client/pool.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { poolProtocol } from '../helpers/pool-fixture.js';
import { fakePool, prefer, type FakeConnection } from './fake-pool.js';

const test = suite('goaway-withdrawal');
const A = '10.0.0.1:1';
const B = '10.0.0.2:1';

const runnerOptions: RunnerOptions = {
  idempotent: new Set(),
  maxAttempts: 3,
  retryBudgetRatio: 0.2,
  retryBudgetTokens: 10,
  waitForReadyMs: 1000,
  waitForReady: false,
  hedgeDelayMs: undefined,
  maxQueuedCalls: 100,
  observer: undefined,
};

/** A runner over a pool of A and B, both ready, whose balancer picks A whenever A is offered. */
function setup(): { runner: CallRunner; pool: Pool; a: FakeConnection; b: FakeConnection } {
  const { pool, to } = fakePool([A, B], { balancer: prefer(A) });
  pool.pick();
  const a = to(A)[0]!;
  const b = to(B)[0]!;
  a.ready();
  b.ready();
  return { runner: new CallRunner(pool, runnerOptions), pool, a, b };
}

const writeMessage = poolProtocol().message('write')!;

/** Starts a `write` (not idempotent) with no deadline. */
const write = (runner: CallRunner): Promise<unknown> => runner.run(writeMessage, { delayMs: 0 }, -1, undefined, undefined);

/** What `p` rejected with. */
const rejection = (p: Promise<unknown>): Promise<RpcError> =>
  p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e as RpcError,
  );

test('calls not written when the GOAWAY came go to the other endpoint, non-idempotent ones too', async () => {
  const { runner, a, b } = setup();
  const sent = write(runner);
  a.holdWrites = true;
  const held = [write(runner), write(runner)];
  assert.is(a.calls.length, 3);
  assert.is(a.calls[0]!.sent, true);
  a.goaway();
  assert.is(a.calls.length, 1, 'the call that went out stays on A');
  assert.is(b.calls.length, 2, 'the withdrawn ones went to B');
  assert.ok(b.calls.every((c) => c.attempts === 2 && !c.mayHaveRun));
  b.answer('B');
  b.answer('B');
  a.answer('A');
  assert.equal(await Promise.all([sent, ...held]), ['A', 'B', 'B']);
});

test('a withdrawn call refused elsewhere too rejects with mayHaveRun false', async () => {
  const { runner, a, b } = setup();
  a.holdWrites = true;
  const call = write(runner);
  a.goaway();
  // B refuses it (REFUSED: no handler ran) until its attempts (3) are spent.
  b.refuse();
  assert.is(b.calls[0]?.attempts, 3, 'a refused call is retried: it did not run');
  b.refuse();
  const err = await rejection(call);
  assert.instance(err, RpcError);
  assert.is(err.mayHaveRun, false);
});

test('a call lost with its connection after it went out may have run, and is not retried', async () => {
  const { runner, a, b } = setup();
  const call = write(runner);
  a.lose();
  assert.is(a.calls.length, 0);
  const err = await rejection(call);
  assert.instance(err, RpcError);
  assert.is(err.mayHaveRun, true);
  assert.is(b.calls.length, 0, 'a non-idempotent call that may have run is not sent again');
});

test.run();
