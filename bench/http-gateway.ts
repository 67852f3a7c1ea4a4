/**
 * `node dist/bench/http-gateway.js`: what the HTTP/JSON gateway costs (issue 13), in two comparisons.
 * - `json-*`: HTTP/JSON echo of the Item through the gateway (`POST /avrpc.echo.Echo/echo` on an avrpc
 *   server with `http: {}`) against a plain node:http server doing the same work by hand (parse the
 *   JSON body, answer its `item` as JSON: the same bytes in and out). Client: undici, pipelined.
 * - `avrpc-*`: avrpc echo calls on a port that also serves HTTP against one that does not (the
 *   first-bytes sniff must cost avrpc connections nothing). Client: avrpc's.
 * A round is both systems' server processes and one client process (bench/http-gateway-child.ts), on
 * loopback: the client loads one server then the other in short slices, alternating, so that both meet
 * the same machine load (whole runs one after the other differed by up to 2x on this shared machine
 * with nothing changed). CPU per call: each process's `process.cpuUsage()`; the client's over each
 * side's slices; a server's sampled around each of its slices (the client waits for the sample before
 * the next slice), so that it is the CPU of that slice's calls alone; divided by the calls completed.
 * Rounds alternate which system takes the first place (started first, the client's first target).
 * `avrpc-64` and its A/A row load both servers at once in each slice instead (a cost judged on
 * server CPU per call: both meet exactly the same machine; its A/A quartiles narrowed from about
 * +-8% to +-3% with this).
 * Ratios: the median of the rounds' (first system / second), with their range, and the median and
 * quartiles of every pair of adjacent slices, for calls/s and for server CPU per call. `json-aa-64`
 * and `aa-64` compare a server kind with itself: how far from 1.00x noise alone moves these figures.
 * `json-64` is judged on the slice pairs' calls/s, `avrpc-64` (a cost: the shared port's) on the
 * slice pairs' server CPU per call, as the calls/s it allows (1 / the ratio).
 *
 * Environment: GATEWAY_SLICE_MS (default 200), GATEWAY_SLICES (measured slices per system and round,
 * default 16), GATEWAY_WARMUP_SECONDS (default 2), GATEWAY_ROUNDS (default 4), GATEWAY_SCENARIOS (ids,
 * comma-separated, or `all`; default `json-64,avrpc-64,aa-64`: about 110 s). Writes bench/results/http-gateway.md
 * and .json when it ran the default scenarios or all; when forked with IPC (bench/run.ts) it sends the
 * report to its parent instead.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { GatewayClientJob, GatewayClientResult, GatewayServerKind, GatewayTarget, SideResult } from './http-gateway-child.js';
import { benchRequestJson, repoFile } from './payload.js';
import { cpuUs, latency, rate, times, type CpuPerCall } from './report.js';

const sliceMs = Number(process.env.GATEWAY_SLICE_MS ?? 200);
const slices = Math.max(1, Math.floor(Number(process.env.GATEWAY_SLICES ?? 16)));
const warmupSeconds = Number(process.env.GATEWAY_WARMUP_SECONDS ?? 2);
const rounds = Math.max(1, Math.floor(Number(process.env.GATEWAY_ROUNDS ?? 4)));
if (!(sliceMs > 0) || !(warmupSeconds >= 0)) throw new Error('GATEWAY_SLICE_MS must be > 0 and GATEWAY_WARMUP_SECONDS >= 0');
const DEFAULT_SCENARIOS = 'json-64,avrpc-64,aa-64';
const picked = process.env.GATEWAY_SCENARIOS ?? DEFAULT_SCENARIOS;

/** One side of a comparison: a server kind and how the client calls it (its port comes at run time). */
interface GatewaySystem {
  label: string;
  server: GatewayServerKind;
  target: Omit<GatewayTarget, 'port'>;
}

/** Two systems under the same load; its ratios are the first's figures against the second's. */
interface GatewayScenario {
  id: string;
  title: string;
  inFlight: number;
  systems: [GatewaySystem, GatewaySystem];
  /** `by`: judged on slice-pair calls/s, or on the server CPU per call (as the calls/s it allows). */
  target?: { limit: string; min: number; by: 'calls' | 'cpu' };
  /** Both systems loaded in the same slices, not in turns (see {@link GatewayClientJob.concurrent}). */
  concurrent?: boolean;
}

