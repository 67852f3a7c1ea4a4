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

/**
 * A server connection's timers: the handshake deadline, the principal's expiry, and the idle check.
 * One of each at most, all cleared by {@link clear} when the connection closes. Requests never read
 * the clock for these: a timer fires instead.
 */
export class ConnectionTimers {
  private handshake: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;

  /** Calls `onTimeout` unless {@link handshakeDone} comes within `ms`. */
  startHandshake(ms: number, onTimeout: () => void): void {
    this.handshake = setTimeout(onTimeout, ms);
  }

  /** The handshake completed in time. */
  handshakeDone(): void {
    clearTimeout(this.handshake);
    this.handshake = undefined;
  }

  /**
   * Calls `onExpired` at `expiresAt` (epoch ms); false, arming nothing, when that is already past.
   * Beyond setTimeout's limit Node would fire at once: it waits in steps, checking the clock each time.
   */
  armExpiry(expiresAt: number, onExpired: () => void): boolean {
    const left = expiresAt - Date.now();
    if (!(left > 0)) return false;
    this.expiry = setTimeout(() => (this.armExpiry(expiresAt, onExpired) ? undefined : onExpired()), Math.min(left, MAX_TIMER_MS));
    this.expiry.unref();
    return true;
  }

  /**
   * Every `ms` (0: never): a connection with no call running and nothing received of a request
   * (whole, or fragments of one) during the period is {@link IdleSubject.idle}.
   */
  watchIdle(ms: number, subject: IdleSubject): void {
    if (ms === 0) return;
    let fragmentBytes = 0;
    this.idle = setInterval(() => {
      const received = subject.fragmentBytesReceived;
      const quiet = subject.takeRequestCount() === 0 && received === fragmentBytes;
      fragmentBytes = received;
      if (quiet && subject.inFlight === 0) subject.idle();
    }, ms);
    this.idle.unref();
  }

  /** The connection closed. */
  clear(): void {
    clearTimeout(this.handshake);
    clearTimeout(this.expiry);
    clearInterval(this.idle);
  }
}
