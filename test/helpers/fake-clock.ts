/**
 * A {@link Clock} whose time moves only when a test says so, with Node's loop order: in a turn, due
 * timers run first (in due order), then that turn's I/O (a callback the test passes), then the
 * `afterIo` callbacks queued so far. {@link FakeClock.advance} lets time pass with every timer on
 * time; {@link FakeClock.block} lets it pass with none running, as when our own loop is blocked.
 */
import type { Clock, Timer } from '../../src/util/clock.js';

/** Turns one `advance` may run before it is taken for a runaway timer loop. */
const MAX_TURNS = 100_000;

class FakeTimer implements Timer {
  due = 0;
  seq = 0;
  constructor(
    private readonly clock: FakeClock,
    readonly fn: () => void,
    readonly ms: number,
    readonly repeat: boolean,
  ) {}
  refresh(): this {
    this.clock.schedule(this);
    return this;
  }
}

/** A clock for tests: deterministic, nothing runs unless the test advances it. */
export class FakeClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Set<FakeTimer>();
  private immediates: (() => void)[] = [];
  /** Timeouts and intervals made so far (each arming of a timer is one). */
  created = 0;

  now(): number {
    return this.t;
  }

  timeout(fn: () => void, ms: number): Timer {
    return this.make(fn, ms, false);
  }

  interval(fn: () => void, ms: number): Timer {
    return this.make(fn, ms, true);
  }

  clear(timer: Timer | undefined): void {
    if (timer !== undefined) this.timers.delete(timer as FakeTimer);
  }

  afterIo(fn: () => void): void {
    this.immediates.push(fn);
  }

  /** Timeouts and intervals pending. */
  get pending(): number {
    return this.timers.size;
  }

  /** Callbacks queued with `afterIo` and not yet run. */
  get pendingAfterIo(): number {
    return this.immediates.length;
  }

  /** When the next timer is due, or undefined when none is pending. */
  get nextDue(): number | undefined {
    return this.next()?.due;
  }

  /** (Re)arms `timer`, due its delay from now. Used by `refresh()`. */
  schedule(timer: FakeTimer): void {
    timer.due = this.t + Math.max(1, timer.ms);
    timer.seq = this.seq++;
    this.timers.add(timer);
  }

  /**
   * Time passes by `ms` with our loop free: each timer runs when it is due, in a turn of its own
   * (then that turn's `afterIo` callbacks), until none is due by the end.
   */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let turns = 0; ; turns++) {
      if (turns === MAX_TURNS) throw new Error(`FakeClock: more than ${MAX_TURNS} turns in ${ms} ms`);
      const next = this.next();
      if (this.immediates.length === 0) {
        if (next === undefined || next.due > end) break;
        this.t = Math.max(this.t, next.due);
      }
      this.turn();
    }
    this.t = end;
  }

  /** Our own loop is blocked for `ms`: time passes and nothing runs; the next turn finds its timers late. */
  block(ms: number): void {
    this.t += ms;
  }

  /**
   * One loop turn now: the timers due by now, then `io` (what the socket delivers this turn), then
   * the `afterIo` callbacks queued until then (those they queue wait for the next turn).
   */
  turn(io?: () => void): void {
    for (let timer = this.next(); timer !== undefined && timer.due <= this.t; timer = this.next()) {
      this.timers.delete(timer);
      if (timer.repeat) this.schedule(timer);
      timer.fn();
    }
    io?.();
    const ready = this.immediates;
    this.immediates = [];
    for (const fn of ready) fn();
  }

  private make(fn: () => void, ms: number, repeat: boolean): FakeTimer {
    this.created++;
    const timer = new FakeTimer(this, fn, ms, repeat);
    this.schedule(timer);
    return timer;
  }

  /** The pending timer due first (the first armed among equals). */
  private next(): FakeTimer | undefined {
    let first: FakeTimer | undefined;
    for (const timer of this.timers)
      if (first === undefined || timer.due < first.due || (timer.due === first.due && timer.seq < first.seq)) first = timer;
    return first;
  }
}
