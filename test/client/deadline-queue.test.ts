import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeadlineQueue, msUntil, type Deadlined } from '../../src/client/deadline-queue.js';

function call(name: string, deadline: number): Deadlined & { name: string } {
  return { name, deadline, dlPrev: undefined, dlNext: undefined, dlLane: undefined, dlQueue: undefined };
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

test('calls expire in deadline order across lanes; removed ones never; no timer outlives them', async () => {
  const expired: string[] = [];
  const q = new DeadlineQueue((c) => expired.push((c as Deadlined & { name: string }).name));
  const before = timers();
  const now = performance.now();
  const calls = [call('c30', now + 30), call('a10', now + 10), call('b20', now + 20), call('a10-2', now + 10), call('gone', now + 15)];
  for (const c of calls) q.add(c, now);
  q.remove(calls[4]!);
  assert.is(calls[4]!.dlLane, undefined);
  await sleep(60);
  assert.equal(expired, ['a10', 'a10-2', 'b20', 'c30']);
  assert.is(timers(), before);
});

test('its timer never holds the process, calls queued or not', () => {
  const q = new DeadlineQueue(() => assert.unreachable('nothing expires'));
  const before = timers();
  const now = performance.now();
  const a = call('a', now + 1000);
  const b = call('b', now + 500);
  q.add(a, now);
  q.add(b, now);
  assert.is(timers(), before);
  q.remove(a);
  q.remove(b);
  q.remove(b);
  assert.is(timers(), before);
  q.stop();
});

test('a call added once the queue emptied still expires', async () => {
  const expired: string[] = [];
  const q = new DeadlineQueue((c) => expired.push((c as Deadlined & { name: string }).name));
  let now = performance.now();
  const first = call('first', now + 500);
  q.add(first, now);
  q.remove(first);
  now = performance.now();
  q.add(call('second', now + 10), now);
  await sleep(40);
  assert.equal(expired, ['second']);
  q.stop();
});

test('a call added after the timer was armed for a later one re-arms it earlier', async () => {
  const expired: string[] = [];
  const q = new DeadlineQueue((c) => expired.push((c as Deadlined & { name: string }).name));
  const now = performance.now();
  q.add(call('late', now + 5000), now);
  const early = call('early', now + 10);
  q.add(early, now);
  await sleep(40);
  assert.equal(expired, ['early']);
  q.stop();
});

test('a timeout whose idle lane was dropped gets a new one (the last lane used is not kept stale)', async () => {
  const expired: string[] = [];
  const q = new DeadlineQueue((c) => expired.push((c as Deadlined & { name: string }).name));
  let now = performance.now();
  // The 5 ms lane first, 19 more lanes, then the 5 ms lane again (the last one used): once it is
  // empty, with more than 16 lanes, it is dropped.
  q.add(call('5a', now + 5), now);
  for (let ms = 6; ms < 25; ms++) q.add(call(`${ms}`, now + ms), now);
  q.add(call('5b', now + 5), now);
  await sleep(60);
  assert.is(expired.length, 21);
  now = performance.now();
  q.add(call('again', now + 5), now);
  await sleep(40);
  assert.is(expired.at(-1), 'again');
  q.stop();
});

test('msUntil: a deadline set as now + timeout reads back as that timeout, despite float round-off', () => {
  // 706.4638975173842 + 1000 - 706.4638975173842 is 1000.0000000000001: a plain ceil sent 1001 ms.
  assert.is(Math.ceil(706.4638975173842 + 1000 - 706.4638975173842), 1001);
  for (const now of [706.4638975173842, 0.1, 1e7 + 0.3, 123456.789]) {
    for (const ms of [1, 999, 1000, 30_000]) assert.is(msUntil(now + ms, now), ms, `${now} + ${ms}`);
  }
  assert.is(msUntil(1000.5, 1000), 1, 'half a ms left still rounds up');
  assert.is(msUntil(1000.001, 1000), 1, 'a microsecond left still rounds up');
});

test.run();