const pipelined = { kind: 'http' as const, connections: 4, pipelining: 16 };
const scenarios: GatewayScenario[] = [
  {
    id: 'json-64',
    title: 'HTTP/JSON echo Item, 64 in flight (undici: 4 sockets, pipelining 16)',
    inFlight: 64,
    systems: [
      { label: 'gateway', server: 'avrpc-http', target: pipelined },
      { label: 'node:http', server: 'node-http', target: pipelined },
    ],
    target: { limit: '>= 0.9x', min: 0.9, by: 'calls' },
  },
  {
    // Where the shared port's sniff and hand-over would show: the gateway on a port of its own.
    id: 'json-port-64',
    title: 'HTTP/JSON echo Item, 64 in flight, the gateway on its own port (http: { port })',
    inFlight: 64,
    systems: [
      { label: 'gateway, own port', server: 'avrpc-http-port', target: pipelined },
      { label: 'node:http', server: 'node-http', target: pipelined },
    ],
  },
  {
    // The same server twice: what the method resolves for HTTP on this machine (away from 1.00x is noise).
    id: 'json-aa-64',
    title: 'HTTP/JSON echo Item, 64 in flight, two identical node:http servers',
    inFlight: 64,
    systems: [
      { label: 'node:http, A', server: 'node-http', target: pipelined },
      { label: 'node:http, B', server: 'node-http', target: pipelined },
    ],
  },
  {
    id: 'json-1',
    title: 'HTTP/JSON echo Item, 1 in flight (1 socket, keep-alive)',
    inFlight: 1,
    systems: [
      { label: 'gateway', server: 'avrpc-http', target: { kind: 'http' } },
      { label: 'node:http', server: 'node-http', target: { kind: 'http' } },
    ],
  },
  {
    id: 'avrpc-64',
    title: 'avrpc echo Item, 64 in flight, 1 connection',
    inFlight: 64,
    systems: [
      { label: 'same port as HTTP', server: 'avrpc-http', target: { kind: 'avrpc' } },
      { label: 'avrpc only', server: 'avrpc', target: { kind: 'avrpc' } },
    ],
    target: { limit: '>= 0.98x', min: 0.98, by: 'cpu' },
    concurrent: true,
  },
  {
    id: 'avrpc-1',
    title: 'avrpc echo Item, 1 in flight',
    inFlight: 1,
    systems: [
      { label: 'same port as HTTP', server: 'avrpc-http', target: { kind: 'avrpc' } },
      { label: 'avrpc only', server: 'avrpc', target: { kind: 'avrpc' } },
    ],
  },
  {
    // The same server twice: what the method resolves on this machine (a ratio away from 1.00x is noise).
    id: 'aa-64',
    title: 'avrpc echo Item, 64 in flight, two identical avrpc-only servers',
    inFlight: 64,
    systems: [
      { label: 'avrpc only, A', server: 'avrpc', target: { kind: 'avrpc' } },
      { label: 'avrpc only, B', server: 'avrpc', target: { kind: 'avrpc' } },
    ],
    // As avrpc-64 is measured, so that it is that method's noise.
    concurrent: true,
  },
];

const child = fileURLToPath(new URL('./http-gateway-child.js', import.meta.url));

