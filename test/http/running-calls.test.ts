/**
 * RunningCalls (src/server/http/http-socket.ts): the calls of one HTTP connection, removed in any
 * order, and all cancelled when the connection closes, even when a cancel removes calls meanwhile.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CallContext } from '../../src/server/call-context.js';
import { RunningCalls } from '../../src/server/http/http-socket.js';
import { Code, RpcError } from '../../src/index.js';

const ctxs = (n: number) => Array.from({ length: n }, (_, i) => new CallContext(`m${i}`, {}, Infinity, { address: '127.0.0.1', port: i }));

test('calls leave in any order; a second delete or add of one changes nothing', () => {
  const running = new RunningCalls();
  const [a, b, c, d] = ctxs(4) as [CallContext, CallContext, CallContext, CallContext];
  for (const ctx of [a, b, c, d]) running.add(ctx);
  running.add(b);
  assert.is(running.size, 4);
  running.delete(b);
  running.delete(b);
  assert.is(running.size, 3);
  running.delete(d);
  running.delete(a);
  assert.is(running.size, 1);
  running.delete(c);
  assert.is(running.size, 0);
  running.add(b);
  assert.is(running.size, 1, 'a call can come back after it left');
});

test('a call of another connection is not removed by this one', () => {
  const one = new RunningCalls();
  const two = new RunningCalls();
  const [a, b] = ctxs(2) as [CallContext, CallContext];
  one.add(a);
  two.add(b);
  one.delete(b);
  assert.is(one.size, 1);
  assert.is(two.size, 1);
});

test('cancelAll cancels each running call once, also when a cancel removes others as it runs', () => {
  const running = new RunningCalls();
  const all = ctxs(6);
  for (const ctx of all) running.add(ctx);
  running.delete(all[2]!);
  const order: string[] = [];
  for (const ctx of all) {
    ctx.onCancel(() => {
      order.push(ctx.message);
      // As the gateway's end of a call does: it leaves the table (and another call may too).
      running.delete(ctx);
      running.delete(all[5]!);
    });
  }
  const reason = new RpcError(Code.CANCELLED, 'HTTP client closed the connection');
  running.cancelAll(reason);
  assert.equal([...order].sort(), ['m0', 'm1', 'm3', 'm4', 'm5']);
  assert.is(all[2]!.cancelled, false, 'the call that had ended is not cancelled');
  for (const i of [0, 1, 3, 4, 5]) assert.is(all[i]!.cancelReason, reason);
  assert.is(running.size, 0);
  running.add(all[2]!);
  assert.is(running.size, 1);
});

test.run();
