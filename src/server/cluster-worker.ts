/**
 * The worker side of `serveCluster`: each worker process starts the user's server, listens on the port
 * the workers share (node:cluster hands the accepted sockets round), tells the primary, and drains on
 * the primary's word, on its own SIGTERM/SIGINT, or when the primary is gone.
 */
import cluster from 'node:cluster';
import { RpcError } from '../errors/rpc-error.js';
import type { Code } from '../errors/code.js';
import type { Logger } from '../observability/observer.js';
import { answerMetrics } from './cluster-metrics.js';
import type { ListenOptions, Server } from './server.js';

/** Set in the environment of the workers `serveCluster` forks: the worker's index, 0 to threads-1. */
export const WORKER_ENV = 'AVRPC_CLUSTER_WORKER';
/**
 * The port a replacement worker listens on: the primary keeps the shared socket only while a worker
 * listens, so one forked after a crash of all of them must ask for the bound port, not port 0 again.
 */
export const PORT_ENV = 'AVRPC_CLUSTER_PORT';

/** The server a worker's `start` returns: a Server, or anything that listens and closes like one. */
export type ClusterServer = Pick<Server, 'listen' | 'close'>;

/** What `start` learns about the worker it runs in. */
export interface ClusterWorkerInfo {
  /** 0 to threads-1; a worker restarted after a crash keeps the index of the one it replaces. */
  readonly index: number;
  /** Workers in the cluster. */
  readonly threads: number;
}

/** In a worker: its server, bound. */
export interface ClusterWorker {
  readonly role: 'worker';
  readonly index: number;
  readonly server: ClusterServer;
  readonly host: string;
  readonly port: number;
}

/** Options both sides read (resolved by cluster.ts). */
export interface WorkerSettings {
  threads: number;
  listen: Omit<ListenOptions, 'register'>;
  graceMs: number;
  start: (worker: ClusterWorkerInfo) => ClusterServer | Promise<ClusterServer>;
  logger: Logger;
}

/** Messages from a worker to the primary. */
export type ToPrimary =
  | { avrpc: 'ready'; host: string; port: number }
  | { avrpc: 'failed'; code: Code; message: string }
  | { avrpc: 'leaving' }
  | { avrpc: 'metrics'; id: number; metrics?: object[]; error?: string };

/** Messages from the primary to a worker. */
export type ToWorker = { avrpc: 'close' } | { avrpc: 'metrics'; id: number };

/** True in a worker process forked by `serveCluster` (not in a worker of another supervisor, such as PM2). */
export function isClusterWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] !== undefined;
}

/**
 * Runs the worker side. Outside a worker of ours (a worker of another cluster supervisor) this is a
 * single server in this process, closed by SIGTERM/SIGINT the same way.
 */
export async function runWorker(settings: WorkerSettings): Promise<ClusterWorker> {
  const ours = isClusterWorker();
  const index = ours ? Number(process.env[WORKER_ENV]) : 0;
  const send = (m: ToPrimary, then?: () => void): void => {
    if (ours && process.connected) process.send!(m, undefined, {}, () => then?.());
    else then?.();
  };
  let server: ClusterServer | undefined;
  const started = (async () => {
    server = await settings.start({ index, threads: ours ? settings.threads : 1 });
    const port = process.env[PORT_ENV] === undefined ? settings.listen.port : Number(process.env[PORT_ENV]);
    return server.listen({ ...settings.listen, ...(port === undefined ? {} : { port }) });
  })();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= started
      .then(() => server!.close({ graceMs: settings.graceMs }))
      .then(
        () => leave(0),
        (err: unknown) => {
          settings.logger.error({ err: RpcError.from(err), worker: index }, 'worker close failed');
          leave(1);
        },
      ));
  const onSignal = (): void => {
    // Stopped by itself (a signal to this process alone, or to the whole group): gone for good, not restarted.
    send({ avrpc: 'leaving' });
    void close();
  };
  const leave = (code: number): void => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.exitCode = code;
    if (ours && process.connected) process.disconnect();
    // Exit even if the user's code holds the loop open (a timer, a client): this worker was asked to go.
    setTimeout(() => process.exit(), 1000).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  if (ours) {
    process.on('message', (m: ToWorker) => {
      if (m?.avrpc === 'close') void close();
      else if (m?.avrpc === 'metrics') void answerMetrics(m.id).then((reply) => send(reply));
    });
    // The primary is gone (killed): an orphan would serve on with no one to stop it.
    process.on('disconnect', () => void close());
  }

  let bound: { host: string; port: number };
  try {
    bound = await started;
  } catch (err) {
    const e = RpcError.from(err);
    if (!ours) throw e;
    // The primary reports the failure (serveCluster rejects there); this process only has to go.
    send({ avrpc: 'failed', code: e.code, message: e.message }, () => process.exit(1));
    return new Promise<never>(() => undefined);
  }
  if (closing === undefined) send({ avrpc: 'ready', ...bound });
  return { role: 'worker', index, server: server!, ...bound };
}
