/**
 * A retry budget (token bucket): each call deposits `ratio` of a token, each retry spends one, and
 * the bucket holds at most `maxTokens`. Retries therefore add at most about `ratio` extra load in
 * steady state, while a burst of failures (a server killed mid-load) can still be retried from the
 * saved tokens. Modelled on gRPC's retry throttling and Finagle's RetryBudget.
 */
export class RetryBudget {
  private tokens: number;

  constructor(
    private readonly ratio = 0.2,
    private readonly maxTokens = 100,
  ) {
    this.tokens = maxTokens;
  }

  /** Records a first attempt. */
  deposit(): void {
    if (this.tokens < this.maxTokens) this.tokens += this.ratio;
  }

  /** Spends one token for a retry; false when the budget is exhausted (do not retry). */
  withdraw(): boolean {
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Tokens left (for observability and tests). */
  get available(): number {
    return this.tokens;
  }
}
