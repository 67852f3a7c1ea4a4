/**
 * Pure balancing policy over fake connections (plain objects with in-flight counts, weights and
 * latencies): no sockets, so every property is checked over many picks.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  leastConnections,
  powerOfTwoChoices,
  roundRobin,
  weighted,
  type Balancer,
  type ConnectionView,
} from '../../src/client/balancer.js';
import { seeded } from '../helpers/pool-fixture.js';

const test = suite('balancer');

function view(endpointKey: string, inFlight: number, latencyEwmaMs = 0, weight = 1): ConnectionView {
  return Object.freeze({ endpointKey, inFlight, latencyEwmaMs, weight });
}

/** How often each endpoint is picked in `n` picks. */
function tally(balancer: Balancer, candidates: readonly ConnectionView[], n: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of candidates) counts[c.endpointKey] = 0;
  for (let i = 0; i < n; i++) counts[balancer(candidates).endpointKey]! += 1;
  return counts;
}

test('least-connections picks the fewest in flight, wherever it sits', () => {
  for (let at = 0; at < 5; at++) {
    const c = [0, 1, 2, 3, 4].map((i) => view(`e${i}`, i === at ? 1 : 3 + i));
    const counts = tally(leastConnections({ random: seeded(at + 1) }), c, 200);
    assert.is(counts[`e${at}`], 200, `e${at} has the fewest calls in flight`);
  }
});

test('least-connections breaks ties without bias, also when the tied ones sit after busy ones', () => {
  // The busy ones come first: a scan that starts at a random index and keeps the first minimum it
  // meets would hand the first tied connection 4/6 of the picks.
  const c = [view('busy1', 5), view('busy2', 7), view('busy3', 9), view('a', 2), view('b', 2), view('c', 2)];
  for (const random of [Math.random, seeded(42)]) {
    const counts = tally(leastConnections({ random }), c, 1000);
    assert.is(counts.busy1! + counts.busy2! + counts.busy3!, 0, 'never a busier one');
    for (const k of ['a', 'b', 'c']) assert.ok(counts[k]! >= 200, `${k} got ${counts[k]} of 1000: ${JSON.stringify(counts)}`);
  }
  const even = tally(leastConnections(), [view('x', 0), view('y', 0), view('z', 0)], 1000);
  for (const k of ['x', 'y', 'z']) assert.ok(even[k]! >= 200, JSON.stringify(even));
});

test('least-connections with one candidate returns it', () => {
  const only = view('only', 9);
  assert.is(leastConnections()([only]), only);
});

test('round-robin cycles through every candidate in order, ignoring load', () => {
  const c = [view('a', 100), view('b', 0), view('c', 5)];
  const rr = roundRobin();
  const seq = Array.from({ length: 9 }, () => rr(c).endpointKey);
  assert.equal(seq.slice(3, 6), seq.slice(0, 3), 'periodic');
  assert.equal(seq.slice(6, 9), seq.slice(0, 3), 'periodic');
  assert.equal([...seq.slice(0, 3)].sort(), ['a', 'b', 'c'], 'each once per cycle');
  assert.equal(tally(roundRobin(), c, 300), { a: 100, b: 100, c: 100 });
});

test('weighted follows the weights; weight 0 is never picked', () => {
  const c = [view('w1', 0, 0, 1), view('w2', 0, 0, 2), view('w7', 0, 0, 7), view('w0', 0, 0, 0)];
  const counts = tally(weighted({ random: seeded(7) }), c, 10_000);
  assert.is(counts.w0, 0);
  assert.ok(counts.w1! > 800 && counts.w1! < 1200, JSON.stringify(counts));
  assert.ok(counts.w2! > 1700 && counts.w2! < 2300, JSON.stringify(counts));
  assert.ok(counts.w7! > 6600 && counts.w7! < 7400, JSON.stringify(counts));
  const allZero = tally(weighted({ random: seeded(8) }), [view('p', 0, 0, 0), view('q', 0, 0, 0)], 1000);
  assert.ok(allZero.p! > 0 && allZero.q! > 0, 'all weights 0: uniform rather than stuck');
});

test('power-of-two-choices keeps the lower in-flight x latency EWMA of two random picks', () => {
  // Costs (inFlight + 1) x EWMA: fast-idle 1 x 1 = 1, busy-fast 6 x 1 = 6, slow-idle 1 x 50 = 50.
  const c = [view('slow-idle', 0, 50), view('fast-idle', 0, 1), view('busy-fast', 5, 1)];
  const counts = tally(powerOfTwoChoices({ random: seeded(3) }), c, 3000);
  assert.is(counts['slow-idle'], 0, 'the costliest one loses every pair');
  assert.ok(counts['fast-idle']! > counts['busy-fast']!, JSON.stringify(counts));
  // fast-idle wins both pairs it is in (2/3 of pairs), busy-fast only the pair with slow-idle (1/3).
  assert.ok(counts['fast-idle']! > 1800 && counts['busy-fast']! > 800, JSON.stringify(counts));
  // Latency matters, not just in-flight: equal in-flight, lower EWMA wins every time.
  const two = [view('slow', 2, 40), view('fast', 2, 4)];
  assert.equal(tally(powerOfTwoChoices(), two, 100), { slow: 0, fast: 100 });
});

test.run();
