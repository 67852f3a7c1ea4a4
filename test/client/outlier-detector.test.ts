/**
 * Failure-percentage outlier detection (pure policy, fake clock): timeouts count against an endpoint
 * only when other endpoints answered the same message within the time the call had; the failed share,
 * the minimum volume and the ejection cap decide; ejections grow for repeat offenders.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { OutlierDetector, type OutlierStats } from '../../src/client/outlier-detector.js';

const test = suite('outlier detector');
const EJECT_MS = 1000;
const ECHO = 0;
const SLOW = 1;

function detector(overrides: Partial<ConstructorParameters<typeof OutlierDetector>[0]> = {}): OutlierDetector {
  return new OutlierDetector({ failurePercent: 50, minCalls: 10, maxEjectedPercent: 50, ejectMs: EJECT_MS, ...overrides }, 2);
}

/** `n` calls of `index` answered by `h` in `ms`. */
function answer(h: OutlierStats, n: number, ms = 2, index = ECHO): void {
  for (let i = 0; i < n; i++) h.answered(index, ms);
}

/** `n` calls of `index` with `budgetMs` timing out on `h`; returns how many counted as its failures. */
function timeOut(h: OutlierStats, n: number, budgetMs = 1000, index = ECHO): number {
  let counted = 0;
  for (let i = 0; i < n; i++) if (h.timedOut(index, budgetMs)) counted++;
  return counted;
}

const keys = (ejections: { health: OutlierStats }[]): string[] => ejections.map((e) => e.health.key).sort();

test('a server that never answers, beside one that does, is ejected at the end of the interval', () => {
  const d = detector();
  const good = d.add('good');
  const black = d.add('black-hole');
  answer(good, 20);
  assert.is(timeOut(black, 20), 20, 'each timeout counts: the other endpoint answered in 2 ms, the calls had 1000');
  const out = d.evaluate(10_000);
  assert.equal(keys(out), ['black-hole']);
  assert.is(out[0]!.ms, EJECT_MS);
  assert.is(black.ejectedUntil, 10_000 + EJECT_MS);
  assert.is(good.ejectedUntil, 0);
});

test("deadlines too short for every endpoint eject none: the caller's own deadline is not a server's failure", () => {
  const d = detector();
  const a = d.add('a');
  const b = d.add('b');
  const c = d.add('c');
  // SLOW takes 300 ms everywhere; the callers give it 100 ms.
  answer(a, 5, 300, SLOW);
  assert.is(timeOut(a, 30, 100, SLOW) + timeOut(b, 30, 100, SLOW) + timeOut(c, 30, 100, SLOW), 0);
  assert.equal(d.evaluate(10_000), []);
  // A deadline the others meet does count: 400 ms > the 300 ms a answered in.
  assert.is(timeOut(b, 30, 400, SLOW), 30);
});

test('answers of another message are no evidence: a slow message timing out is judged against its own answers', () => {
  const d = detector();
  const a = d.add('a');
  const b = d.add('b');
  answer(a, 50, 1, ECHO);
  assert.is(timeOut(b, 30, 100, SLOW), 0, 'a answers echo in 1 ms, but nobody answered slow within 100 ms');
  assert.equal(d.evaluate(10_000), []);
});

test('evidence from the previous interval still counts; from two intervals ago it does not', () => {
  const d = detector();
  const a = d.add('a');
  const b = d.add('b');
  answer(a, 1);
  d.evaluate(10_000);
  assert.is(timeOut(b, 1), 1, 'answered in the previous interval');
  d.evaluate(20_000);
  assert.is(timeOut(b, 1), 0, 'two intervals ago');
});

test('the failed share must exceed the threshold, with at least minCalls calls', () => {
  const d = detector();
  const good = d.add('good');
  const half = d.add('half');
  const few = d.add('few');
  answer(good, 10);
  answer(half, 10);
  timeOut(half, 10);
  assert.equal(d.evaluate(10_000), [], '10 of 20 is 50%, not more');
  answer(good, 10);
  timeOut(few, 9);
  assert.equal(d.evaluate(20_000), [], '9 calls, all failed, is below minCalls');
  answer(good, 10);
  answer(half, 9);
  timeOut(half, 11);
  half.failed();
  assert.equal(keys(d.evaluate(30_000)), ['half'], '12 of 21');
});

test('never more than maxEjectedPercent ejected at once: the worst go first; the others wait for a free place', () => {
  const d = detector();
  const hs = ['a', 'b', 'c', 'd'].map((k) => d.add(k));
  const [good, bad1, bad2, bad3] = hs as [OutlierStats, OutlierStats, OutlierStats, OutlierStats];
  answer(good, 10);
  answer(bad1, 4);
  timeOut(bad1, 16); // 80%
  timeOut(bad2, 20); // 100%
  answer(bad3, 3);
  timeOut(bad3, 17); // 85%
  const out = d.evaluate(10_000);
  assert.equal(
    out.map((e) => e.health.key),
    ['c', 'd'],
    'two of four (50%), the worst shares first',
  );
  // Until they return, nothing more is ejected, even by the consecutive-failure rule.
  assert.is(d.eject(bad1, 10_500), 0);
  assert.is(d.eject(bad1, 10_000 + EJECT_MS), EJECT_MS, 'a place is free once they are back');
});

test('with two endpoints one may be ejected, not both; with one, ejecting it changes nothing but the flag', () => {
  const d = detector();
  const a = d.add('a');
  const b = d.add('b');
  assert.is(d.eject(a, 0), EJECT_MS);
  assert.is(d.eject(b, 0), 0);
  const single = detector();
  assert.is(single.eject(single.add('only'), 0), EJECT_MS);
  const none = detector({ maxEjectedPercent: 0 });
  none.add('x');
  assert.is(none.eject(none.add('y'), 0), 0, 'maxEjectedPercent 0: never');
});

test('repeat offenders are ejected for longer: 1x, 2x, 4x, then back down after healthy intervals', () => {
  const d = detector();
  const good = d.add('good');
  const bad = d.add('bad');
  let now = 0;
  const lengths: number[] = [];
  for (let round = 0; round < 3; round++) {
    now = Math.max(now, bad.ejectedUntil) + 1;
    answer(good, 10);
    timeOut(bad, 10);
    lengths.push(d.evaluate(now)[0]?.ms ?? 0);
  }
  assert.equal(lengths, [EJECT_MS, 2 * EJECT_MS, 4 * EJECT_MS]);
  now = bad.ejectedUntil + 10 * EJECT_MS;
  answer(good, 10);
  timeOut(bad, 10);
  assert.is(d.evaluate(now)[0]!.ms, EJECT_MS, 'healthy for long: back to the first ejection time');
});

test('an ejected endpoint is not judged again while ejected; a removed endpoint is no evidence', () => {
  const d = detector();
  const good = d.add('good');
  const bad = d.add('bad');
  answer(good, 10);
  timeOut(bad, 10);
  assert.is(d.evaluate(0).length, 1);
  timeOut(bad, 10);
  assert.equal(d.evaluate(EJECT_MS / 2), [], 'still ejected');
  answer(good, 1);
  d.remove(good);
  assert.is(timeOut(bad, 1), 0);
});

test('the eligible predicate keeps an endpoint in rotation (the pool: no connection up)', () => {
  const d = detector();
  const good = d.add('good');
  const bad = d.add('bad');
  answer(good, 10);
  timeOut(bad, 10);
  assert.equal(
    d.evaluate(0, (h) => h !== bad),
    [],
  );
});

test.run();
