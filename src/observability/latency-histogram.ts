/**
 * The latency histogram of the Prometheus observer, kept as plain counts per message and copied into
 * the exposition at scrape time. prom-client's `Histogram.observe` hashes the labels, validates them
 * and looks the bucket up by its number as a string key on every call: about 1 us with 16 buckets,
 * more with finer ones. Here a call costs a short scan of the bounds and an array increment, whatever
 * the buckets; a scrape costs what prom-client's would.
 */

/** One label set's observations: counts per bucket (not cumulative; the last is `+Inf`) and their sum. */
export interface LatencyRecord {
  readonly counts: Float64Array;
  sum: number;
}

/** A new, empty record for `bounds`. */
export function latencyRecord(bounds: readonly number[]): LatencyRecord {
  return { counts: new Float64Array(bounds.length + 1), sum: 0 };
}

/** Counts one observation of `seconds` (a bucket holds values up to and including its bound). */
export function observeLatency(bounds: readonly number[], record: LatencyRecord, seconds: number): void {
  let i = 0;
  // From the low end: most calls fall in the first few buckets.
  while (i < bounds.length && seconds > bounds[i]!) i++;
  record.counts[i]!++;
  record.sum += seconds;
}

/** A sample as prom-client's registry reads it from a metric's `get()`. */
interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

/**
 * A histogram metric object that a prom-client Registry can hold (`registerMetric`): its `get()`
 * returns what prom-client's own Histogram returns (`_bucket` samples with `le` first, cumulative,
 * then `_sum` and `_count`), so `metrics()`, `getMetricsAsJSON()` and an `AggregatorRegistry`
 * (aggregator `sum`) treat it as one. `read` yields the records to expose, summed per label set
 * already; `reset` forgets what they counted (`register.resetMetrics()`).
 */
export function latencyMetric(
  name: string,
  help: string,
  bounds: readonly number[],
  read: () => Iterable<[Record<string, string>, LatencyRecord]>,
  reset: () => void,
): object {
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    labelNames: ['side', 'message'],
    reset,
    get() {
      const values: Sample[] = [];
      for (const [labels, record] of read()) {
        let total = 0;
        for (let i = 0; i < bounds.length; i++) {
          total += record.counts[i]!;
          values.push({ labels: { le: bounds[i]!, ...labels }, value: total, metricName: `${name}_bucket` });
        }
        total += record.counts[bounds.length]!;
        values.push({ labels: { le: '+Inf', ...labels }, value: total, metricName: `${name}_bucket` });
        values.push({ labels, value: record.sum, metricName: `${name}_sum` });
        values.push({ labels, value: total, metricName: `${name}_count` });
      }
      return Promise.resolve({ name, help, type: 'histogram', values, aggregator: 'sum' });
    },
  };
}

/** Adds `from` into `into` (records of the same bounds). */
export function addLatency(into: LatencyRecord, from: LatencyRecord): void {
  for (let i = 0; i < into.counts.length; i++) into.counts[i]! += from.counts[i]!;
  into.sum += from.sum;
}
