/** The limits of a {@link CancelGuard} (server options `maxCancels`, `maxCancelRatio`, `cancelWindowMs`). */
export interface CancelLimits {
  /** CANCELs counted within a window before the ratio is even looked at; 0 turns the guard off. */
  readonly maxCancels: number;
  /** CANCELs allowed per call completed within the same window. */
  readonly maxCancelRatio: number;
  /** Length of the window, in ms: both counts halve every window. */
  readonly cancelWindowMs: number;
}

/**
 * Tells when a client cancels far more than it lets complete (the HTTP/2 "Rapid Reset" attack,
 * CVE-2023-44487: a REQUEST and its CANCEL cost the client two small frames, and the server a handler
 * start each). Counts the connection's CANCELs against its completed calls (answered by a handler,
 * whatever the outcome), both decaying by half every `cancelWindowMs`; the client is over the limit
 * once the CANCELs reach `maxCancels` and exceed `maxCancelRatio` times the completed calls.
 *
 * The connection counts every CANCEL, whatever its call had become (running, refused, answered,
 * unknown), except one for a running call within a second of its deadline (the client's timeout): a
 * well-behaved client sends CANCEL only for calls it wrote and gave up on. Completed calls are counted by the connection (a plain counter on
 * the hot path) and handed over at each CANCEL; the clock is read only then too. Completions since the
 * previous CANCEL count in full, as if they were recent: in doubt, the guard errs for the client.
 */
export class CancelGuard {
  private cancels = 0;
  /** Completed calls as of `seen`, decayed with `cancels`. */
  private completed = 0;
  /** The connection's completed-call total at the last CANCEL. */
  private seen = 0;
  private windowStart: number;

  constructor(
    private readonly limits: CancelLimits,
    /** Monotonic clock in ms (tests pass a fake one). */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.windowStart = now();
  }

  /**
   * Counts one CANCEL; `completedTotal` is how many calls the connection has completed so far. True
   * when the client is now over the limit (and should be cut off).
   */
  cancel(completedTotal: number): boolean {
    const elapsed = this.now() - this.windowStart;
    const windowMs = this.limits.cancelWindowMs;
    if (elapsed >= windowMs) {
      const halvings = Math.floor(elapsed / windowMs);
      this.windowStart += halvings * windowMs;
      this.cancels = halvings >= 32 ? 0 : Math.floor(this.cancels / 2 ** halvings);
      this.completed = halvings >= 32 ? 0 : Math.floor(this.completed / 2 ** halvings);
    }
    this.completed += completedTotal - this.seen;
    this.seen = completedTotal;
    this.cancels++;
    return (
      this.limits.maxCancels > 0 && this.cancels >= this.limits.maxCancels && this.cancels > this.limits.maxCancelRatio * this.completed
    );
  }

  /** The counts, for the message the client gets when cut off. */
  describe(): string {
    const l = this.limits;
    return (
      `${this.cancels} CANCELs against ${this.completed} completed calls within about ${l.cancelWindowMs} ms ` +
      `(maxCancels ${l.maxCancels}, maxCancelRatio ${l.maxCancelRatio})`
    );
  }
}