/** One system's figures in one round. */
interface Run {
  side: SideResult;
  cpu: CpuPerCall;
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  const exited = once(c, 'exit');
  c.send('stop');
  const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function startServer(kind: GatewayServerKind): Promise<{ child: ChildProcess; port: number }> {
  const c = fork(child, ['server', kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [msg] = (await once(c, 'message')) as [{ port: number }];
  return { child: c, port: msg.port };
}

/** A server's process CPU so far, in µs. */
async function sampleCpu(c: ChildProcess): Promise<number> {
  const reply = once(c, 'message');
  c.send('sample');
  const [{ cpuUs }] = (await reply) as [{ cpuUs: number }];
  return cpuUs;
}

/** What one round gives: both systems' figures, and every slice pair's ratios (calls/s, server CPU per call). */
interface Round {
  runs: [Run, Run];
  pairRatios: number[];
  pairCpuRatios: number[];
}

/**
 * One round of scenario `s`: both servers, one client slicing between them. `swapped`: the second
 * system takes the first's place (started first, first target of the client), so that over the
 * rounds neither system always has a place's advantage (A/A rows read up to 2% off 1.00x without
 * this); its figures come back in the scenario's order.
 */
async function runRound(s: GatewayScenario, swapped: boolean): Promise<Round> {
  const systems: [GatewaySystem, GatewaySystem] = swapped ? [s.systems[1], s.systems[0]] : s.systems;
  const servers = await Promise.all(systems.map((x) => startServer(x.server)));
  try {
    const job: GatewayClientJob = {
      targets: [
        { ...systems[0].target, port: servers[0]!.port },
        { ...systems[1].target, port: servers[1]!.port },
      ],
      inFlight: s.inFlight,
      warmupMs: warmupSeconds * 1000,
      sliceMs,
      // At once, a slice measures both: twice the slices in the same time.
      slices: s.concurrent === true ? 2 * slices : slices,
      concurrent: s.concurrent === true,
    };
    const client = fork(child, ['client', JSON.stringify(job)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const timer = setTimeout(() => client.kill('SIGKILL'), (warmupSeconds + (2 * slices * sliceMs) / 1000 + 60) * 1000);
    const result = await new Promise<GatewayClientResult>((resolve, reject) => {
      client.on('message', (m: GatewayClientResult | { sample: true }) => {
        // Between slices the client waits for both servers' CPU: each slice's server CPU is its own.
        if ('sample' in m) void Promise.all(servers.map((x) => sampleCpu(x.child))).then((cpu) => client.send({ cpu }));
        else resolve(m);
      });
      client.once('exit', (code) => reject(new Error(`client process exited with ${code}`)));
    }).finally(() => clearTimeout(timer));
    const runs = result.sides.map((side): Run => {
      const calls = Math.max(1, side.calls);
      return {
        side,
        cpu: { client: side.cpuUs / calls, server: side.serverCpuUs / calls, total: (side.cpuUs + side.serverCpuUs) / calls },
      };
    });
    if (!swapped) return { runs: runs as [Run, Run], pairRatios: result.pairRatios, pairCpuRatios: result.pairCpuRatios };
    return {
      runs: [runs[1]!, runs[0]!],
      pairRatios: result.pairRatios.map((r) => 1 / r),
      pairCpuRatios: result.pairCpuRatios.map((r) => 1 / r),
    };
  } finally {
    await Promise.all(servers.map((x) => stop(x.child)));
  }
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
/** The lower middle of the values; NaN for none. */
const median = (xs: number[]): number => sorted(xs)[Math.floor((xs.length - 1) / 2)] ?? NaN;
/** First and third quartiles of sorted values (nearest rank). */
const quartiles = (xs: number[]): [number, number] => [
  xs[Math.floor((xs.length - 1) / 4)] ?? NaN,
  xs[Math.floor((3 * (xs.length - 1)) / 4)] ?? NaN,
];
const range = (xs: number[], digits: number): string =>
  xs.length < 2 ? '' : ` (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;

/** One system's figures over the rounds. */
export interface GatewaySystemSummary {
  label: string;
  callsPerSecMedian: number;
  callsPerSecRounds: number[];
  /** Of the round with the median calls/s. */
  p50Us: number;
  p99Us: number;
  errors: number;
  firstError?: string;
  /** The round with the median total CPU per call. */
  cpuUsPerCall: CpuPerCall;
  cpuRounds: CpuPerCall[];
}

/** One scenario's comparison: the first system's figures divided by the second's. */
export interface GatewayScenarioSummary {
  id: string;
  title: string;
  systems: GatewaySystemSummary[];
  /** Calls/s, first / second: the median round, each round's, and the median and quartiles of every pair of slices. */
  ratioMedian: number;
  ratioRounds: number[];
  pairRatioMedian: number;
  pairRatioQuartiles: [number, number];
  /** Server CPU per call, first / second, each round's and their median. */
  serverCpuRatioMedian: number;
  serverCpuRatioRounds: number[];
  /** Slice pairs measured (over all rounds), and the median and quartiles of their server CPU per call ratios. */
  pairs: number;
  pairCpuRatioMedian: number;
  pairCpuRatioQuartiles: [number, number];
  /** The target, the figure it was judged on (`by`: slice-pair calls/s, or 1 / slice-pair server CPU ratio), and the verdict. */
  target?: { limit: string; by: 'calls' | 'cpu'; value: number; met: boolean };
}

/** What a run of this script measured. */
export interface GatewayReport {
  date: string;
  machine: string;
  settings: string;
  scenarios: GatewayScenarioSummary[];
}

function summarize(label: string, runs: Run[]): GatewaySystemSummary {
  const rates = runs.map((r) => r.side.callsPerSec);
  const mid = runs.find((r) => r.side.callsPerSec === median(rates))!;
  const byCpu = [...runs].sort((a, b) => a.cpu.total - b.cpu.total);
  const firstError = runs.find((r) => r.side.firstError !== undefined)?.side.firstError;
  return {
    label,
    callsPerSecMedian: median(rates),
    callsPerSecRounds: rates,
    p50Us: mid.side.p50Us,
    p99Us: mid.side.p99Us,
    errors: runs.reduce((n, r) => n + r.side.errors, 0),
    ...(firstError === undefined ? {} : { firstError }),
    cpuUsPerCall: byCpu[Math.floor((byCpu.length - 1) / 2)]!.cpu,
    cpuRounds: runs.map((r) => r.cpu),
  };
}

function markdown(report: GatewayReport): string {
  const lines = [`Measured ${report.date} on ${report.machine}. ${report.settings}`, ''];
  lines.push('| scenario | system | calls/s, median round (min-max) | p50 | p99 | CPU µs/call, client + server = total (min-max) |');
  lines.push('|---|---|---|---|---|---|');
  for (const s of report.scenarios)
    for (const x of s.systems) {
      const c = x.cpuUsPerCall;
      const errors = x.errors > 0 ? `, ${x.errors} errors (${x.firstError})` : '';
      lines.push(
        `| ${s.title} | ${x.label} | ${rate(x.callsPerSecMedian)}${range(x.callsPerSecRounds, 0)}${errors} | ${latency(x.p50Us)} | ${latency(x.p99Us)} | ` +
          `${c.client.toFixed(2)} + ${c.server.toFixed(2)} = ${cpuUs(c.total)}${range(
            x.cpuRounds.map((r) => r.total),
            1,
          )} |`,
      );
    }
  lines.push('');
  lines.push(
    '| comparison | calls/s, median round (min-max) | calls/s, slice pairs: median (quartiles) | server CPU/call, slice pairs: median (quartiles) | pairs | target |',
  );
  lines.push('|---|---|---|---|---|---|');
  for (const s of report.scenarios) {
    const [a, b] = s.systems;
    const t = s.target;
    const target =
      t === undefined
        ? '-'
        : `${t.limit}: ${t.met ? 'met' : 'missed'} (${times(t.value)}, ${t.by === 'cpu' ? '1 / server CPU ratio' : 'slice-pair calls/s'})`;
    const [q1, q3] = s.pairRatioQuartiles;
    const [c1, c3] = s.pairCpuRatioQuartiles;
    lines.push(
      `| ${s.id}: ${a!.label} / ${b!.label} | ${times(s.ratioMedian)}${range(s.ratioRounds, 3)} | ${times(s.pairRatioMedian)} (${q1.toFixed(3)}-${q3.toFixed(3)}) | ` +
        `${times(s.pairCpuRatioMedian)} (${c1.toFixed(3)}-${c3.toFixed(3)}) | ${s.pairs} | ${target} |`,
    );
  }
  lines.push('');
  lines.push(
    'How to read it: the slice pairs are the steadiest figures (both systems measured within a few hundred ms of each other, ' +
      "alternating; for avrpc-64 and aa-64 at the same time); server CPU per call moves least with the machine's other load. The A/A rows (`json-aa-64`, `aa-64`: one " +
      'server kind against itself) show how far from 1.00x noise alone takes each figure: a difference within their quartiles is ' +
      'not a measured cost. The shared port costs avrpc calls no code per call (the first bytes are looked at once per ' +
      'connection, then the socket is handed to an avrpc session or to node:http), so `avrpc-*` should read as an A/A row.',
  );
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const chosen = picked === 'all' ? scenarios : scenarios.filter((s) => picked.split(',').includes(s.id));
  if (chosen.length === 0) throw new Error(`GATEWAY_SCENARIOS: none of ${scenarios.map((s) => s.id).join(', ')}`);
  const started = new Date();
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, load average ${loadavg()[0]!.toFixed(1)} at start`;
  console.log(`HTTP gateway benchmark: ${machine}`);
  const results = new Map<string, Round[]>();
  for (let round = 1; round <= rounds; round++) {
    for (const s of chosen) {
      const r = await runRound(s, round % 2 === 0);
      results.set(s.id, [...(results.get(s.id) ?? []), r]);
      r.runs.forEach((x, i) =>
        console.log(
          `  round ${round}/${rounds}  ${`${s.id}/${s.systems[i]!.label}`.padEnd(28)} ${rate(x.side.callsPerSec).padStart(10)}  ` +
            `p50 ${latency(x.side.p50Us).padStart(8)}  p99 ${latency(x.side.p99Us).padStart(8)}  ` +
            `CPU/call ${x.cpu.client.toFixed(2)} + ${x.cpu.server.toFixed(2)} = ${cpuUs(x.cpu.total)}` +
            (x.side.errors > 0 ? `  ${x.side.errors} errors (${x.side.firstError})` : ''),
        ),
      );
    }
  }
  const summaries = chosen.map((s): GatewayScenarioSummary => {
    const all = results.get(s.id)!;
    const [a, b] = [all.map((r) => r.runs[0]), all.map((r) => r.runs[1])];
    const ratioRounds = a.map((r, i) => r.side.callsPerSec / b[i]!.side.callsPerSec);
    const cpuRounds = a.map((r, i) => r.cpu.server / b[i]!.cpu.server);
    const pairs = sorted(all.flatMap((r) => r.pairRatios));
    const cpuPairs = sorted(all.flatMap((r) => r.pairCpuRatios));
    const ratio = median(ratioRounds);
    const cpuPairMedian = median(cpuPairs);
    // Judged on the interleaved slice pairs: calls/s, or for a cost target the server's CPU per call
    // as the calls/s it allows (1 / the CPU ratio), the figure least moved by the machine's other load.
    const judged = s.target?.by === 'cpu' ? 1 / cpuPairMedian : median(pairs);
    return {
      id: s.id,
      title: s.title,
      systems: [summarize(s.systems[0].label, a), summarize(s.systems[1].label, b)],
      ratioMedian: ratio,
      ratioRounds,
      pairRatioMedian: median(pairs),
      pairRatioQuartiles: quartiles(pairs),
      serverCpuRatioMedian: median(cpuRounds),
      serverCpuRatioRounds: cpuRounds,
      pairs: pairs.length,
      pairCpuRatioMedian: cpuPairMedian,
      pairCpuRatioQuartiles: quartiles(cpuPairs),
      ...(s.target === undefined ? {} : { target: { limit: s.target.limit, by: s.target.by, value: judged, met: judged >= s.target.min } }),
    };
  });
  const report: GatewayReport = {
    date: started.toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    machine,
    settings:
      `Per round, both servers' processes and one client process, loopback; ${warmupSeconds} s warm-up, then ${slices} slices of ${sliceMs} ms ` +
      `per system, alternating (avrpc-64 and aa-64: both systems in the same slices, ${2 * slices} of them); ${rounds} rounds, alternating which system goes first ` +
      `(medians; CPU per call: the median round). Payload: Item { id, 8-char name, 3 tags, score, ` +
      `64-byte blob }, ${Buffer.byteLength(benchRequestJson)} bytes of Avro JSON as an HTTP body. \`node dist/bench/http-gateway.js\`.`,
    scenarios: summaries,
  };
  const md = markdown(report);
  console.log(`\n${md}`);
  if (process.send !== undefined) {
    process.send(report, () => process.exit(0));
    return;
  }
  if (picked === DEFAULT_SCENARIOS || picked === 'all') {
    const dir = repoFile('bench/results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/http-gateway.md`, `# HTTP/JSON gateway benchmark\n\n${md}`);
    writeFileSync(`${dir}/http-gateway.json`, `${JSON.stringify(report, null, 2)}\n`);
    console.log('wrote bench/results/http-gateway.md, http-gateway.json');
  }
}

await main();
