import { Code, codeName } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { invalid, knownOptions } from '../util/validate.js';
import { addLatency, latencyMetric, latencyRecord, observeLatency, type LatencyRecord } from './latency-histogram.js';
import type { PoolStat, RpcObserver } from './observer.js';

/** Options of {@link createPrometheusObserver}. */
export interface PrometheusObserverOptions {
  /** Label value distinguishing server and client metrics in one process. Default `'server'`. */
  side?: 'server' | 'client';
  /**
   * prom-client Registry to register into. Default: prom-client's global registry. Observers on one
   * registry share its metrics (a process that is server and client exposes one `/metrics`), each
   * under its own `side`; two observers of the same side add up, as one observer shared would.
   */
  register?: unknown;
  /** Metric name prefix. Default `'avrpc_'`. */
  prefix?: string;
  /**
   * A client whose pool state (per endpoint) is exported as gauges, read at scrape time. Not needed
   * when this observer is the client's `observer`: `createClient` attaches its pool by itself.
   */
  pool?: { stats(): readonly PoolStat[] };
  /**
   * Upper bounds of the latency histogram's buckets, in seconds, increasing. Default
   * {@link DEFAULT_LATENCY_BUCKETS} (1 us to 10 s). Observers sharing a registry (and prefix) share the
   * histogram: a second observer asking for other buckets is refused (INVALID_ARGUMENT).
   */
  buckets?: readonly number[];
}

/**
 * The latency histogram's default buckets, in seconds: 1 us to 10 s in 1-2.5-5-7.5 steps below 1 ms,
 * 1-2.5-5 above. On loopback a server's echo handler is done in a few microseconds and a client's call
 * takes tens of them, so the low end is fine-grained. A call scans the buckets from the low end.
 */
export const DEFAULT_LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.000001, 0.0000025, 0.000005, 0.0000075, 0.00001, 0.000025, 0.00005, 0.000075, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005,
  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

const KNOWN_PROMETHEUS_OPTIONS = { side: true, register: true, prefix: true, pool: true, buckets: true } as const satisfies Record<
  keyof PrometheusObserverOptions,
  true
>;

/** An observer that records Prometheus metrics, and the registry holding them. */
export interface PrometheusObserver extends RpcObserver {
  /** The prom-client Registry; serve `await register.metrics()` at `/metrics`. */
  readonly register: { metrics(): Promise<string>; contentType: string };
}

/** One observer's figures, read at scrape time by the metrics its registry shares. */
interface Source {
  readonly side: string;
  /** Calls per message, per code (index = code). */
  readonly callCounts: Map<string, number[]>;
  /** Latency per message (the histogram's counts). */
  readonly latency: Map<string, LatencyRecord>;
  /** Stream elements per message: [sent, received]. */
  readonly elementCounts: Map<string, [number, number]>;
  /** Unlabelled figures as plain numbers: a per-call `inc(labels)` would hash the labels, on the hot path. */
  readonly now: { inFlight: number; bytesIn: number; bytesOut: number; connections: number };
  /** Client pools reported on. */
  readonly pools: Set<() => readonly PoolStat[]>;
}

/** The metrics registered once in a registry (per prefix), summing every observer's source. */
interface MetricSet {
  readonly sources: Source[];
  /** The latency histogram's buckets, as registered. */
  readonly buckets: readonly number[];
  readonly callsTotal: object;
  /** Registers the pool gauges (on the first client pool, so a server's registry has none). */
  poolGauges(): void;
}

type Prom = typeof import('prom-client');
type PromRegistry = InstanceType<Prom['Registry']>;

/**
 * Metric sets by registry, then prefix: prom-client refuses a second metric of one name in a registry,
 * so observers sharing a registry must share its metrics. Keyed weakly by the registry the caller
 * injected; nothing outlives it.
 */
const sets = new WeakMap<object, Map<string, MetricSet>>();

