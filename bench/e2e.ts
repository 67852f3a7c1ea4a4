/**
 * One end-to-end run: fresh server process(es) and a fresh client process on loopback
 * (bench/server-child.ts, bench/client-child.ts), the load's figures, and the CPU per call of each side
 * over the client's measured window. Every wait is bounded: a server that does not start, or a client
 * that does not finish, fails the run instead of hanging the bench.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BalancerName } from '../src/index.js';
import type { ClientJob, ClientResult, EdgeMessage } from './client-child.js';
import type { LoadResult } from './load.js';
import { isPeerId } from './peers/index.js';
import type { CpuPerCall, System } from './report.js';
import type { ServerReady, ServerStats } from './server-child.js';

/** One end-to-end scenario: which systems run it, how many servers (with handler delays), the load. */
export interface Scenario {
  id: string;
  title: string;
  systems: System[];
  inFlight: number;
  /** Handler delay of each server process, in ms; one entry per server. */
  serverDelaysMs: number[];
  balancer?: BalancerName;
  withDeadlineAndMetadata?: boolean;
}

/** How long a run lasts and how its children start. */
export interface RunSettings {
  warmupSeconds: number;
  seconds: number;
  /** Node flags for the children (profiling, tracing). */
  execArgv: string[];
  /** How long a server process may take to listen (a peer may generate code or start a broker first); default 60 s. */
  startTimeoutMs?: number;
}

/** What one run gave. */
export interface RunResult {
  result: LoadResult;
  /** What the system calls itself, from its client process. */
  label: string;
  description: string;
  /** Calls each server handled, when there are several (avrpc only); empty otherwise. */
  callsPerServer: number[];
  /** CPU of each side over the measured window, divided by the calls the client completed in it. */
  cpuUsPerCall: CpuPerCall;
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/**
 * Why `system` cannot run here, or undefined when it can: a peer whose compiled module
 * (`<dir>/<id>.js`, by default dist/bench/peers/) is not there is skipped rather than failing the bench.
 */
export function missingReason(system: System, dir = here('./peers/')): string | undefined {
  if (!isPeerId(system)) return undefined;
  return existsSync(`${dir}/${system}.js`) ? undefined : `module bench/peers/${system}.js not built`;
}

/** A server process that did not get to listen: its system is not retried in later rounds. */
export class ServerStartError extends Error {}

/** Resolves with the child's first message, or rejects when it exits first or takes longer than `timeoutMs`. */
function firstMessage<T>(child: ChildProcess, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (m: unknown) => {
      cleanup();
      resolve(m as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`${what}: exited with ${code}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

async function startServer(kind: System, delayMs: number, settings: RunSettings): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(here('./server-child.js'), [kind, String(delayMs)], {
    execArgv: settings.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const ready = await firstMessage<ServerReady>(child, settings.startTimeoutMs ?? 60_000, `${kind} server`);
    if ('error' in ready) throw new Error(ready.error);
    return { child, port: ready.port };
  } catch (err) {
    child.kill('SIGKILL');
    throw new ServerStartError(`${kind} server did not start: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  if (child.connected) child.send('stop');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Runs scenario `s` once for `system`; rejects (after stopping every child) when a process fails. */
export async function runOnce(s: Scenario, system: System, settings: RunSettings): Promise<RunResult> {
  const { warmupSeconds, seconds, execArgv } = settings;
  const started = await Promise.allSettled(s.serverDelaysMs.map((d) => startServer(system, d, settings)));
  const servers = started.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : []));
  try {
    const failed = started.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const job: ClientJob = {
      kind: system,
      ports: servers.map((x) => x.port),
      inFlight: s.inFlight,
      warmupMs: warmupSeconds * 1000,
      measureMs: seconds * 1000,
      ...(s.balancer === undefined ? {} : { balancer: s.balancer }),
      ...(s.withDeadlineAndMetadata === true ? { withDeadlineAndMetadata: true } : {}),
    };
    const client = fork(here('./client-child.js'), [JSON.stringify(job)], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const timer = setTimeout(() => client.kill('SIGKILL'), (warmupSeconds + seconds + 40) * 1000);
    const got = new Promise<ClientResult>((resolve, reject) => {
      client.on('message', (m: ClientResult | EdgeMessage) => {
        // Passed on at once: the servers read their CPU as near the client's edges as IPC allows.
        if ('edge' in m) for (const x of servers) x.child.send(`window-${m.edge}`);
        else resolve(m);
      });
      client.once('exit', (code, signal) => reject(new Error(`${system} client process exited with ${signal ?? code} before its result`)));
    });
    const exited = once(client, 'exit');
    const [{ load, label, description }] = await Promise.all([got, exited]).finally(() => clearTimeout(timer));
    // IPC keeps order: each server got 'window-end' before this question.
    const stats = await Promise.all(
      servers.map((x) => {
        const reply = firstMessage<ServerStats>(x.child, 10_000, `${system} server stats`);
        x.child.send('stats');
        return reply;
      }),
    );
    const serverCpuUs = stats.map((x) => x.cpuUs);
    if (!serverCpuUs.every((x) => x !== null)) throw new Error('a server process did not see both edges of the measured window');
    const calls = Math.max(1, load.calls);
    const client1 = load.cpuUs / calls;
    const server1 = serverCpuUs.reduce((sum, x) => sum + x, 0) / calls;
    const extra = stats.some((x) => x.extraCpuUs !== undefined)
      ? stats.reduce((sum, x) => sum + (x.extraCpuUs ?? 0), 0) / calls
      : undefined;
    return {
      result: load,
      label,
      description,
      callsPerServer: servers.length > 1 ? stats.map((x) => x.calls) : [],
      cpuUsPerCall: { client: client1, server: server1, total: client1 + server1, ...(extra === undefined ? {} : { serverExtra: extra }) },
    };
  } finally {
    await Promise.all(servers.map((x) => stop(x.child)));
  }
}
