/**
 * Time as the connection layer sees it: keepalive, the stall check and fragment pacing read and wait
 * on a {@link Clock} instead of the globals, so a test can drive them on a fake one, turn by turn.
 */

/** A pending timeout or interval of a {@link Clock}; cancel it with {@link Clock.clear}. */
export interface Timer {
  /** Starts its delay again from now (a timeout that already ran is armed again). */
  refresh(): unknown;
}

/** A time source and the timers that go with it. Every timer it makes leaves the process free to exit. */
export interface Clock {
  /** Milliseconds since an arbitrary origin, monotonic (`performance.now()`). */
  now(): number;
  /** Calls `fn` once, `ms` from now. */
  timeout(fn: () => void, ms: number): Timer;
  /** Calls `fn` every `ms` until cleared; a late run starts the next period from when it ran. */
  interval(fn: () => void, ms: number): Timer;
  /** Cancels a timeout or an interval; nothing for `undefined` or a timeout that already ran. */
  clear(timer: Timer | undefined): void;
  /**
   * Calls `fn` in this event-loop turn, after its I/O has been read (`setImmediate`): timers run before
   * I/O, so a timer that judges the peer may first have to let its answer be read.
   */
  afterIo(fn: () => void): void;
}

/**
 * The real clock: `performance.now()` and Node's timers, unref'd. Its timers are Node's own `Timeout`
 * objects, so arming one costs what `setTimeout` costs, no wrapper.
 */
export const realClock: Clock = {
  now: () => performance.now(),
  timeout: (fn, ms) => setTimeout(fn, ms).unref(),
  interval: (fn, ms) => setInterval(fn, ms).unref(),
  // Node's clearTimeout clears intervals too.
  clear: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
  afterIo: (fn) => {
    setImmediate(fn);
  },
};
