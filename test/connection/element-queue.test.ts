/**
 * ElementQueue, the receiving half of a stream direction: credit goes back in batches of
 * max(1, floor(S/2)) as the consumer takes elements (never as they arrive), the end and a failure
 * come after what is buffered, and a consumer that stops early cancels once. Pure: no sockets, no timers.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ElementQueue, type ElementQueueOwner } from '../../src/connection/element-queue.js';

const test = suite('element queue');

interface Owner extends ElementQueueOwner {
  credits: number[];
  abandons: number;
  takes: number;
}

function owner(): Owner {
  const o: Owner = {
    credits: [],
    abandons: 0,
    takes: 0,
    credit: (n) => o.credits.push(n),
    took: () => o.takes++,
    abandoned: () => o.abandons++,
  };
  return o;
}

test('credit goes back in batches of floor(S/2) as elements are taken, not as they arrive', async () => {
  const o = owner();
  const q = new ElementQueue<number>(o, 8);
  for (let i = 0; i < 8; i++) q.push(i);
  assert.equal(o.credits, [], 'nothing credited on arrival');
  assert.is(q.buffered, 8);
  for (let i = 0; i < 3; i++) assert.equal(await q.next(), { done: false, value: i });
  assert.equal(o.credits, [], 'three taken: below the batch of four');
  assert.equal(await q.next(), { done: false, value: 3 });
  assert.equal(o.credits, [4]);
  for (let i = 4; i < 8; i++) await q.next();
  assert.equal(o.credits, [4, 4]);
  assert.is(o.takes, 8);
  assert.is(q.buffered, 0);
});

test('an element handed to a waiting consumer counts as taken', async () => {
  const o = owner();
  const q = new ElementQueue<string>(o, 2);
  const pending = q.next();
  q.push('a');
  assert.equal(await pending, { done: false, value: 'a' });
  assert.equal(o.credits, [1], 'S = 2: a batch of one');
});

test('a window of 1 credits every element; odd windows round the batch down', async () => {
  const one = owner();
  const q1 = new ElementQueue<number>(one, 1);
  q1.push(1);
  q1.push(2);
  await q1.next();
  await q1.next();
  assert.equal(one.credits, [1, 1]);
  const five = owner();
  const q5 = new ElementQueue<number>(five, 5);
  for (let i = 0; i < 5; i++) q5.push(i);
  for (let i = 0; i < 5; i++) await q5.next();
  assert.equal(five.credits, [2, 2], 'batches of floor(5/2) = 2; the fifth waits for the next');
});

test('end after buffered elements: they are yielded, then done, and no credit after the end', async () => {
  const o = owner();
  const q = new ElementQueue<number>(o, 2);
  q.push(1);
  q.push(2);
  q.end();
  assert.ok(q.closed);
  q.push(3);
  const seen: number[] = [];
  for await (const v of q) seen.push(v);
  assert.equal(seen, [1, 2], 'what came after the end is ignored');
  assert.equal(o.credits, [], 'the sender is done: no CREDIT for it');
  assert.is(o.abandons, 0, 'ran to the end: not abandoned');
});

test('end while the consumer waits resolves it with done', async () => {
  const q = new ElementQueue<number>(owner(), 4);
  const pending = q.next();
  q.end();
  assert.equal(await pending, { done: true, value: undefined });
});

test('fail after buffered elements: yields them, throws once, then is done', async () => {
  const q = new ElementQueue<number>(owner(), 4);
  const boom = new Error('boom');
  q.push(1);
  q.push(2);
  q.fail(boom);
  q.end();
  assert.equal(await q.next(), { done: false, value: 1 });
  assert.equal(await q.next(), { done: false, value: 2 });
  let thrown: unknown;
  await q.next().catch((e: unknown) => (thrown = e));
  assert.is(thrown, boom);
  assert.equal(await q.next(), { done: true, value: undefined }, 'thrown once');
  assert.equal(await q.next(), { done: true, value: undefined });
});

test('fail while the consumer waits rejects it; for await yields then throws', async () => {
  const q = new ElementQueue<number>(owner(), 4);
  const pending = q.next();
  const boom = new Error('late');
  q.fail(boom);
  let thrown: unknown;
  await pending.catch((e: unknown) => (thrown = e));
  assert.is(thrown, boom);
  const q2 = new ElementQueue<number>(owner(), 4);
  q2.push(7);
  q2.fail(boom);
  const seen: number[] = [];
  try {
    for await (const v of q2) seen.push(v);
    assert.unreachable('the loop throws');
  } catch (e) {
    assert.is(e, boom);
  }
  assert.equal(seen, [7]);
});

test('return() abandons once, drops what is buffered, and ends a waiting next()', async () => {
  const o = owner();
  const q = new ElementQueue<number>(o, 4);
  q.push(1);
  q.push(2);
  assert.equal(await q.return(), { done: true, value: undefined });
  assert.equal(await q.return(), { done: true, value: undefined });
  assert.is(o.abandons, 1);
  assert.is(q.buffered, 0);
  assert.equal(await q.next(), { done: true, value: undefined });
  q.push(3);
  assert.is(q.buffered, 0, 'ignored once stopped');
  const o2 = owner();
  const q2 = new ElementQueue<number>(o2, 4);
  const pending = q2.next();
  await q2.return();
  assert.equal(await pending, { done: true, value: undefined });
  assert.is(o2.abandons, 1);
});

test('break out of for await abandons; return() after the end or a failure does not', async () => {
  const o = owner();
  const q = new ElementQueue<number>(o, 4);
  q.push(1);
  q.push(2);
  for await (const v of q) if (v === 1) break;
  assert.is(o.abandons, 1);
  const ended = owner();
  const qe = new ElementQueue<number>(ended, 4);
  qe.push(1);
  qe.end();
  await qe.return();
  assert.is(ended.abandons, 0, 'the sender had ended: nothing to cancel');
  const failed = owner();
  const qf = new ElementQueue<number>(failed, 4);
  qf.fail(new Error('x'));
  await qf.next().catch(() => undefined);
  await qf.return();
  assert.is(failed.abandons, 0);
});

test('a second next() while one is pending is refused', async () => {
  const q = new ElementQueue<number>(owner(), 4);
  const first = q.next();
  let thrown: unknown;
  await q.next().catch((e: unknown) => (thrown = e));
  assert.instance(thrown, Error);
  q.push(5);
  assert.equal(await first, { done: false, value: 5 });
});

test.run();
