import { nextEjection, type EjectionHistory } from './ejection.js';

/**
 * Failure-percentage outlier detection, as Envoy's and gRPC's (`failure_percentage_ejection`): over
 * each interval, an endpoint that finished at least `minCalls` calls, more than `failurePercent` of
 * which failed on its side, is ejected from balancing for an ejection time that grows with repeated
 * ejections (`nextEjection`), while fewer than `maxEjectedPercent` of the endpoints are ejected.
 *
 * What fails: ERROR UNAVAILABLE or INTERNAL, a call lost with its connection, a call that timed out
 * while the server left our PING unanswered, and a call that timed out while *other endpoints answered
 * the same message in less time than this call had* (in this interval or the previous one). That last
 * rule keeps the caller's own deadlines out of it: a deadline too short for the work times out on
 * every endpoint alike, no endpoint answers within it, and no endpoint is blamed; a server that
 * answers PINGs but never answers calls times out where its peers answer, and is. (With a single
 * endpoint there is nothing to compare with, and nothing to eject it in favour of.)
 *
 * Pure arithmetic: no timers, no clock; the pool calls {@link OutlierDetector.evaluate} every interval
 * with the time, and applies the ejections.
 */

/** Filled settings of an {@link OutlierDetector}. */
export interface OutlierOptions {
  /** Failed share of an endpoint's calls in one interval, in percent, above which it is ejected. */
  failurePercent: number;
  /** Calls an endpoint must have finished (answered or failed) in the interval to be judged. */
  minCalls: number;
  /** Endpoints that may be ejected at once, in percent of all endpoints: one is ejected only while fewer are. */
  maxEjectedPercent: number;
  /** First ejection time, in ms (see `nextEjection`). */
  ejectMs: number;
}

/** One endpoint's calls in the current interval, and its ejection history. */
export class OutlierStats implements EjectionHistory {
  ejections = 0;
  ejectedUntil = 0;
  /** Calls answered and calls failed in the current interval. */
  answers = 0;
  failures = 0;
  /** Per message index: the fastest answer in the current and in the previous interval, in ms (Infinity: none). */
  fastest: Float64Array;
  previous: Float64Array;

  constructor(
    private readonly detector: OutlierDetector,
    /** `host:port`. */
    readonly key: string,
    messages: number,
  ) {
    this.fastest = new Float64Array(messages).fill(Infinity);
    this.previous = new Float64Array(messages).fill(Infinity);
  }

  /** The server answered a call of message `index` (a RESPONSE, or an ERROR that is not its failure) after `latencyMs`. */
  answered(index: number, latencyMs: number): void {
    this.answers++;
    if (latencyMs < this.fastest[index]!) this.fastest[index] = latencyMs;
  }

  /** A call failed on the server's side (ERROR UNAVAILABLE or INTERNAL, lost with its connection, timed out while our PING went unanswered). */
  failed(): void {
    this.failures++;
  }

  /** A call of message `index` sent with `budgetMs` left timed out: true (and counted) when other endpoints answered it in less. */
  timedOut(index: number, budgetMs: number): boolean {
    if (!this.detector.answeredWithin(this, index, budgetMs)) return false;
    this.failures++;
    return true;
  }

  /** Starts a new interval: its fastest answers become the previous interval's. */
  roll(): void {
    const t = this.previous;
    this.previous = this.fastest;
    this.fastest = t.fill(Infinity);
    this.answers = 0;
    this.failures = 0;
  }
}

/** An ejection decided by {@link OutlierDetector.evaluate}. */
export interface Ejection {
  health: OutlierStats;
  /** How long it lasts, in ms. */
  ms: number;
}

/** The endpoints of one client and the failure-percentage rule over them. */
export class OutlierDetector {
  private readonly endpoints = new Set<OutlierStats>();

  constructor(
    private readonly options: OutlierOptions,
    /** Messages of the protocol (answers are recorded per message index). */
    private readonly messages: number,
  ) {}

  /** Starts tracking an endpoint. */
  add(key: string): OutlierStats {
    const h = new OutlierStats(this, key, this.messages);
    this.endpoints.add(h);
    return h;
  }

  /** Stops tracking an endpoint (removed from the registry). */
  remove(h: OutlierStats): void {
    this.endpoints.delete(h);
  }

  /** True when an endpoint other than `self` answered message `index` in less than `budgetMs`, this interval or the last. */
  answeredWithin(self: OutlierStats, index: number, budgetMs: number): boolean {
    for (const h of this.endpoints) {
      if (h !== self && (h.fastest[index]! < budgetMs || h.previous[index]! < budgetMs)) return true;
    }
    return false;
  }

  /**
   * Ejects `h` at `now` unless it is ejected already or the cap forbids (as gRPC's: only while fewer
   * than `maxEjectedPercent` of the endpoints are ejected; the pool still uses ejected endpoints when
   * no other is left). Returns the ejection's length in
   * ms, 0 if not ejected. Also the way consecutive failures (`ejectAfterFailures`) eject.
   */
  eject(h: OutlierStats, now: number): number {
    if (h.ejectedUntil > now || !this.mayEject(now)) return 0;
    const next = nextEjection(h, now, this.options.ejectMs);
    if (next.ms <= 0) return 0;
    h.ejections = next.ejections;
    h.ejectedUntil = next.ejectedUntil;
    return next.ms;
  }

  /**
   * Ends an interval at `now`: ejects the endpoints over the failure threshold, worst share first, as
   * far as the cap allows, among those `eligible` says may be (the pool ejects only endpoints with a
   * connection up: unreachable ones back off instead); then starts the next interval for all.
   */
  evaluate(now: number, eligible: (h: OutlierStats) => boolean = () => true): Ejection[] {
    const o = this.options;
    const over: OutlierStats[] = [];
    for (const h of this.endpoints) {
      const calls = h.answers + h.failures;
      if (h.ejectedUntil <= now && calls >= o.minCalls && h.failures * 100 > o.failurePercent * calls && eligible(h)) over.push(h);
    }
    over.sort((a, b) => b.failures / (b.answers + b.failures) - a.failures / (a.answers + a.failures));
    const out: Ejection[] = [];
    for (const h of over) {
      const ms = this.eject(h, now);
      if (ms > 0) out.push({ health: h, ms });
    }
    for (const h of this.endpoints) h.roll();
    return out;
  }

  private mayEject(now: number): boolean {
    let ejected = 0;
    for (const h of this.endpoints) if (h.ejectedUntil > now) ejected++;
    const n = this.endpoints.size;
    return ejected * 100 < this.options.maxEjectedPercent * n;
  }
}
