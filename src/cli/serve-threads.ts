/**
 * `avrpc serve --threads N`: the command's process is the cluster's primary (it loads no handlers
 * and serves no calls); N worker processes, forked with the same command line, each run the usual
 * `serve` up to `createServer` and hand the server to `serveCluster`, which listens it on the port they
 * share. The primary prints `listening host:port` once every worker listens, serves the summed
 * `/metrics`, registers the one address in etcd, and on SIGTERM/SIGINT deregisters, drains every
 * worker and prints `closed`.
 */
import { createEtcdRegistry } from '../discovery/etcd-registry.js';
import type { Registry, Registration } from '../discovery/registry.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Logger } from '../observability/observer.js';
import { isClusterWorker, serveCluster, shareClusterMetrics } from '../server/cluster.js';
import type { Server } from '../server/server.js';
import { reportFailure, resolveToken } from './options.js';

/** The `serve` flags this file reads. */
export interface ThreadsFlags {
  threads: number;
  host: string;
  port: number;
  grace: number;
  metricsPort?: number;
  registry: 'static' | 'etcd';
  etcdEndpoints: string;
  service?: string;
  serviceVersion: string;
  advertiseHost?: string;
  token?: string;
  tokenFile?: string;
}

/** True when this `serve` process is the primary of `--threads N` (N > 1). */
export function isThreadsPrimary(flags: ThreadsFlags): boolean {
  return flags.threads > 1 && !isClusterWorker();
}

/** True in a worker of `--threads N`: `serve` builds the server, then calls {@link serveThreadsWorker}. */
export const isThreadsWorker = isClusterWorker;

/** In a worker: the metrics of `register` go to the primary's `/metrics` (no endpoint of its own). */
export function shareThreadsMetrics(register: object): undefined {
  shareClusterMetrics(register);
  return undefined;
}

/** In a worker: listens `server` on the shared port; the primary drains it. */
export async function serveThreadsWorker(server: Server, flags: ThreadsFlags): Promise<void> {
  await serveCluster({
    threads: flags.threads,
    listen: { host: flags.host, port: flags.port },
    graceMs: flags.grace,
    start: () => server,
  });
}

/** Worker exits and restarts, on stderr: the primary has nothing else to say. */
const stderrLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: (obj, msg) => void process.stderr.write(`warning: ${msg ?? ''} ${JSON.stringify({ ...obj, err: errText(obj) })}\n`),
  error: (obj, msg) => void process.stderr.write(`error: ${msg ?? ''} ${JSON.stringify({ ...obj, err: errText(obj) })}\n`),
};
const errText = (obj: object): string | undefined => (obj as { err?: { message?: string } }).err?.message;

/** The primary of `--threads N`. */
export async function serveThreadsPrimary(flags: ThreadsFlags): Promise<void> {
  // Fail once, here, rather than in every worker.
  resolveToken(flags);
  if (flags.registry === 'etcd' && flags.service === undefined)
    throw new RpcError(Code.INVALID_ARGUMENT, '--registry etcd needs --service <name>');
  const cluster = await serveCluster({
    threads: flags.threads,
    listen: { host: flags.host, port: flags.port },
    graceMs: flags.grace,
    ...(flags.metricsPort === undefined ? {} : { metrics: { port: flags.metricsPort } }),
    handleSignals: false,
    logger: stderrLogger,
    start: () => {
      throw new RpcError(Code.INTERNAL, 'the primary serves no calls');
    },
  });
  if (cluster.role !== 'primary') throw new RpcError(Code.INTERNAL, '--threads: not the primary');
  let registry: Registry | undefined;
  let registration: Registration | undefined;
  if (flags.registry === 'etcd') {
    registry = createEtcdRegistry({ hosts: flags.etcdEndpoints.split(',') });
    registration = await registry.register({
      name: flags.service!,
      version: flags.serviceVersion,
      host: flags.advertiseHost ?? cluster.host,
      port: cluster.port,
    });
  }
  // As a single-process serve: the metrics line first, `listening` last (scripts wait for it).
  if (cluster.metricsUrl !== undefined) process.stdout.write(`metrics ${cluster.metricsUrl}\n`);
  process.stdout.write(`listening ${cluster.host}:${cluster.port}\n`);
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    // Leave the registry first, so that clients stop choosing this address while it drains.
    void Promise.resolve(registration?.deregister().catch(() => undefined))
      .then(() => cluster.close())
      .finally(() => registry?.close())
      .catch(reportFailure)
      .finally(() => process.stdout.write('closed\n'));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Every worker stopped by itself (each had its own signal): the primary goes too.
  void cluster.closed.then(stop);
}
