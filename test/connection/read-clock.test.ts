import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ReadClock } from '../../src/connection/read-clock.js';

/** The clock readings one socket read shares among its frames. */
const test = suite('read clock');

/** Waits `ms` without yielding: the clock moves, the read does not end. */
function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test('within a read, each clock is read once: every frame of the chunk gets the same reading', () => {
  const clock = new ReadClock();
  clock.begin();
  const mono = clock.now();
  const epoch = clock.epochNow();
  spin(3);
  assert.is(clock.now(), mono);
  assert.is(clock.epochNow(), epoch);
  clock.end();
});

test('outside a read, and in the next read, the clock is read afresh', () => {
  const clock = new ReadClock();
  clock.begin();
  const first = clock.now();
  clock.end();
  spin(3);
  const outside = clock.now();
  assert.ok(outside >= first + 3, `a fresh reading after the read (${outside - first} ms later)`);
  spin(3);
  assert.ok(clock.now() >= outside + 3, 'outside a read every call reads the clock');
  const before = Date.now();
  const epoch = clock.epochNow();
  assert.ok(epoch >= before && epoch <= Date.now(), 'outside a read, epochNow is Date.now()');
  clock.begin();
  spin(1);
  assert.ok(clock.now() > outside, 'a new read takes a new reading');
  clock.end();
});

test.run();
