/**
 * The connection's timers (src/server/connection-timers.ts) on a fake clock: the idle check, the
 * principal's expiry (in steps beyond setTimeout's limit) and the handshake deadline. No real timer.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConnectionTimers, type Timer, type TimerClock } from '../../src/server/connection-timers.js';
import { MAX_TIMER_MS } from '../../src/util/validate.js';

/** A clock that moves only when told; `armed` records every delay asked for. */
class FakeClock implements TimerClock {
  private t = 1_000_000;
  readonly armed: number[] = [];
  private timers: Array<{ at: number; every: number; fn: () => void; live: boolean }> = [];
  now(): number {
    return this.t;
  }
  after(ms: number, fn: () => void): Timer {
    return this.add(ms, 0, fn);
  }
  every(ms: number, fn: () => void): Timer {
    return this.add(ms, ms, fn);
  }
  /** Moves the clock by `ms`, firing what falls due, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.t = due.at;
      if (due.every > 0) due.at += due.every;
      else due.live = false;
      due.fn();
    }
    this.t = end;
  }
  private add(ms: number, every: number, fn: () => void): Timer {
    this.armed.push(ms);
    const timer = { at: this.t + ms, every, fn, live: true };
    this.timers.push(timer);
    return { cancel: () => (timer.live = false) };
  }
}

/** An idle subject whose requests, fragment bytes and calls the test sets. */
function subject() {
  const s = { requests: 0, fragmentBytesReceived: 0, inFlight: 0, idles: 0 };
  return {
    s,
    subject: {
      takeRequestCount: () => {
        const n = s.requests;
        s.requests = 0;
        return n;
      },
      get fragmentBytesReceived() {
        return s.fragmentBytesReceived;
      },
      get inFlight() {
        return s.inFlight;
      },
      idle: () => s.idles++,
    },
  };
}

test('idle: a whole period with no request, no fragment and no call running', () => {
  const clock = new FakeClock();
  const timers = new ConnectionTimers(clock);
  const { s, subject: idle } = subject();
  timers.watchIdle(100, idle);
  s.requests = 3;
  clock.advance(100);
  assert.is(s.idles, 0, 'requests came in the period');
  s.fragmentBytesReceived = 4096;
  clock.advance(100);
  assert.is(s.idles, 0, 'an upload progressed');
  s.inFlight = 1;
  clock.advance(100);
  assert.is(s.idles, 0, 'a call still runs');
  s.inFlight = 0;
  clock.advance(100);
  assert.is(s.idles, 1);
  timers.clear();
  clock.advance(1000);
  assert.is(s.idles, 1, 'cleared');
});

test('idleTimeoutMs 0 arms nothing', () => {
  const clock = new FakeClock();
  new ConnectionTimers(clock).watchIdle(0, subject().subject);
  assert.equal(clock.armed, []);
});

test('expiry: false when already past; fires at expiresAt, waiting in steps beyond MAX_TIMER_MS', () => {
  const clock = new FakeClock();
  const timers = new ConnectionTimers(clock);
  let expired = 0;
  assert.not.ok(timers.armExpiry(clock.now(), () => expired++));
  assert.equal(clock.armed, []);
  const at = clock.now() + MAX_TIMER_MS + 500;
  assert.ok(timers.armExpiry(at, () => expired++));
  clock.advance(MAX_TIMER_MS);
  assert.is(expired, 0);
  assert.equal(clock.armed, [MAX_TIMER_MS, 500]);
  clock.advance(499);
  assert.is(expired, 0);
  clock.advance(1);
  assert.is(expired, 1);
});

test('handshake deadline: fires unless the handshake completes', () => {
  const clock = new FakeClock();
  let late = 0;
  const a = new ConnectionTimers(clock);
  a.startHandshake(50, () => late++);
  clock.advance(50);
  assert.is(late, 1);
  const b = new ConnectionTimers(clock);
  b.startHandshake(50, () => late++);
  b.handshakeDone();
  clock.advance(100);
  assert.is(late, 1);
});

test.run();
