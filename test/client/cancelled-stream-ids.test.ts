/**
 * CancelledIds remembers which cancelled ids were streams: the last fragment of one of a stream's
 * messages does not end its answer (more DATA may follow until the barrier's PONG), and the mark goes
 * with the id.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CancelledIds, MAX_CANCELLED_IDS } from '../../src/client/cancelled-ids.js';

test('a cancelled stream id is marked until the barrier releases it', () => {
  const c = new CancelledIds();
  c.add(5, true);
  c.add(6);
  assert.ok(c.isStream(5));
  assert.not.ok(c.isStream(6));
  const ping = c.barrier();
  assert.ok(c.expects(5));
  assert.is(c.pong(ping), -1);
  assert.not.ok(c.expects(5));
  assert.not.ok(c.isStream(5));
});

test('an id re-used by a call loses its stream mark; the oldest id forgotten at the cap takes its mark with it', () => {
  const c = new CancelledIds();
  c.add(7, true);
  c.add(7);
  assert.not.ok(c.isStream(7));
  c.add(1, true);
  for (let i = 0; i < MAX_CANCELLED_IDS; i++) c.add(100 + i);
  assert.not.ok(c.expects(1));
  assert.not.ok(c.isStream(1));
});

test.run();
