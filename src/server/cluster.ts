/**
 * `serveCluster`: a server on every core without cluster code. The primary process forks `threads`
 * workers (node:cluster), each an event loop that runs `start()` and listens on the one port they
 * share; the primary accepts and hands the connections round (node:cluster's round-robin; Node 20 has
 * no `reusePort`), restarts a worker that crashes, serves one aggregated `/metrics`, and on SIGTERM
 * drains every worker before it exits.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { isLogger, silentLogger, type Logger } from '../observability/observer.js';
import { fnOption, intOption, invalid, knownOptions, msOption } from '../util/validate.js';
import { serveClusterMetrics, type MetricsEndpoint } from './cluster-metrics.js';
import { PORT_ENV, WORKER_ENV, runWorker, type ClusterWorker, type ToPrimary, type WorkerSettings } from './cluster-worker.js';
import type { ListenOptions } from './server.js';

export type { ClusterServer, ClusterWorker, ClusterWorkerInfo } from './cluster-worker.js';
export { isClusterWorker } from './cluster-worker.js';
export { shareClusterMetrics } from './cluster-metrics.js';

/** Options of {@link serveCluster}. Pass the same options in every process: the workers run the same script. */
export interface ClusterOptions {
  /** Worker processes (event loops). Default: `os.availableParallelism()`. */
  threads?: number;
  /**
   * Runs in each worker (never in the primary): creates the worker's server, not yet listening
   * (`createServer(...)`); serveCluster listens it on `listen`. Code outside `start` runs in every process.
   */
  start: WorkerSettings['start'];
  /** Where every worker listens: one port for all (port 0: one free port, chosen once). Default 127.0.0.1:0. */
  listen?: Omit<ListenOptions, 'register'>;
  /** Grace each worker's `server.close` gets when the cluster closes, in ms. Default 5000. */
  graceMs?: number;
  /**
   * Serve `/metrics` in the primary on `host:port` (host default 127.0.0.1, port 0 picks one): the sum
   * of every worker's metrics (see {@link shareClusterMetrics}). Needs prom-client. Default none.
   */
  metrics?: { port: number; host?: string };
  /** In the primary, SIGTERM and SIGINT close the cluster, then exit (0, or 1 if a worker failed to drain). Default true. */
  handleSignals?: boolean;
  /** Delay before a crashed worker is replaced, doubling (to 30 s) while replacements fail to start. Default 1000. */
  restartDelayMs?: number;
  /** The primary's pino-compatible logger: workers exiting and restarting, draining. Default silent. */
  logger?: Logger;
}

const KNOWN = {
  threads: true,
  start: true,
  listen: true,
  graceMs: true,
  metrics: true,
  handleSignals: true,
  restartDelayMs: true,
  logger: true,
} as const satisfies Record<keyof ClusterOptions, true>;

/** A worker as the primary sees it. */
export interface ClusterWorkerState {
  readonly index: number;
  /** Its process id; undefined while it is being replaced. */
  readonly pid: number | undefined;
  /** Listening and reported ready. */
  readonly ready: boolean;
}

/** In the primary: the running cluster. */
export interface ClusterPrimary {
  readonly role: 'primary';
  /** The address every worker listens on. */
  readonly host: string;
  readonly port: number;
  readonly threads: number;
  /** The aggregated metrics endpoint, with `metrics`. */
  readonly metricsUrl: string | undefined;
  /** The workers now. */
  workers(): ClusterWorkerState[];
  /** Workers restarted after a crash so far. */
  readonly restarts: number;
  /**
   * Drains every worker (each closes its server with `graceMs`: GOAWAY, running calls finish), kills
   * one still alive `graceMs` + 5 s later, and stops `/metrics`. Rejects (INTERNAL) if a worker had
   * to be killed or exited with a failure; resolves once every worker has exited.
   */
  close(): Promise<void>;
  /** Resolves when the cluster has closed: by `close`, a signal, or every worker stopping by itself. */
  readonly closed: Promise<void>;
}

/** What {@link serveCluster} resolves with: the primary's handle, or in a worker that worker's. */
export type ClusterHandle = ClusterPrimary | ClusterWorker;

/** How long past `graceMs` a draining worker may take before it is killed. */
const KILL_MARGIN_MS = 5000;

