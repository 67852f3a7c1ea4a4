import type { OutlierStats } from './outlier-detector.js';

/** Weight of the newest sample in the latency EWMA. */
const EWMA_ALPHA = 0.2;

/**
 * Where a connection reports how its calls ended on its endpoint. The connection only says what
 * happened; the arithmetic (latency EWMA, consecutive failures, outlier statistics) is here, beside
 * ejection, and the pool decides what follows.
 */
export interface CallOutcomes {
  /** The server answered a call of message `index` with a RESPONSE, `latencyMs` after it was sent. */
  answered(index: number, latencyMs: number): void;
  /** The server answered with an ERROR that is not its own failure (not UNAVAILABLE or INTERNAL). */
  erred(index: number, latencyMs: number): void;
  /** The server failed a call: ERROR UNAVAILABLE or INTERNAL. */
  failed(): void;
  /** A call that went out was lost with its connection. */
  lost(): void;
  /**
   * A call of message `index`, sent with `budgetMs` left, ran out of time with no answer (our own loop
   * not to blame); `unanswered`: the server left our PING unanswered too.
   */
  timedOut(index: number, budgetMs: number, unanswered: boolean): void;
  /** A connection failed: it never completed its handshake, or it closed with calls in flight. */
  connectionFailed(): void;
}

/**
 * The health of one endpoint, shared by its connections: the figures balancers read (weight, latency
 * EWMA) and outlier ejection counts (consecutive failures, and failure-percentage statistics when
 * outlier detection tracks the endpoint).
 */
export class EndpointHealth implements CallOutcomes {
  /** EWMA of call latency in ms (0 before any answer). */
  latencyEwmaMs = 0;
  /** Failed calls and connections since the last success. */
  consecutiveFailures = 0;

  constructor(
    /** `host:port`. */
    readonly key: string,
    /** Weight from the registry. */
    public weight = 1,
    /** Failure-percentage statistics of outlier detection, when it tracks this endpoint. */
    private readonly outliers: OutlierStats | undefined = undefined,
    /** Told after each call failure counted in {@link consecutiveFailures} (the pool may eject). */
    private readonly onFailure: () => void = () => {},
  ) {}

  answered(index: number, latencyMs: number): void {
    this.consecutiveFailures = 0;
    this.latencyEwmaMs += EWMA_ALPHA * (latencyMs - this.latencyEwmaMs);
    this.outliers?.answered(index, latencyMs);
  }

  erred(index: number, latencyMs: number): void {
    this.outliers?.answered(index, latencyMs);
  }

  failed(): void {
    this.outliers?.failed();
    this.countFailure();
  }

  lost(): void {
    this.outliers?.failed();
  }

  timedOut(index: number, budgetMs: number, unanswered: boolean): void {
    if (unanswered) {
      this.outliers?.failed();
      this.countFailure();
    } else if (this.outliers !== undefined && this.outliers.timedOut(index, budgetMs)) {
      this.countFailure();
    }
  }

  connectionFailed(): void {
    // The pool hears of the close itself (the connection's transition), before this count.
    this.consecutiveFailures++;
  }

  /** A fresh start: a connection became ready, or the endpoint was ejected. */
  resetFailures(): void {
    this.consecutiveFailures = 0;
  }

  private countFailure(): void {
    this.consecutiveFailures++;
    this.onFailure();
  }
}
