/**
 * Test helper: a pool-protocol server in its own process (fork), for tests that kill, stop and
 * restart servers for real. Run as a script (`--serve`) it is the server; imported, it starts and
 * manages such processes.
 *
 * The child listens on 127.0.0.1 (port 0 or the given one), optionally registers in etcd, reports its
 * port over IPC, answers `read`/`write` with its name after `delayMs`, busy-loops for `spin`, and
 * closes gracefully on SIGTERM (GOAWAY, in-flight calls finish) before exiting 0.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer } from '../../src/server/server.js';
import { createEtcdRegistry } from '../../src/discovery/index.js';
import { busyLoop, poolProtocol } from './pool-fixture.js';

/** How a server process is configured. */
export interface ServerProcessOptions {
  /** Port to listen on; 0 picks one. Default 0. */
  port?: number;
  keepaliveMs?: number;
  keepaliveTimeoutMs?: number;
  /** Delay added to every read/write, in ms. Default 0. */
  delayMs?: number;
  /** Grace period of the SIGTERM close, in ms. Default 3000. */
  graceMs?: number;
  /** Register under service `pool` in this etcd (client URL), with this lease TTL in seconds. */
  etcd?: { endpoint: string; prefix: string; ttlSec: number };
}

/** A running server process. */
export interface ServerProcess {
  readonly name: string;
  readonly port: number;
  readonly endpoint: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<unknown>;
  /** SIGTERM (graceful close) and wait for the exit. */
  stop(): Promise<void>;
  /** Kill with a signal (SIGKILL by default) and wait for the exit; SIGCONT first if it was stopped. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const self = fileURLToPath(import.meta.url);

/** Forks a server process and waits until it listens. */
export async function spawnServer(name: string, options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const child = fork(self, ['--serve', name, JSON.stringify(options)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = once(child, 'exit');
  const failed = exited.then(([code, signal]) => {
    throw new Error(`server ${name} exited (${String(code ?? signal)}) before listening`);
  });
  const [msg] = (await Promise.race([once(child, 'message'), failed])) as [{ port: number }];
  child.disconnect(); // the IPC channel would keep both processes' loops alive
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  return {
    name,
    port: msg.port,
    endpoint: `127.0.0.1:${msg.port}`,
    child,
    exited,
    async stop() {
      if (!gone()) child.kill('SIGTERM');
      await exited;
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (gone()) return;
      child.kill('SIGCONT');
      child.kill(signal);
      await exited;
    },
  };
}

/** Child mode. */
async function serve(name: string, options: ServerProcessOptions): Promise<void> {
  const handler = async (req: { delayMs: number }): Promise<string> => {
    const ms = (req.delayMs ?? 0) + (options.delayMs ?? 0);
    if (ms > 0) await sleep(ms);
    return name;
  };
  const server = createServer({
    protocol: poolProtocol(),
    handlers: {
      read: handler,
      write: handler,
      spin: (req: { ms: number }) => {
        busyLoop(req.ms);
        return name;
      },
    },
    ...(options.keepaliveMs === undefined ? {} : { keepaliveMs: options.keepaliveMs }),
    ...(options.keepaliveTimeoutMs === undefined ? {} : { keepaliveTimeoutMs: options.keepaliveTimeoutMs }),
  });
  const e = options.etcd;
  const registry = e === undefined ? undefined : createEtcdRegistry({ hosts: e.endpoint, prefix: e.prefix, ttlSec: e.ttlSec });
  const bound = await server.listen({
    port: options.port ?? 0,
    ...(registry === undefined ? {} : { register: { registry, name: 'pool', version: '1.0.0' } }),
  });
  process.once('SIGTERM', () => {
    void server
      .close({ graceMs: options.graceMs ?? 3000 })
      .then(() => registry?.close())
      .then(() => process.exit(0));
  });
  process.send!({ port: bound.port });
}

if (process.argv[2] === '--serve') await serve(process.argv[3]!, JSON.parse(process.argv[4]!) as ServerProcessOptions);
