/**
 * One run of an issue 10 stream benchmark: a fresh server process (bench/stream-server-child.ts) and a
 * fresh client process (bench/stream-client-child.ts) on loopback, the parent passing the client's
 * window edges to the server, then the elements/s and CPU per element of each side over the window.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { CpuPerCall } from './report.js';
import type { StreamJob, StreamResult, StreamSystem } from './stream-client-child.js';
import { maxLead, summarize, type MemorySummary } from './stream-memory.js';
import type { ServerWindow } from './stream-server-child.js';

export type { StreamSystem } from './stream-client-child.js';

/** One stream scenario: which kind of unit, its size, and which systems run it. */
export interface StreamScenario {
  id: 'stream' | 'bidi-64' | 'slow-consumer';
  /** Each system's key in BENCH_ONLY is `${id}/${label}`. */
  systems: { label: string; system: StreamSystem; kind: StreamJob['kind'] }[];
  elements: number;
  inFlight: number;
  sleepMs: number;
  blobBytes: number;
}

/** What one run gave. */
export interface StreamRun {
  elements: number;
  seconds: number;
  elementsPerSec: number;
  /** CPU of each side over the window divided by the elements (or calls) completed in it, in µs. */
  cpuUsPerElement: CpuPerCall;
  /** `slow` only: memory of each side, and how far the producer ran ahead of the consumer. */
  slow?: { client: MemorySummary; server: MemorySummary; maxLead: number; produced: number };
}

/** How long a run lasts and how its children start. */
export interface StreamRunSettings {
  warmupSeconds: number;
  seconds: number;
  execArgv: string[];
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

async function ask<T>(child: ChildProcess, message: string): Promise<T> {
  const reply = once(child, 'message');
  child.send(message);
  return ((await reply) as [T])[0];
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.send('stop');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Runs `system` of scenario `s` once. */
export async function runStreamOnce(
  s: StreamScenario,
  which: StreamScenario['systems'][number],
  settings: StreamRunSettings,
): Promise<StreamRun> {
  const sampling = which.kind === 'slow';
  const { warmupSeconds, seconds } = settings;
  // The samplers collect garbage before each reading (bench/stream-memory.ts).
  const execArgv = sampling ? [...settings.execArgv, '--expose-gc'] : settings.execArgv;
  const args = [which.system, String(s.blobBytes), ...(sampling ? ['sample'] : [])];
  const server = fork(here('./stream-server-child.js'), args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const [{ port }] = (await once(server, 'message')) as [{ port: number }];
    const job: StreamJob = {
      kind: which.kind,
      system: which.system,
      port,
      elements: s.elements,
      inFlight: s.inFlight,
      sleepMs: s.sleepMs,
      blobBytes: s.blobBytes,
      warmupMs: warmupSeconds * 1000,
      measureMs: seconds * 1000,
    };
    const client = fork(here('./stream-client-child.js'), [JSON.stringify(job)], {
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const timer = setTimeout(() => client.kill('SIGKILL'), (warmupSeconds + seconds) * 1000 + 300_000);
    let window: Promise<ServerWindow> | undefined;
    const got = new Promise<StreamResult>((resolve, reject) => {
      client.on('message', (m: StreamResult | { edge: 'start' | 'end' }) => {
        if (!('edge' in m)) resolve(m);
        // The server opens its window before the client sends its first request of the window.
        else if (m.edge === 'start') void ask(server, 'window-start').then(() => client.send('go'));
        else window = ask<ServerWindow>(server, 'window-end');
      });
      client.once('exit', (code) => {
        if (code !== 0) reject(new Error(`stream client process exited with ${code}`));
      });
    });
    const exited = once(client, 'exit');
    const [result] = await Promise.all([got, exited]).finally(() => clearTimeout(timer));
    if (window === undefined) throw new Error('the stream client sent no window end');
    const w = await window;
    const n = Math.max(1, result.elements);
    const cpu = { client: result.cpuUs / n, server: w.cpuUs / n, total: (result.cpuUs + w.cpuUs) / n };
    const run: StreamRun = {
      elements: result.elements,
      seconds: result.seconds,
      elementsPerSec: result.elements / result.seconds,
      cpuUsPerElement: cpu,
    };
    if (sampling && result.memory.length > 0 && w.memory.length > 0)
      run.slow = {
        client: summarize(result.memory),
        server: summarize(w.memory),
        maxLead: maxLead(w.producedAtUs, result.consumedAtUs),
        produced: w.producedAtUs.length,
      };
    return run;
  } finally {
    await stop(server);
  }
}
