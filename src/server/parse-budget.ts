/**
 * Event-loop time a server spends building protocols that strangers sent (server option
 * `protocolParseMsPerSecond`): peers that neither authenticated nor completed a call. The shape limits
 * bound one protocol to about half a second; this bounds them all together, since a peer can open
 * connection after connection, each with a new protocol. A token bucket of milliseconds: it holds at
 * most one second's worth, refills at `msPerSecond` per second, and each parse draws what it took
 * (measured, so it may overdraw by one parse). While it is empty, handshakes that would need a parse
 * are refused (GOAWAY UNAVAILABLE); known protocols, and authenticated peers, never wait on it.
 */
export class ParseBudget {
  private tokens: number;
  private last: number;

  constructor(
    private readonly msPerSecond: number,
    /** Monotonic clock in ms (tests pass a fake one). */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = msPerSecond;
    this.last = now();
  }

  /** True if a parse may start now. */
  available(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.msPerSecond, this.tokens + ((t - this.last) * this.msPerSecond) / 1000);
    this.last = t;
    return this.tokens > 0;
  }

  /** Runs `parse`, drawing the time it took from the budget (also when it throws). */
  spend<T>(parse: () => T): T {
    const t0 = this.now();
    try {
      return parse();
    } finally {
      this.tokens -= this.now() - t0;
    }
  }
}
