/**
 * `node dist/bench/threads.js`: calls/s of a CPU-bound handler on 1 and 2 event loops (issue 15, All
 * cores). Three servers, each its own process: `plain` (createServer in one process, no cluster),
 * `cluster-1` and `cluster-2` (serveCluster with 1 and 2 workers); the client is a process of its own
 * (8 sockets, 32 calls in flight, closed loop). The handler does a fixed amount of work per call (an
 * integer hash loop calibrated to about 1 ms here), not a timed spin, so that a worker that is denied
 * the CPU does less, as a real handler would. Rounds interleave the servers so that noise from the
 * machine hits each alike; the best round counts for calls/s, the median for CPU per call.
 *
 * CPU per call: the server's processes (primary and workers, read from /proc: Linux) and the client's
 * (process.cpuUsage), over the measured window. Bounded: about 45 s with the defaults.
 * Environment: THREADS_SECONDS (measured seconds per run, default 4), THREADS_ROUNDS (default 3).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createClient, createServer, parseProtocol } from '../src/index.js';
import { serveCluster } from '../src/server/cluster.js';

const IDL = 'protocol Work { long work(int n); }';
const self = fileURLToPath(import.meta.url);
const SECONDS = Number(process.env.THREADS_SECONDS ?? 4);
const ROUNDS = Number(process.env.THREADS_ROUNDS ?? 3);
const IN_FLIGHT = 32;
const SOCKETS = 8;

/** The handler's work: `n` rounds of a 32-bit integer hash; the result keeps the JIT from dropping it. */
function work(n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ i, 0x01000193) >>> 0;
  return h;
}

/** Rounds of {@link work} taking about `ms` here (best of a few tries, after warm-up). */
function calibrate(ms: number): number {
  const n = 1_000_000;
  work(n);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    work(n);
    best = Math.min(best, performance.now() - t);
  }
  return Math.round((n * ms) / best);
}

/** CPU seconds (user + system) of `pid` from /proc/<pid>/stat. */
function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command: state is field 3, so utime (14) and stime (15) are at 11 and 12 here. 100 ticks/s.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

type Kind = 'plain' | 'cluster-1' | 'cluster-2';

/** Server mode: listens, sends `{ port, pids }`, exits when the parent goes. */
async function server(kind: Kind): Promise<void> {
  const protocol = parseProtocol(IDL);
  const start = () => createServer({ protocol, handlers: { work: ({ n }: { n: number }) => work(n) } });
  if (kind === 'plain') {
    const { port } = await start().listen({ port: 0 });
    process.send!({ port, pids: [process.pid] });
  } else {
    const c = await serveCluster({ threads: kind === 'cluster-1' ? 1 : 2, start, handleSignals: false });
    if (c.role !== 'primary') return;
    process.send!({ port: c.port, pids: [process.pid, ...c.workers().map((w) => w.pid!)] });
    process.on('disconnect', () => void c.close().finally(() => process.exit(0)));
    return;
  }
  process.on('disconnect', () => process.exit(0));
}

/** Client mode: closed loop for 1 s of warm-up then SECONDS measured; sends the figures. */
async function client(port: number, n: number): Promise<void> {
  const c = createClient({ protocol: parseProtocol(IDL), endpoints: [`127.0.0.1:${port}`], connectionsPerEndpoint: SOCKETS });
  await c.call('work', { n: 1 });
  let calls = 0;
  let failed = 0;
  let measuring = false;
  let stop = false;
  const loop = async (): Promise<void> => {
    while (!stop) {
      await c.call('work', { n }).then(
        () => void (measuring && calls++),
        () => void failed++,
      );
    }
  };
  const loops = Array.from({ length: IN_FLIGHT }, loop);
  await new Promise((r) => setTimeout(r, 1000));
  process.send!({ edge: 'start' });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  process.send!({ edge: 'end' });
  stop = true;
  await Promise.all(loops);
  await c.close();
  process.send!({ calls, failed, elapsed, clientCpuS: (cpu.user + cpu.system) / 1e6 });
}

interface Run {
  rate: number;
  serverCpuUsPerCall: number;
  /** Server CPU seconds per second of the window: the cores its processes kept busy. */
  serverCores: number;
  clientCpuUsPerCall: number;
  failed: number;
}

async function runOnce(kind: Kind, n: number): Promise<Run> {
  const srv: ChildProcess = fork(self, ['--server', kind]);
  const [{ port, pids }] = (await once(srv, 'message')) as [{ port: number; pids: number[] }];
  const cli = fork(self, ['--client', String(port), String(n)]);
  const serverCpu = (): number => pids.reduce((sum, pid) => sum + procCpuSeconds(pid), 0);
  let cpuStart = 0;
  let cpuEnd = 0;
  const result = await new Promise<{ calls: number; failed: number; elapsed: number; clientCpuS: number }>((resolve) => {
    cli.on('message', (m: { edge?: string; calls?: number }) => {
      if (m.edge === 'start') cpuStart = serverCpu();
      else if (m.edge === 'end') cpuEnd = serverCpu();
      else resolve(m as never);
    });
  });
  await once(cli, 'exit');
  srv.disconnect();
  await once(srv, 'exit');
  return {
    rate: result.calls / result.elapsed,
    serverCpuUsPerCall: ((cpuEnd - cpuStart) * 1e6) / result.calls,
    serverCores: (cpuEnd - cpuStart) / result.elapsed,
    clientCpuUsPerCall: (result.clientCpuS * 1e6) / result.calls,
    failed: result.failed,
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const n = calibrate(1);
  const kinds: Kind[] = ['plain', 'cluster-1', 'cluster-2'];
  const runs = new Map<Kind, Run[]>(kinds.map((k) => [k, []]));
  console.log(
    `${cpus().length} cores (${cpus()[0]?.model}), load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `handler: ${n} hash rounds per call (about 1 ms here); ${SOCKETS} sockets, ${IN_FLIGHT} calls in flight; ${ROUNDS} rounds of ${SECONDS} s`,
  );
  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of r % 2 === 0 ? kinds : [...kinds].reverse()) {
      const run = await runOnce(kind, n);
      runs.get(kind)!.push(run);
      console.log(
        `  round ${r + 1} ${kind.padEnd(9)} ${run.rate.toFixed(0).padStart(6)} calls/s, server ${run.serverCores.toFixed(2)} cores${run.failed > 0 ? ` (${run.failed} failed)` : ''}`,
      );
    }
  }
  const best = (k: Kind): number => Math.max(...runs.get(k)!.map((x) => x.rate));
  console.log('\n| server | best calls/s | median calls/s | server CPU/call | server cores busy | client CPU/call |');
  console.log('|---|---|---|---|---|---|');
  for (const k of kinds) {
    const rs = runs.get(k)!;
    console.log(
      `| ${k} | ${best(k).toFixed(0)} | ${median(rs.map((x) => x.rate)).toFixed(0)} | ${median(rs.map((x) => x.serverCpuUsPerCall)).toFixed(0)} us | ${median(rs.map((x) => x.serverCores)).toFixed(2)} | ${median(rs.map((x) => x.clientCpuUsPerCall)).toFixed(0)} us |`,
    );
  }
  console.log(
    `\nscaling, 2 threads vs 1: ${(best('cluster-2') / best('cluster-1')).toFixed(2)}x (vs plain: ${(best('cluster-2') / best('plain')).toFixed(2)}x)`,
  );
  console.log(
    `load average after: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

if (process.argv[2] === '--server') await server(process.argv[3] as Kind);
else if (process.argv[2] === '--client') await client(Number(process.argv[3]), Number(process.argv[4]));
else await main();
