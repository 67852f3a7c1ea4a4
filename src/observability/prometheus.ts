import { Code, codeName } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { PoolStat, RpcObserver } from './observer.js';

/** Options of {@link createPrometheusObserver}. */
export interface PrometheusObserverOptions {
  /** Label value distinguishing server and client metrics in one process. Default `'server'`. */
  side?: 'server' | 'client';
  /** prom-client Registry to register into. Default: prom-client's global registry. */
  register?: unknown;
  /** Metric name prefix. Default `'avrpc_'`. */
  prefix?: string;
  /**
   * A client whose pool state (per endpoint) is exported as gauges, read at scrape time. Not needed
   * when this observer is the client's `observer`: `createClient` attaches its pool by itself.
   */
  pool?: { stats(): readonly PoolStat[] };
}

/** An observer that records Prometheus metrics, and the registry holding them. */
export interface PrometheusObserver extends RpcObserver {
  /** The prom-client Registry; serve `await register.metrics()` at `/metrics`. */
  readonly register: { metrics(): Promise<string>; contentType: string };
}

/**
 * Prometheus metrics through `prom-client` (an optional peer dependency, loaded on first use): calls by
 * message and code, a latency histogram, calls in flight, bytes in and out, open connections, and for a
 * client its pool state per endpoint. Pass the result as `observer` to `createServer`/`createClient`.
 */
export async function createPrometheusObserver(options: PrometheusObserverOptions = {}): Promise<PrometheusObserver> {
  type Prom = typeof import('prom-client');
  let prom: Prom;
  try {
    prom = (await import('prom-client')) as Prom;
  } catch (err) {
    throw new RpcError(Code.FAILED_PRECONDITION, 'createPrometheusObserver needs the prom-client package: npm install prom-client', { cause: err });
  }
  const side = options.side ?? 'server';
  const prefix = options.prefix ?? 'avrpc_';
  const register = (options.register ?? prom.register) as InstanceType<Prom['Registry']>;
  const registers = [register];
  const labels = { side };
  // Calls per message, per code: counted here, handed to prom-client at scrape time.
  const callCounts = new Map<string, number[]>();
  new prom.Counter({
    name: `${prefix}calls_total`, help: 'Calls by message and status code', labelNames: ['side', 'message', 'code'], registers,
    collect() {
      this.reset();
      for (const [message, byCode] of callCounts) {
        byCode.forEach((n, code) => { if (n > 0) this.inc({ side, message, code: codeName(code as Code) }, n); });
      }
    },
  });
  const latency = new prom.Histogram({
    name: `${prefix}call_duration_seconds`, help: 'Call latency', labelNames: ['side', 'message'], registers,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  // Unlabelled figures are plain numbers, copied into prom-client at scrape time: a per-call
  // `inc(labels)` would hash the labels each time, on the hot path.
  const now = { inFlight: 0, bytesIn: 0, bytesOut: 0, connections: 0 };
  new prom.Gauge({ name: `${prefix}calls_in_flight`, help: 'Calls in flight', labelNames: ['side'], registers, collect() { this.set(labels, now.inFlight); } });
  const total = (name: string, help: string, read: () => number) => new prom.Counter({
    name: `${prefix}${name}`, help, labelNames: ['side'], registers,
    collect() {
      this.reset();
      this.inc(labels, read());
    },
  });
  total('bytes_received_total', 'Bytes read from sockets', () => now.bytesIn);
  total('bytes_sent_total', 'Bytes written to sockets', () => now.bytesOut);
  new prom.Gauge({ name: `${prefix}connections`, help: 'Open connections', labelNames: ['side'], registers, collect() { this.set(labels, now.connections); } });
  // Pools reported on, read at scrape time; clients sharing this observer add up per endpoint.
  const pools = new Set<() => readonly PoolStat[]>();
  if (options.pool !== undefined) {
    const pool = options.pool;
    pools.add(() => pool.stats());
  }
  let poolGauges = false;
  // Registered with the first pool, so a server's registry carries no empty pool metrics.
  const registerPoolGauges = (): void => {
    if (poolGauges) return;
    poolGauges = true;
    const poolGauge = (name: string, help: string, pick: (s: PoolStat) => number) => new prom.Gauge({
      name: `${prefix}pool_${name}`, help, labelNames: ['endpoint'], registers,
      collect() {
        this.reset();
        const totals = new Map<string, number>();
        for (const stats of pools) for (const s of stats()) totals.set(s.endpoint, (totals.get(s.endpoint) ?? 0) + pick(s));
        for (const [endpoint, value] of totals) this.set({ endpoint }, value);
      },
    });
    poolGauge('connections', 'Sockets open or opening per endpoint', (s) => s.connections);
    poolGauge('ready_connections', 'Ready sockets per endpoint', (s) => s.ready);
    poolGauge('in_flight', 'Calls in flight per endpoint', (s) => s.inFlight);
    poolGauge('ejected', '1 while the endpoint is ejected by outlier detection', (s) => (s.ejected ? 1 : 0));
  };
  if (pools.size > 0) registerPoolGauges();
  return {
    poolAttached(stats) {
      // An explicit `pool` option already covers the client that reports itself here.
      if (options.pool !== undefined) return undefined;
      registerPoolGauges();
      pools.add(stats);
      return () => { pools.delete(stats); };
    },
    register,
    connectionOpened: () => { now.connections++; },
    connectionClosed: () => { now.connections--; },
    callStarted: () => { now.inFlight++; },
    callEnded(message, code, durationMs) {
      if (message !== '(refused)') now.inFlight--;
      let byCode = callCounts.get(message);
      if (byCode === undefined) callCounts.set(message, (byCode = new Array<number>(17).fill(0)));
      byCode[code] = (byCode[code] ?? 0) + 1;
      latency.observe({ side, message }, durationMs / 1000);
    },
    bytesReceived: (n) => { now.bytesIn += n; },
    bytesSent: (n) => { now.bytesOut += n; },
  };
}