/**
 * Runs `threads` event loops serving on one port. In the primary, forks the workers and resolves once
 * every one listens (rejects, stopping the others, if one fails to start: with its error's code); in a
 * worker, runs `start`, listens and resolves with the worker's server. In a worker of another
 * supervisor (PM2's cluster mode), serves one server in this process.
 */
export async function serveCluster(options: ClusterOptions): Promise<ClusterHandle> {
  if (options === null || typeof options !== 'object') invalid('serveCluster: options', 'must be an object');
  knownOptions('serveCluster: options', options, KNOWN);
  const settings: WorkerSettings = {
    threads: intOption('serveCluster: options.threads', options.threads, availableParallelism(), 1, 1024),
    start: fnOption<WorkerSettings['start']>('serveCluster: options.start', options.start, false)!,
    listen: options.listen ?? {},
    graceMs: msOption('serveCluster: options.graceMs', options.graceMs, 5000),
    logger: options.logger ?? silentLogger,
  };
  if (typeof settings.listen !== 'object' || settings.listen === null) invalid('serveCluster: options.listen', 'must be an object');
  if ('register' in settings.listen) invalid('serveCluster: options.listen.register', 'is not for workers: register the primary address');
  if (!isLogger(settings.logger)) invalid('serveCluster: options.logger', 'must have debug, info, warn and error methods');
  const m = options.metrics;
  if (m !== undefined && (m === null || typeof m !== 'object')) invalid('serveCluster: options.metrics', 'must be an object');
  if (m !== undefined) intOption('serveCluster: options.metrics.port', m.port, 0, 0, 65535);
  const restartDelayMs = msOption('serveCluster: options.restartDelayMs', options.restartDelayMs, 1000);
  if (cluster.isWorker) return runWorker(settings);
  return runPrimary(settings, { metrics: m, handleSignals: options.handleSignals ?? true, restartDelayMs });
}

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  ready: boolean;
  /** Stopped by its own signal: not replaced. */
  leaving: boolean;
  failure: RpcError | undefined;
  delayMs: number;
  timer: NodeJS.Timeout | undefined;
}

