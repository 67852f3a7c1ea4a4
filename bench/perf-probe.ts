/**
 * The perf probe: avrpc against the tuned raw floor, each in its own server and client process
 * (bench/perf-child.ts), interleaved round by round, at 1 and 64 in flight. Prints, per case, the median
 * and range over rounds of calls/s, p50 and CPU µs per call of each process, and avrpc's ratios to
 * the floor. `node dist/bench/perf-probe.js [rounds=3] [seconds=3] [kinds=avrpc,avrpc-dm,floor]`;
 * PROBE_ARGV adds Node flags to the children (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). For an A/B of two
 * builds, PROBE_BASE names another build's perf-child.js: kinds prefixed `base:` (`base:avrpc`) run it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { LoadResult } from './load.js';

const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 3);
const kinds = (process.argv[4] ?? 'avrpc,avrpc-dm,floor').split(',');
const inFlights = (process.env.PROBE_INFLIGHT ?? '1,64').split(',').map(Number);
const execArgv = (process.env.PROBE_ARGV ?? '').split(' ').filter((x) => x !== '');
const ownChild = fileURLToPath(new URL('./perf-child.js', import.meta.url));

interface Sample {
  cps: number;
  p50: number;
  p99: number;
  client: number;
  server: number;
}

async function runOnce(name: string, inFlight: number): Promise<Sample> {
  const base = name.startsWith('base:');
  const kind = base ? name.slice(5) : name;
  const child = base ? process.env.PROBE_BASE! : ownChild;
  const srv = fork(child, ['server', kind], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [{ port }] = (await once(srv, 'message')) as [{ port: number }];
  try {
    const cli = fork(child, ['client', kind, String(port), String(inFlight), '1000', String(seconds * 1000)], {
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const result = await new Promise<LoadResult>((resolve, reject) => {
      cli.on('message', (m: LoadResult | { edge: string }) => {
        if ('edge' in m) srv.send(`window-${m.edge}`);
        else resolve(m);
      });
      cli.once('exit', (code) => code !== 0 && reject(new Error(`client exited with ${code}`)));
    });
    const replied = once(srv, 'message');
    srv.send('stats');
    const [{ cpuUs }] = (await replied) as [{ cpuUs: number }];
    const calls = Math.max(1, result.calls);
    return { cps: result.callsPerSec, p50: result.p50Us, p99: result.p99Us, client: result.cpuUs / calls, server: cpuUs / calls };
  } finally {
    await stop(srv);
  }
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  const exited = once(c, 'exit');
  c.send('stop');
  await exited;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[], d: number) => `${median(xs).toFixed(d)} [${Math.min(...xs).toFixed(d)}-${Math.max(...xs).toFixed(d)}]`;

const samples = new Map<string, Sample[]>();
for (let r = 0; r < rounds; r++)
  for (const inFlight of inFlights)
    for (const kind of kinds) {
      const s = await runOnce(kind, inFlight);
      const key = `${kind}@${inFlight}`;
      samples.set(key, [...(samples.get(key) ?? []), s]);
      console.error(
        `round ${r + 1} ${key}: ${Math.round(s.cps)} calls/s p50 ${s.p50} p99 ${s.p99} us cpu ${s.client.toFixed(2)}+${s.server.toFixed(2)} us`,
      );
    }

console.log(`\n| case | calls/s | p50 us | client CPU us/call | server CPU us/call | total CPU us/call |`);
console.log(`|---|---|---|---|---|---|`);
for (const [key, xs] of samples) {
  const g = (f: (s: Sample) => number) => xs.map(f);
  console.log(
    `| ${key} | ${fmt(
      g((s) => s.cps / 1000),
      1,
    )}k | ${fmt(
      g((s) => s.p50),
      0,
    )} | ${fmt(
      g((s) => s.client),
      2,
    )} | ${fmt(
      g((s) => s.server),
      2,
    )} | ${fmt(
      g((s) => s.client + s.server),
      2,
    )} |`,
  );
}
const ratio = (a: string, b: string, f: (s: Sample) => number) => {
  const x = samples.get(a);
  const y = samples.get(b);
  return x && y ? (median(x.map(f)) / median(y.map(f))).toFixed(2) : 'n/a';
};
console.log(`\n| ratio | 1 in flight p50 | 64 calls/s | 64 CPU/call |`);
console.log(`|---|---|---|---|`);
for (const k of kinds.filter((k) => k !== 'floor' && !k.endsWith('floor')))
  console.log(
    `| ${k} / floor | ${ratio(`${k}@1`, 'floor@1', (s) => s.p50)} | ${ratio(`${k}@64`, 'floor@64', (s) => s.cps)} | ${ratio(`${k}@64`, 'floor@64', (s) => s.client + s.server)} |`,
  );
if (kinds.includes('avrpc-dm') && kinds.includes('avrpc'))
  console.log(
    `| avrpc-dm / avrpc | ${ratio('avrpc-dm@1', 'avrpc@1', (s) => s.p50)} | ${ratio('avrpc-dm@64', 'avrpc@64', (s) => s.cps)} | ${ratio('avrpc-dm@64', 'avrpc@64', (s) => s.client + s.server)} |`,
  );