/** The metric set of `register` for `prefix`, registered on first use (again after `register.clear()`). */
function metricSet(prom: Prom, register: PromRegistry, prefix: string, buckets: readonly number[]): MetricSet {
  let byPrefix = sets.get(register);
  if (byPrefix === undefined) sets.set(register, (byPrefix = new Map()));
  const known = byPrefix.get(prefix);
  if (known !== undefined && register.getSingleMetric(`${prefix}calls_total`) === known.callsTotal) {
    if (!sameBuckets(known.buckets, buckets))
      invalid(
        'createPrometheusObserver: options.buckets',
        `differ from those of the ${prefix}call_duration_seconds already in this registry`,
      );
    return known;
  }
  const registers = [register];
  const sources: Source[] = [];
  /** Sums `read` per label set over every source, keyed by the labels' JSON. */
  const summed = (read: (s: Source, add: (labels: Record<string, string>, n: number) => void) => void) => {
    const totals = new Map<string, [Record<string, string>, number]>();
    for (const source of sources) {
      read(source, (labels, n) => {
        const key = JSON.stringify(labels);
        const t = totals.get(key);
        if (t === undefined) totals.set(key, [labels, n]);
        else t[1] += n;
      });
    }
    return totals.values();
  };
  const callsTotal = new prom.Counter({
    name: `${prefix}calls_total`,
    help: 'Calls by message and status code',
    labelNames: ['side', 'message', 'code'],
    registers,
    collect() {
      this.reset();
      const all = summed((s, add) => {
        for (const [message, byCode] of s.callCounts)
          byCode.forEach((n, code) => {
            if (n > 0) add({ side: s.side, message, code: codeName(code as Code) }, n);
          });
      });
      for (const [labels, n] of all) this.inc(labels, n);
    },
  });
  // Counted per call into plain arrays; prom-client's Histogram.observe would cost 1 us or more a call.
  register.registerMetric(
    latencyMetric(
      `${prefix}call_duration_seconds`,
      'Call latency',
      buckets,
      () => {
        const totals = new Map<string, [Record<string, string>, LatencyRecord]>();
        for (const source of sources)
          for (const [message, record] of source.latency) {
            const key = `${source.side}\n${message}`;
            let t = totals.get(key);
            if (t === undefined) totals.set(key, (t = [{ side: source.side, message }, latencyRecord(buckets)]));
            addLatency(t[1], record);
          }
        return totals.values();
      },
      () => {
        for (const source of sources) source.latency.clear();
      },
    ) as Parameters<PromRegistry['registerMetric']>[0],
  );
  const bySide = (read: (s: Source) => number) => summed((s, add) => add({ side: s.side }, read(s)));
  const gauge = (name: string, help: string, read: (s: Source) => number) =>
    new prom.Gauge({
      name: `${prefix}${name}`,
      help,
      labelNames: ['side'],
      registers,
      collect() {
        this.reset();
        for (const [labels, n] of bySide(read)) this.set(labels, n);
      },
    });
  const counter = (name: string, help: string, read: (s: Source) => number) =>
    new prom.Counter({
      name: `${prefix}${name}`,
      help,
      labelNames: ['side'],
      registers,
      collect() {
        this.reset();
        for (const [labels, n] of bySide(read)) this.inc(labels, n);
      },
    });
  new prom.Counter({
    name: `${prefix}stream_elements_total`,
    help: 'Stream elements by message and direction (sent, received)',
    labelNames: ['side', 'message', 'direction'],
    registers,
    collect() {
      this.reset();
      const all = summed((s, add) => {
        for (const [message, [sent, received]] of s.elementCounts) {
          if (sent > 0) add({ side: s.side, message, direction: 'sent' }, sent);
          if (received > 0) add({ side: s.side, message, direction: 'received' }, received);
        }
      });
      for (const [labels, n] of all) this.inc(labels, n);
    },
  });
  gauge('calls_in_flight', 'Calls in flight', (s) => s.now.inFlight);
  counter('bytes_received_total', 'Bytes read from sockets', (s) => s.now.bytesIn);
  counter('bytes_sent_total', 'Bytes written to sockets', (s) => s.now.bytesOut);
  gauge('connections', 'Open connections', (s) => s.now.connections);
  let poolGaugesRegistered = false;
  const poolGauges = (): void => {
    if (poolGaugesRegistered) return;
    poolGaugesRegistered = true;
    const poolGauge = (name: string, help: string, pick: (s: PoolStat) => number) =>
      new prom.Gauge({
        name: `${prefix}pool_${name}`,
        help,
        labelNames: ['endpoint'],
        registers,
        collect() {
          this.reset();
          // Clients reporting to this registry add up per endpoint.
          for (const [labels, n] of summed((source, add) => {
            for (const stats of source.pools) for (const s of stats()) add({ endpoint: s.endpoint }, pick(s));
          }))
            this.set(labels, n);
        },
      });
    poolGauge('connections', 'Sockets open or opening per endpoint', (s) => s.connections);
    poolGauge('ready_connections', 'Ready sockets per endpoint', (s) => s.ready);
    poolGauge('in_flight', 'Calls in flight per endpoint', (s) => s.inFlight);
    poolGauge('ejected', '1 while the endpoint is ejected by outlier detection', (s) => (s.ejected ? 1 : 0));
  };
  const set: MetricSet = { sources, buckets, callsTotal, poolGauges };
  byPrefix.set(prefix, set);
  return set;
}