async function runPrimary(
  s: WorkerSettings,
  o: { metrics: ClusterOptions['metrics']; handleSignals: boolean; restartDelayMs: number },
): Promise<ClusterPrimary> {
  const log = s.logger;
  const slots: Slot[] = Array.from({ length: s.threads }, (_, index) => ({
    index,
    worker: undefined,
    ready: false,
    leaving: false,
    failure: undefined,
    delayMs: o.restartDelayMs,
    timer: undefined,
  }));
  let bound: { host: string; port: number } | undefined;
  let metrics: MetricsEndpoint | undefined;
  let closing: Promise<void> | undefined;
  let restarts = 0;
  /** Startup: settled when every worker is ready, or by the first that fails. */
  let startup: { resolve: () => void; reject: (e: RpcError) => void } | undefined;
  let afterExit: (() => void) | undefined;
  let unclean: string | undefined;
  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));

  const spawn = (slot: Slot): void => {
    slot.timer = undefined;
    slot.ready = false;
    slot.leaving = false;
    slot.failure = undefined;
    // The primary keeps one listening socket per address asked for (port 0 included) while a worker
    // listens on it: a replacement asks for the same, or for the bound port once no worker is left.
    const alone = bound !== undefined && !slots.some((x) => x.ready);
    const w = cluster.fork({ [WORKER_ENV]: String(slot.index), ...(alone ? { [PORT_ENV]: String(bound!.port) } : {}) });
    slot.worker = w;
    w.on('message', (msg: ToPrimary) => onMessage(slot, w, msg));
    w.on('exit', (code: number | null, signal: string | null) => onExit(slot, w, code, signal));
  };
  const onMessage = (slot: Slot, w: Worker, msg: ToPrimary): void => {
    if (msg?.avrpc === 'ready') {
      slot.ready = true;
      slot.delayMs = o.restartDelayMs;
      if (bound !== undefined && msg.port !== bound.port) {
        log.error({ worker: slot.index, port: msg.port }, 'worker listens on another port');
        w.process.kill('SIGKILL');
      } else if (startup === undefined) log.info({ worker: slot.index, pid: w.process.pid }, 'worker restarted');
      bound ??= { host: msg.host, port: msg.port };
      if (startup !== undefined && slots.every((x) => x.ready)) startup.resolve();
    } else if (msg?.avrpc === 'failed') slot.failure = new RpcError(msg.code, `worker ${slot.index}: ${msg.message}`);
    else if (msg?.avrpc === 'leaving') slot.leaving = true;
    else if (msg?.avrpc === 'metrics') metrics?.answer(w, msg);
  };
  const onExit = (slot: Slot, w: Worker, code: number | null, signal: string | null): void => {
    if (slot.worker !== w) return;
    const wasReady = slot.ready;
    slot.worker = undefined;
    slot.ready = false;
    metrics?.gone(w);
    const how = signal ?? `code ${code}`;
    if (startup !== undefined) {
      startup.reject(slot.failure ?? new RpcError(Code.INTERNAL, `worker ${slot.index} exited (${how}) before listening`));
    } else if (closing !== undefined) {
      if (code !== 0) unclean ??= `worker ${slot.index} exited (${how}) while draining`;
    } else if (!slot.leaving) {
      log.warn({ worker: slot.index, pid: w.process.pid, exit: how, err: slot.failure }, 'worker exited; restarting');
      if (!wasReady) slot.delayMs = Math.min(slot.delayMs * 2, 30_000);
      restarts++;
      slot.timer = setTimeout(() => spawn(slot), wasReady ? o.restartDelayMs : slot.delayMs);
    }
    afterExit?.();
    // Every worker stopped by itself (each got its own SIGTERM): the cluster is over.
    if (closing === undefined && startup === undefined && slots.every((x) => x.worker === undefined && x.timer === undefined))
      void close().catch(() => undefined);
  };

  const close = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      log.info({ workers: slots.filter((x) => x.worker !== undefined).length }, 'cluster draining');
      for (const slot of slots) {
        clearTimeout(slot.timer);
        slot.timer = undefined;
        if (slot.worker?.isConnected()) slot.worker.send({ avrpc: 'close' });
        else slot.worker?.process.kill('SIGKILL');
      }
      const killer = setTimeout(() => {
        for (const slot of slots) {
          if (slot.worker === undefined) continue;
          unclean ??= `worker ${slot.index} did not drain within ${s.graceMs + KILL_MARGIN_MS} ms (killed)`;
          slot.worker.process.kill('SIGKILL');
        }
      }, s.graceMs + KILL_MARGIN_MS);
      afterExit = () => {
        if (slots.some((x) => x.worker !== undefined)) return;
        clearTimeout(killer);
        afterExit = undefined;
        resolve();
      };
      afterExit();
    })
      .then(() => metrics?.close())
      .finally(() => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        markClosed();
      })
      .then(() => {
        if (unclean !== undefined) throw new RpcError(Code.INTERNAL, `cluster closed: ${unclean}`);
      }));
  const onSignal = (): void => {
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'cluster close failed');
        process.exit(1);
      },
    );
  };
  if (o.handleSignals) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }

  try {
    await new Promise<void>((resolve, reject) => {
      startup = { resolve, reject };
      for (const slot of slots) spawn(slot);
    });
    startup = undefined;
    if (o.metrics !== undefined) metrics = await serveClusterMetrics(o.metrics.host ?? '127.0.0.1', o.metrics.port, readyWorkers);
  } catch (err) {
    startup = undefined;
    // Workers still starting close once started; one that hangs in `start` is killed after the grace.
    await close().catch(() => undefined);
    throw RpcError.from(err);
  }
  function readyWorkers(): Worker[] {
    return slots.flatMap((x) => (x.ready && x.worker !== undefined ? [x.worker] : []));
  }
  log.info({ host: bound!.host, port: bound!.port, threads: s.threads, metrics: metrics?.url }, 'cluster listening');
  return {
    role: 'primary',
    host: bound!.host,
    port: bound!.port,
    threads: s.threads,
    metricsUrl: metrics?.url,
    workers: () => slots.map((x) => ({ index: x.index, pid: x.worker?.process.pid, ready: x.ready })),
    get restarts() {
      return restarts;
    },
    close,
    closed,
  };
}
