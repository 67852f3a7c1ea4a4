/**
 * One metrics view of a cluster: the primary serves `/metrics`, asking every ready worker for its
 * prom-client registries' metrics (as JSON, over the cluster's IPC channel) and adding them up with
 * prom-client's `AggregatorRegistry.aggregate` (counters and histograms sum; each metric's
 * `aggregator` decides). prom-client's own `clusterMetrics()` asks every worker, also one still
 * starting that would not answer: this asks only the ready ones.
 */
import type { Worker } from 'node:cluster';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { ToPrimary, ToWorker } from './cluster-worker.js';

type Prom = typeof import('prom-client');

/** A registry whose metrics a worker shares with the primary's view. */
interface MetricsRegistry {
  getMetricsAsJSON(): Promise<object[]>;
}

/** The registries a worker shares; prom-client's global registry when none was given. */
const shared = new Set<MetricsRegistry>();

/**
 * In a cluster worker: adds `register` (a prom-client Registry, such as a Prometheus observer's
 * `register`) to the metrics the primary's `/metrics` aggregates. Without a call, a worker shares
 * prom-client's global registry, where `createPrometheusObserver` and `collectDefaultMetrics` register
 * by default. Throws INVALID_ARGUMENT for something that is not a registry.
 */
export function shareClusterMetrics(register: object): void {
  if (typeof (register as Partial<MetricsRegistry>).getMetricsAsJSON !== 'function')
    throw new RpcError(Code.INVALID_ARGUMENT, 'shareClusterMetrics: register must be a prom-client Registry');
  shared.add(register as MetricsRegistry);
}

async function loadProm(): Promise<Prom> {
  try {
    return (await import('prom-client')) as Prom;
  } catch (err) {
    throw new RpcError(Code.FAILED_PRECONDITION, 'cluster metrics need the prom-client package: npm install prom-client', { cause: err });
  }
}

/** Worker side: this worker's metrics, or why it has none. */
export async function answerMetrics(id: number): Promise<ToPrimary> {
  try {
    const registries = shared.size > 0 ? [...shared] : [(await loadProm()).register];
    return { avrpc: 'metrics', id, metrics: await Promise.all(registries.map((r) => r.getMetricsAsJSON())) };
  } catch (err) {
    return { avrpc: 'metrics', id, error: RpcError.from(err).message };
  }
}

/** The primary's metrics endpoint. */
export interface MetricsEndpoint {
  readonly url: string;
  /** Routes a worker's `metrics` answer to the scrape waiting for it. */
  answer(worker: Worker, message: Extract<ToPrimary, { avrpc: 'metrics' }>): void;
  /** A worker exited: scrapes stop waiting for it. */
  gone(worker: Worker): void;
  close(): Promise<void>;
}

/** How long a scrape waits for the workers (a worker busy in a handler answers when it is done). */
const SCRAPE_TIMEOUT_MS = 5000;

/**
 * Serves `/metrics` on `host:port` in the primary, aggregating the answers of `workers()` (the ready
 * ones). A scrape that some worker does not answer within 5 s fails with 503: a partial sum would look
 * like counters going down.
 */
export async function serveClusterMetrics(host: string, port: number, workers: () => Worker[]): Promise<MetricsEndpoint> {
  const prom = await loadProm();
  let nextId = 0;
  const pending = new Map<number, { waiting: Set<Worker>; got: object[]; done: (err?: Error) => void }>();

  const collect = (): Promise<string> =>
    new Promise<object[]>((resolve, reject) => {
      const id = nextId++;
      const targets = workers().filter((w) => w.isConnected());
      const scrape = { waiting: new Set(targets), got: [] as object[], done: (_err?: Error) => {} };
      const timer = setTimeout(() => scrape.done(new Error(`${scrape.waiting.size} worker(s) did not answer in time`)), SCRAPE_TIMEOUT_MS);
      scrape.done = (err) => {
        clearTimeout(timer);
        pending.delete(id);
        if (err === undefined) resolve(scrape.got);
        else reject(err);
      };
      pending.set(id, scrape);
      if (targets.length === 0) return scrape.done();
      for (const w of targets) w.send({ avrpc: 'metrics', id } satisfies ToWorker);
    }).then((all) => prom.AggregatorRegistry.aggregate(all).metrics());

  const http: HttpServer = createHttpServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end('not found\n');
    collect().then(
      (text) => res.writeHead(200, { 'content-type': prom.register.contentType }).end(text),
      (err: unknown) => res.writeHead(503).end(`${RpcError.from(err).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', (err) => reject(RpcError.from(err)));
    http.listen(port, host, () => resolve());
  });
  const addr = http.address() as { address: string; port: number };
  return {
    url: `http://${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}/metrics`,
    answer(worker, m) {
      const scrape = pending.get(m.id);
      if (scrape === undefined || !scrape.waiting.delete(worker)) return;
      if (m.error !== undefined) return scrape.done(new Error(`worker metrics: ${m.error}`));
      scrape.got.push(...(m.metrics ?? []));
      if (scrape.waiting.size === 0) scrape.done();
    },
    gone(worker) {
      for (const scrape of [...pending.values()]) if (scrape.waiting.delete(worker) && scrape.waiting.size === 0) scrape.done();
    },
    close: () => new Promise<void>((resolve) => http.close(() => resolve())),
  };
}
