import { MAX_TIMER_MS } from '../util/validate.js';

/** What the idle check reads of a connection, and how it ends one that was idle. */
export interface IdleSubject {
  /** Requests received since the previous call, counted afresh from now. */
  takeRequestCount(): number;
  /** Fragment bytes of requests received so far (a large upload in progress is not idleness). */
  readonly fragmentBytesReceived: number;
  /** Calls running. */
  readonly inFlight: number;
  /** A whole period passed with nothing running and nothing received: drain, or end a drain that stalled. */
  idle(): void;
}

/** The timers and clock {@link ConnectionTimers} uses: Node's, or a fake one in unit tests. */
export interface TimerClock {
  /** Epoch ms, like `Date.now()` (principals' `expiresAt` are epoch ms). */
  now(): number;
  /** Runs `fn` once after `ms`; the timer must not keep the process alive when `unref` is true. */
  after(ms: number, fn: () => void, unref: boolean): Timer;
  /** Runs `fn` every `ms`, never keeping the process alive. */
  every(ms: number, fn: () => void): Timer;
}

/** A timer of a {@link TimerClock}. */
export interface Timer {
  cancel(): void;
}

/** Node's timers and `Date.now()`. */
export const NODE_CLOCK: TimerClock = {
  now: () => Date.now(),
  after(ms, fn, unref) {
    const t = setTimeout(fn, ms);
    if (unref) t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};

/**
 * A server connection's timers: the handshake deadline, the principal's expiry, and the idle check.
 * One of each at most, all cleared by {@link clear} when the connection closes. Requests never read
 * the clock for these: a timer fires instead.
 */
export class ConnectionTimers {
  private handshake: Timer | undefined;
  private expiry: Timer | undefined;
  private idle: Timer | undefined;

  constructor(private readonly clock: TimerClock = NODE_CLOCK) {}

  /** Calls `onTimeout` unless {@link handshakeDone} comes within `ms`. */
  startHandshake(ms: number, onTimeout: () => void): void {
    this.handshake = this.clock.after(ms, onTimeout, false);
  }

  /** The handshake completed in time. */
  handshakeDone(): void {
    this.handshake?.cancel();
    this.handshake = undefined;
  }

  /**
   * Calls `onExpired` at `expiresAt` (epoch ms); false, arming nothing, when that is already past.
   * Beyond setTimeout's limit Node would fire at once: it waits in steps, checking the clock each time.
   */
  armExpiry(expiresAt: number, onExpired: () => void): boolean {
    const left = expiresAt - this.clock.now();
    if (!(left > 0)) return false;
    this.expiry = this.clock.after(
      Math.min(left, MAX_TIMER_MS),
      () => (this.armExpiry(expiresAt, onExpired) ? undefined : onExpired()),
      true,
    );
    return true;
  }

  /**
   * Every `ms` (0: never): a connection with no call running and nothing received of a request
   * (whole, or fragments of one) during the period is {@link IdleSubject.idle}.
   */
  watchIdle(ms: number, subject: IdleSubject): void {
    if (ms === 0) return;
    let fragmentBytes = 0;
    this.idle = this.clock.every(ms, () => {
      const received = subject.fragmentBytesReceived;
      const quiet = subject.takeRequestCount() === 0 && received === fragmentBytes;
      fragmentBytes = received;
      if (quiet && subject.inFlight === 0) subject.idle();
    });
  }

  /** The connection closed. */
  clear(): void {
    this.handshake?.cancel();
    this.expiry?.cancel();
    this.idle?.cancel();
  }
}
