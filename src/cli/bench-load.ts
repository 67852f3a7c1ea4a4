/**
 * The load loop of `avrpc bench`: `concurrency` workers, each starting its next call when its last
 * one ends (closed loop), or, with `rps`, on a fixed schedule (open loop: call i is due at
 * `begin + i / rps`). On a schedule, latency is measured from the time a call was due, not from when
 * it was sent: a server that stalls delays the calls queued behind the stall, and timing those from
 * their late send would hide the wait (coordinated omission, as wrk2 and ghz correct it). The time
 * from the actual send is kept too, as the service time.
 */
import * as hdr from 'hdr-histogram-js';
import { codeName } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';

/** What to run. */
export interface LoadPlan {
  concurrency: number;
  /** Stop after this long (ms), or undefined to stop after `calls`. */
  durationMs: number | undefined;
  /** Stop after this many calls, or undefined to stop after `durationMs`. */
  calls: number | undefined;
  /** Calls started per second, or undefined for as fast as `concurrency` allows. */
  rps: number | undefined;
  /** Makes call `i` (the requests cycle by `i`). */
  call: (i: number) => Promise<unknown>;
  /** Called as calls end, for a progress bar. */
  progress?: (done: number) => void;
}

/** Latency percentiles in microseconds. */
export interface LatencySummary {
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** What the load measured. */
export interface LoadResult {
  calls: number;
  ok: number;
  errors: Record<string, number>;
  elapsedMs: number;
  /** From the time each call was due (with `rps`), else from its send. */
  latencyUs: LatencySummary;
  /** From each call's actual send: the same as `latencyUs` without `rps`. */
  serviceUs: LatencySummary;
  histogram: Array<{ leUs: number; count: number }>;
}

/** Runs the plan; never rejects for a failed call (failures are counted by code). */
export async function runLoad(plan: LoadPlan): Promise<LoadResult> {
  const latency = newHistogram();
  const service = newHistogram();
  const errors: Record<string, number> = {};
  const counts = new Buckets();
  const interval = plan.rps === undefined ? 0 : 1000 / plan.rps;
  let started = 0;
  let done = 0;
  let ok = 0;
  let stop = false;
  const begin = performance.now();
  const timer = plan.durationMs === undefined ? undefined : setTimeout(() => (stop = true), plan.durationMs);
  const worker = async (): Promise<void> => {
    while (!stop && (plan.calls === undefined || started < plan.calls)) {
      const i = started++;
      const due = begin + i * interval;
      const wait = due - performance.now();
      // setTimeout has millisecond steps: a call due within the next millisecond goes now.
      if (wait >= 1) await sleep(wait);
      if (stop) break;
      const sent = performance.now();
      try {
        await plan.call(i);
        ok++;
      } catch (err) {
        const name = codeName(RpcError.from(err).code);
        errors[name] = (errors[name] ?? 0) + 1;
      }
      const end = performance.now();
      // A call sent before it was due (by less than a millisecond) is timed from its send.
      const from = plan.rps === undefined ? sent : Math.min(due, sent);
      const us = micros(end - from);
      latency.recordValue(us);
      service.recordValue(micros(end - sent));
      counts.add(us);
      plan.progress?.(++done);
    }
  };
  await Promise.all(Array.from({ length: plan.concurrency }, worker));
  const elapsedMs = performance.now() - begin;
  clearTimeout(timer);
  const result: LoadResult = {
    calls: done,
    ok,
    errors,
    elapsedMs,
    latencyUs: summary(latency),
    serviceUs: summary(service),
    histogram: counts.list(),
  };
  latency.destroy();
  service.destroy();
  return result;
}

function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

function micros(ms: number): number {
  return Math.max(1, Math.round(ms * 1000));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function summary(h: hdr.Histogram): LatencySummary {
  if (h.totalCount === 0) return { min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  // hdr reports a percentile as the top of its bucket, which can exceed the exact max: clamp.
  const pct = (p: number): number => Math.min(h.getValueAtPercentile(p), h.maxValue);
  return {
    min: h.minNonZeroValue,
    mean: Math.round(h.mean),
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    p999: pct(99.9),
    max: h.maxValue,
  };
}

/** Histogram buckets: powers of two in microseconds, counted as calls end (hdr's API has no range counts). */
class Buckets {
  private readonly counts: number[] = [];

  add(us: number): void {
    const i = Math.max(0, Math.ceil(Math.log2(Math.max(1, us))));
    this.counts[i] = (this.counts[i] ?? 0) + 1;
  }

  /** The buckets from the first to the last non-empty one. */
  list(): Array<{ leUs: number; count: number }> {
    const first = this.counts.findIndex((c) => c !== undefined);
    if (first < 0) return [];
    const out: Array<{ leUs: number; count: number }> = [];
    for (let i = first; i < this.counts.length; i++) out.push({ leUs: 2 ** i, count: this.counts[i] ?? 0 });
    return out;
  }
}
