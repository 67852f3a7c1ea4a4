/**
 * One end-to-end run: fresh server process(es) and a fresh client process on loopback
 * (bench/server-child.ts, bench/client-child.ts), the load's figures, and the CPU per call of each side
 * over the client's measured window.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { BalancerName } from '../src/index.js';
import type { ClientJob, EdgeMessage } from './client-child.js';
import type { LoadResult } from './load.js';
import type { CpuPerCall, System } from './report.js';
import type { ServerStats } from './server-child.js';

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
}

/** What one run gave. */
export interface RunResult {
  result: LoadResult;
  /** Calls each server handled, when there are several (avrpc only); empty otherwise. */
  callsPerServer: number[];
  /** CPU of each side over the measured window, divided by the calls the client completed in it. */
  cpuUsPerCall: CpuPerCall;
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

async function startServer(kind: System, delayMs: number, execArgv: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(here('./server-child.js'), [kind, String(delayMs)], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [msg] = (await once(child, 'message')) as [{ port: number }];
  return { child, port: msg.port };
}

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

/** Runs scenario `s` once for `system`. */
export async function runOnce(s: Scenario, system: System, settings: RunSettings): Promise<RunResult> {
  const { warmupSeconds, seconds, execArgv } = settings;
  const servers = await Promise.all(s.serverDelaysMs.map((d) => startServer(system, d, execArgv)));
  try {
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
    const timer = setTimeout(() => client.kill('SIGKILL'), (warmupSeconds + seconds + 60) * 1000);
    const exited = once(client, 'exit') as Promise<[number | null]>;
    const got = new Promise<LoadResult>((resolve, reject) => {
      client.on('message', (m: LoadResult | EdgeMessage) => {
        // Passed on at once: the servers read their CPU as near the client's edges as IPC allows.
        if ('edge' in m) for (const x of servers) x.child.send(`window-${m.edge}`);
        else resolve(m);
      });
      client.once('exit', (code) => {
        if (code !== 0) reject(new Error(`client process exited with ${code}`));
      });
    });
    const [result] = await Promise.all([got, exited]).finally(() => clearTimeout(timer));
    // IPC keeps order: each server got 'window-end' before this question.
    const stats = await Promise.all(servers.map((x) => ask<ServerStats>(x.child, 'stats')));
    const serverCpuUs = stats.map((x) => x.cpuUs);
    if (!serverCpuUs.every((x) => x !== null)) throw new Error('a server process did not see both edges of the measured window');
    const calls = Math.max(1, result.calls);
    const clientCpu = result.cpuUs / calls;
    const serverCpu = serverCpuUs.reduce((sum, x) => sum + x, 0) / calls;
    return {
      result,
      callsPerServer: servers.length > 1 ? stats.map((x) => x.calls) : [],
      cpuUsPerCall: { client: clientCpu, server: serverCpu, total: clientCpu + serverCpu },
    };
  } finally {
    await Promise.all(servers.map((x) => stop(x.child)));
  }
}
