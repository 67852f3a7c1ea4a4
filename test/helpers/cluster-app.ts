/**
 * Test helper: an app serving the pool protocol with `serveCluster`, run as a real process (the
 * primary), which forks its workers from this same file. `read`/`write` answer the worker's pid (after
 * `delayMs`; a worker prints `{ running: pid }` as such a call starts), `spin` busy-loops. The primary prints one JSON line per event on stdout: `{ ready:
 * { port, metricsUrl, pids } }` once listening, then the primary's log lines (`{ level, msg, ... }`),
 * `{ failed: { code, message } }` if serveCluster rejected.
 *
 * Imported, {@link startClusterApp} runs it and reads those lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { serveCluster, type ClusterHandle } from '../../src/server/cluster.js';
import { createServer } from '../../src/server/server.js';
import { createPrometheusObserver } from '../../src/observability/prometheus.js';
import type { Logger } from '../../src/observability/observer.js';
import { busyLoop, poolProtocol } from './pool-fixture.js';

/** How the app runs (passed as JSON in argv, so that the workers read the same). */
export interface ClusterAppOptions {
  threads: number;
  graceMs?: number;
  metrics?: boolean;
  /** `start` throws in the worker of this index. */
  failWorker?: number;
  restartDelayMs?: number;
}

/** A running app. */
export interface ClusterApp {
  readonly child: ChildProcess;
  /** The next event line (JSON) not yet taken; rejects if the app exits first. */
  next(): Promise<Record<string, unknown>>;
  /** Waits for an event line with this key (skipping others) and returns its value. */
  waitFor(key: string): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
  output(): string;
}

const self = fileURLToPath(import.meta.url);

/** Starts the app's primary (stdout piped for the event lines; killed after 60 s so a hang fails). */
export function startClusterApp(options: ClusterAppOptions): ClusterApp {
  const child = spawn(process.execPath, [self, '--app', JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let taken = 0;
  let wake: (() => void) | undefined;
  child.stdout!.on('data', (d: Buffer) => {
    out += d;
    wake?.();
  });
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  // A test that failed halfway leaves no app behind (its workers follow the primary out).
  const reap = (): void => void child.kill('SIGKILL');
  process.on('exit', reap);
  let finished = false;
  const exited = once(child, 'exit').then(([code, signal]) => {
    clearTimeout(timer);
    process.off('exit', reap);
    finished = true;
    wake?.();
    return (code ?? signal) as number | string;
  });
  const next = async (): Promise<Record<string, unknown>> => {
    for (;;) {
      const lines = out.split('\n');
      if (lines.length - 1 > taken) return JSON.parse(lines[taken++]!) as Record<string, unknown>;
      if (finished) throw new Error(`app exited: stdout ${out} stderr ${err}`);
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  return {
    child,
    next,
    async waitFor(key) {
      for (;;) {
        const line = await next();
        if (key in line) return line[key] as Record<string, unknown>;
      }
    },
    exited,
    output: () => `stdout ${out}\nstderr ${err}`,
  };
}

/** Resolves once no process has `pid` (checked every 50 ms; the caller's test bounds the wait). */
export async function processGone(pid: number): Promise<void> {
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(50);
  }
}

const line = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
const logger: Logger = {
  debug: () => undefined,
  info: (obj, msg) => line({ level: 'info', msg, ...obj }),
  warn: (obj, msg) => line({ level: 'warn', msg, ...obj, err: (obj as { err?: Error }).err?.message }),
  error: (obj, msg) => line({ level: 'error', msg, ...obj, err: undefined }),
};

async function app(options: ClusterAppOptions): Promise<void> {
  const handler = async (req: { delayMs: number }): Promise<string> => {
    if (req.delayMs > 0) {
      line({ running: process.pid });
      await sleep(req.delayMs);
    }
    return String(process.pid);
  };
  let handle: ClusterHandle;
  try {
    handle = await serveCluster({
      threads: options.threads,
      ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
      ...(options.restartDelayMs === undefined ? {} : { restartDelayMs: options.restartDelayMs }),
      ...(options.metrics === true ? { metrics: { port: 0 } } : {}),
      logger,
      start: async ({ index }) => {
        if (index === options.failWorker) throw new Error(`worker ${index} cannot start`);
        return createServer({
          protocol: poolProtocol(),
          handlers: {
            read: handler,
            write: handler,
            spin: (req: { ms: number }) => {
              busyLoop(req.ms);
              return String(process.pid);
            },
          },
          // prom-client's global registry: what the primary's view aggregates by default.
          ...(options.metrics === true ? { observer: await createPrometheusObserver() } : {}),
        });
      },
    });
  } catch (err) {
    const e = err as { code: number; message: string };
    line({ failed: { code: e.code, message: e.message } });
    process.exitCode = 1;
    return;
  }
  if (handle.role === 'primary')
    line({ ready: { port: handle.port, metricsUrl: handle.metricsUrl, pids: handle.workers().map((w) => w.pid) } });
}

if (process.argv[2] === '--app') await app(JSON.parse(process.argv[3]!) as ClusterAppOptions);