function sameBuckets(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Checks the `buckets` option: a non-empty array of finite, positive, increasing numbers. */
function checkBuckets(buckets: unknown): readonly number[] {
  const at = 'createPrometheusObserver: options.buckets';
  if (!Array.isArray(buckets) || buckets.length === 0) invalid(at, 'must be a non-empty array of seconds');
  buckets.forEach((b: unknown, i) => {
    if (typeof b !== 'number' || !Number.isFinite(b) || b <= 0) invalid(`${at}[${i}]`, 'must be a positive finite number of seconds');
    if (i > 0 && b <= (buckets[i - 1] as number)) invalid(`${at}[${i}]`, 'must be greater than the bucket before it');
  });
  return [...(buckets as number[])];
}

/**
 * Prometheus metrics through `prom-client` (an optional peer dependency, loaded on first use): calls by
 * message and code, stream elements by message and direction, a latency histogram, calls in flight, bytes in and out, open connections, and for a
 * client its pool state per endpoint. Pass the result as `observer` to `createServer`/`createClient`.
 * Observers on one registry share its metrics: a server's and a client's (`side` tells them apart) or
 * two of one side, whose figures add up.
 */
export async function createPrometheusObserver(options: PrometheusObserverOptions = {}): Promise<PrometheusObserver> {
  if (options === null || typeof options !== 'object') invalid('createPrometheusObserver: options', 'must be an object');
  knownOptions('createPrometheusObserver: options', options, KNOWN_PROMETHEUS_OPTIONS);
  const buckets = options.buckets === undefined ? DEFAULT_LATENCY_BUCKETS : checkBuckets(options.buckets);
  let prom: Prom;
  try {
    prom = (await import('prom-client')) as Prom;
  } catch (err) {
    throw new RpcError(Code.FAILED_PRECONDITION, 'createPrometheusObserver needs the prom-client package: npm install prom-client', {
      cause: err,
    });
  }
  const side = options.side ?? 'server';
  const register = (options.register ?? prom.register) as PromRegistry;
  const metrics = metricSet(prom, register, options.prefix ?? 'avrpc_', buckets);
  const source: Source = {
    side,
    callCounts: new Map(),
    latency: new Map(),
    elementCounts: new Map(),
    now: { inFlight: 0, bytesIn: 0, bytesOut: 0, connections: 0 },
    pools: new Set(),
  };
  metrics.sources.push(source);
  const { callCounts, elementCounts, now, pools, latency } = source;
  if (options.pool !== undefined) {
    const pool = options.pool;
    pools.add(() => pool.stats());
    metrics.poolGauges();
  }
  return {
    poolAttached(stats) {
      // An explicit `pool` option already covers the client that reports itself here.
      if (options.pool !== undefined) return undefined;
      metrics.poolGauges();
      pools.add(stats);
      return () => {
        pools.delete(stats);
      };
    },
    register,
    connectionOpened: () => {
      now.connections++;
    },
    connectionClosed: () => {
      now.connections--;
    },
    callStarted: () => {
      now.inFlight++;
    },
    callEnded(message, code, durationMs) {
      if (message !== '(refused)') now.inFlight--;
      let byCode = callCounts.get(message);
      if (byCode === undefined) callCounts.set(message, (byCode = new Array<number>(17).fill(0)));
      byCode[code] = (byCode[code] ?? 0) + 1;
      let record = latency.get(message);
      if (record === undefined) latency.set(message, (record = latencyRecord(buckets)));
      observeLatency(buckets, record, durationMs / 1000);
    },
    streamElement(message, direction) {
      let counts = elementCounts.get(message);
      if (counts === undefined) elementCounts.set(message, (counts = [0, 0]));
      counts[direction === 'sent' ? 0 : 1]++;
    },
    bytesReceived: (n) => {
      now.bytesIn += n;
    },
    bytesSent: (n) => {
      now.bytesOut += n;
    },
  };
}
