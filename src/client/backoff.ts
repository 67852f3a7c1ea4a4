import { MAX_TIMER_MS } from '../util/validate.js';

/** Filled reconnect backoff settings. */
export interface BackoffOptions {
  /** First delay, in ms. */
  initialMs: number;
  /** Largest delay, in ms. */
  maxMs: number;
  /** Growth factor per consecutive failure. */
  multiplier: number;
  /** Relative jitter: the delay is spread uniformly over ±jitter of its value. */
  jitter: number;
}

/** Defaults close to gRPC's connection backoff, scaled for services on one network. */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 5000, multiplier: 1.6, jitter: 0.2 };

/**
 * Exponential backoff with jitter, so that many clients reconnecting to a restarted server do not
 * arrive in lockstep. One instance per endpoint.
 */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** Consecutive failures recorded since the last success. */
  get attempts(): number {
    return this.failures;
  }

  /** Records a failure and returns how long to wait before the next attempt, in ms. */
  fail(): number {
    const { initialMs, maxMs, multiplier, jitter } = this.options;
    const base = Math.min(maxMs, initialMs * multiplier ** this.failures);
    this.failures++;
    // Jitter may push a maxMs near the timer limit past it, and a longer timer would fire at once.
    return Math.min(MAX_TIMER_MS, Math.max(0, Math.round(base * (1 - jitter + 2 * jitter * this.random()))));
  }

  /** Records a success: the next failure starts from the initial delay again. */
  reset(): void {
    this.failures = 0;
  }
}
