/**
 * Outlier-ejection timing (pure policy): repeat offenders are ejected for longer, up to 10x, and
 * the multiplier decays by one doubling per `ejectMs` spent back in rotation.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { nextEjection, type EjectionHistory } from '../../src/client/ejection.js';

const test = suite('ejection policy');
const EJECT_MS = 100;

/** Ejects at `now`, records the result in `h`, returns the ejection's length. */
function eject(h: EjectionHistory, now: number): number {
  const next = nextEjection(h, now, EJECT_MS);
  h.ejections = next.ejections;
  h.ejectedUntil = next.ejectedUntil;
  return next.ms;
}

test('back-to-back ejections double up to 10x and stay there while the endpoint keeps failing', () => {
  const h: EjectionHistory = { ejections: 0, ejectedUntil: 0 };
  const lengths: number[] = [];
  for (let i = 0; i < 7; i++) lengths.push(eject(h, h.ejectedUntil)); // ejected again the moment it returns
  assert.equal(lengths, [100, 200, 400, 800, 1000, 1000, 1000]);
});

test('each full ejectMs healthy in rotation undoes one doubling; a partial interval undoes none', () => {
  const h: EjectionHistory = { ejections: 0, ejectedUntil: 0 };
  for (let i = 0; i < 6; i++) eject(h, h.ejectedUntil);
  assert.is(eject(h, h.ejectedUntil + EJECT_MS - 1), 1000, 'less than one healthy interval: still 10x');
  assert.is(eject(h, h.ejectedUntil + EJECT_MS), 800, 'one interval: one doubling less (8x)');
  assert.is(eject(h, h.ejectedUntil + 2 * EJECT_MS), 400, 'two intervals after an 8x ejection: 4x');
  assert.is(eject(h, h.ejectedUntil + 50 * EJECT_MS), 100, 'healthy for long: back to the first ejection time');
  assert.is(eject(h, h.ejectedUntil), 200, 'and a repeat offence doubles again');
});

test('a repeat offender at 10x for a long time recovers in a few intervals, not never', () => {
  const h: EjectionHistory = { ejections: 0, ejectedUntil: 0 };
  for (let i = 0; i < 1000; i++) eject(h, h.ejectedUntil);
  assert.is(eject(h, h.ejectedUntil + 5 * EJECT_MS), 100);
});

test('ejectMs 0 never ejects and never divides by zero', () => {
  const h: EjectionHistory = { ejections: 3, ejectedUntil: 10 };
  assert.is(nextEjection(h, 10, 0).ms, 0);
  assert.is(nextEjection(h, 50, 0).ms, 0);
});

test.run();
