/**
 * `npm run bench`: micro benchmarks, then the end-to-end scenarios, each with its server(s) and its
 * client in separate processes on loopback, then issue 4's worker-offload and large-message scenarios
 * (bench/offload.ts and bench/large.ts, shortened, forked: they send their figures over IPC), then the
 * report: a table on stdout, bench/results/latest.md, latest.svg and latest.json (README.md is not
 * touched: its figures are copied from latest.md by hand).
 *
 * Environment: BENCH_SECONDS (measured seconds per run, default 3), BENCH_WARMUP_SECONDS (default 1),
 * BENCH_ROUNDS (each run is repeated this many times, interleaved with the others so that noise from
 * the machine hits every system alike; the best round counts for calls/s and latency, the median round
 * for CPU per call; default 3), BENCH_ONLY (substrings of `scenario/system`, comma-separated, to run a
 * subset, `offload/avrpc` and `large/avrpc` naming issue 4's, `stream/avrpc`, `stream/floor`, `stream/grpc`,
 * `bidi-64/avrpc`, `bidi-64/avrpc-unary` and `slow-consumer/avrpc` issue 10's, `http-gateway` issue 13's; skips the micro benchmarks and writes no
 * result files, the tables go to stdout only; issue 9's CPU per call, in about two minutes:
 * `BENCH_ONLY=echo-1/avrpc,echo-1/raw,echo-64/avrpc,echo-64/raw BENCH_ROUNDS=5`),
 * BENCH_STREAM_ELEMENTS (elements per stream of issue 10's stream and bidi runs, default 200000),
 * BENCH_STREAM_WINDOW (avrpc's maxBufferedElements on both sides of those runs; default: avrpc's, 64),
 * BENCH_PROFILE (a directory: children run with `--cpu-prof` and write their profiles there),
 * BENCH_NODE_ARGS (more Node flags for the children, e.g. `--trace-gc`).
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runOnce, type RunResult, type Scenario } from './e2e.js';
import type { GatewayReport } from './http-gateway.js';
import type { LargeResults } from './large.js';
import { runMicro } from './micro.js';
import { runStreamOnce, type StreamRun } from './stream.js';
import { streamReport, streamScenarios } from './stream-report.js';
import type { OffloadModeResult } from './offload.js';
import { repoFile } from './payload.js';
import {
  consoleTable,
  cpuUs,
  cpuVsFloorRounds,
  latency,
  markdown,
  medianCpu,
  rate,
  svg,
  times,
  type BenchReport,
  type ReportSection,
  type ScenarioRow,
  type System,
  type TargetCheck,
} from './report.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
const rounds = Math.max(1, Math.floor(Number(process.env.BENCH_ROUNDS ?? 3)));
const onlyParts = process.env.BENCH_ONLY?.split(',').filter(Boolean);
const only = onlyParts === undefined || onlyParts.length === 0 ? undefined : onlyParts;
/** Whether `key` (`scenario/system`) runs: every key without BENCH_ONLY, else those containing one of its parts. */
const selected = (key: string): boolean => only === undefined || only.some((part) => key.includes(part));
/** Issue 4's scripts run when BENCH_ONLY is unset or one of its parts is a substring of their name. */
const scriptSelected = (name: string): boolean => only === undefined || only.some((part) => name.includes(part));
const profileDir = process.env.BENCH_PROFILE;
if (!(seconds > 0) || !(warmupSeconds >= 0)) throw new Error('BENCH_SECONDS must be > 0 and BENCH_WARMUP_SECONDS >= 0');

const SLOW_MS = 2;
const scenarios: Scenario[] = [
  // With one call in flight there is one frame per tick: the batched raw echo would measure the same as the floor.
  { id: 'echo-1', title: 'echo Item, 1 in flight', systems: ['avrpc', 'grpc', 'raw'], inFlight: 1, serverDelaysMs: [0] },
  { id: 'echo-64', title: 'echo Item, 64 in flight', systems: ['avrpc', 'grpc', 'raw', 'rawBatched'], inFlight: 64, serverDelaysMs: [0] },
  {
    id: 'echo-64-dm',
    title: 'echo Item, 64 in flight, with deadline and metadata',
    systems: ['avrpc'],
    inFlight: 64,
    serverDelaysMs: [0],
    withDeadlineAndMetadata: true,
  },
  {
    id: 'lb-lc',
    title: `2 servers, 1 slowed ${SLOW_MS} ms, least-connections, 64 in flight`,
    systems: ['avrpc'],
    inFlight: 64,
    serverDelaysMs: [0, SLOW_MS],
    balancer: 'leastConnections',
  },
  {
    id: 'lb-rr',
    title: `2 servers, 1 slowed ${SLOW_MS} ms, round-robin, 64 in flight`,
    systems: ['avrpc'],
    inFlight: 64,
    serverDelaysMs: [0, SLOW_MS],
    balancer: 'roundRobin',
  },
];

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const execArgv = [
  ...(profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir]),
  ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
];

/** Runs a bench script of another issue in its own process; it sends its figures over IPC before exiting. */
async function runScript<T>(file: string, args: string[], timeoutMs: number): Promise<T | undefined> {
  const child = fork(here(file), args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let result: T | undefined;
  child.on('message', (m) => {
    result = m as T;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  if (code !== 0) console.log(`  ${file} exited with ${code}: its rows are left out`);
  return result;
}

const ms = (x: number): string => `${x.toFixed(x < 10 ? 2 : 1)} ms`;
const mibs = (bytesPerSec: number): string => `${(bytesPerSec / (1024 * 1024)).toFixed(0)} MiB/s`;

/** Issue 4's worker offload: the server's event-loop delay under mixed load, offload off vs on. */
function offloadSection(r: OffloadModeResult[], secondsPerMode: number): { section: ReportSection; targets: TargetCheck[] } {
  const label: Record<string, string> = {
    idle: "idle (no calls: the machine's noise)",
    small: 'small calls only',
    off: 'mixed load, offload off',
    on: 'mixed load, offload on',
  };
  const section: ReportSection = {
    title: 'Worker offload (issue 4): server event-loop delay under mixed load',
    note:
      `One server process; 32 small echo calls in flight from one client process alongside 2 calls in flight carrying a 20k-record array ` +
      `(about 540 KB each way) from another, ${secondsPerMode} s per mode (\`bench/offload.ts\`). Offload on: the 20k-record echo runs in a worker ` +
      `thread (\`offload: 'auto'\`, small calls stay inline).`,
    header: ['mode', 'loop delay max', 'loop delay p99', 'main thread busy', 'small calls p50 / p99', 'small calls', '20k-record calls'],
    rows: r.map((m) => [
      label[m.mode] ?? m.mode,
      ms(m.server.maxMs),
      ms(m.server.p99Ms),
      `${(m.server.elu * 100).toFixed(0)}%`,
      `${ms(m.smallP50Ms)} / ${ms(m.smallP99Ms)}`,
      String(m.smallCalls),
      String(m.bigCalls),
    ]),
    chart: {
      title: 'Worker offload: server event-loop delay max (lower is better)',
      bars: r.map((m) => ({ label: label[m.mode] ?? m.mode, value: m.server.maxMs, text: ms(m.server.maxMs) })),
    },
  };
  const on = r.find((m) => m.mode === 'on');
  const targets =
    on === undefined
      ? []
      : [
          {
            what: 'issue 4: server loop delay max with offload, mixed load',
            value: on.server.maxMs,
            limit: '< 10 ms',
            ok: on.server.maxMs < 10,
            unit: 'ms' as const,
          },
        ];
  return { section, targets };
}

/** Issue 4's large messages: small-call latency beside 8 MB calls, 1 MB throughput, memory. */
function largeSections(r: LargeResults, seconds: number): { sections: ReportSection[]; targets: TargetCheck[] } {
  const sections: ReportSection[] = [];
  const targets: TargetCheck[] = [];
  if (r.latency.length > 0) {
    sections.push({
      title: 'Large messages (issue 4): small-call latency while 8 MB echoes share the connection',
      note:
        `One client process, one server process; small calls 1 in flight in a closed loop, ${seconds} s per row, beside one 8 MB echo call ` +
        `at a time on the same connection (\`bench/large.ts --quick\`). Offload: the server's 8 MB echo runs in a worker thread.`,
      header: ['mode', 'small p50', 'small p99', 'small max', 'small calls', '8 MB echoes', 'longest loop stall client / server'],
      rows: r.latency.map((x) => [
        x.label,
        ms(x.p50Ms),
        ms(x.p99Ms),
        ms(x.maxMs),
        String(x.smallCalls),
        String(x.bigCalls),
        `${ms(x.clientStallMs)} / ${ms(x.serverStallMs)}`,
      ]),
      chart: {
        title: 'Small-call p99 beside 8 MB echoes (lower is better)',
        bars: r.latency.map((x) => ({ label: x.label, value: x.p99Ms, text: ms(x.p99Ms) })),
      },
    });
    const on = r.latency.find((x) => x.label === 'fragments on');
    if (on !== undefined)
      targets.push({
        what: 'issue 4: small-call p99 beside 8 MB calls, fragments on',
        value: on.p99Ms,
        limit: '< 5 ms',
        ok: on.p99Ms < 5,
        unit: 'ms',
      });
  }
  const t = r.throughput;
  if (t !== undefined) {
    const rows: [string, number, System][] = [
      ['raw framed floor', t.rawBytesPerSec, 'raw'],
      ['avrpc, fragments on', t.onBytesPerSec, 'avrpc'],
      ['avrpc, fragments off', t.offBytesPerSec, 'avrpc'],
    ];
    sections.push({
      title: 'Large messages (issue 4): 1 MB echo throughput',
      note:
        'Payload bytes per second one way, 4 calls in flight on 1 connection, best of 3 interleaved rounds. Raw framed floor: the same ' +
        'frames echoed by a plain `net` server, no Avro, no fragments.',
      header: ['system', 'payload bytes/s', 'vs floor'],
      rows: rows.map(([label, v]) => [label, mibs(v), times(v / t.rawBytesPerSec)]),
      chart: {
        title: '1 MB echo throughput (higher is better)',
        bars: rows.map(([label, v, system]) => ({ label, value: v, text: mibs(v), system })),
      },
    });
    targets.push({
      what: 'issue 4: 1 MB echo throughput vs raw framed floor, fragments on',
      value: t.onBytesPerSec / t.rawBytesPerSec,
      limit: '>= 0.8x',
      ok: t.onBytesPerSec / t.rawBytesPerSec >= 0.8,
    });
  }
  if (r.memory.length > 0) {
    sections.push({
      title: 'Large messages (issue 4): memory beyond the payload while one N MB echo is in flight',
      note:
        'Peak of `process.memoryUsage()` arrayBuffers + heapUsed above the level before the call, minus the payload (the request on the ' +
        'server, the result on the client), worst of 3 calls, sampled every 1 ms. It includes garbage V8 has not collected yet: every ' +
        'socket read is a fresh 64 KiB buffer (Node allocates one per read), copied into the message and then dropped, so up to about N ' +
        'of read buffers is counted until an external-memory GC runs, which for large N happens during the call.',
      header: ['N', 'client', 'server'],
      rows: r.memory.map((m) => [`${m.n} MB`, `${m.clientWorstN.toFixed(2)}N`, `${m.serverWorstN.toFixed(2)}N`]),
      chart: {
        title: 'memory beyond the payload, in multiples of N (lower is better)',
        bars: r.memory.flatMap((m) => [
          { label: `${m.n} MB, client`, value: m.clientWorstN, text: `${m.clientWorstN.toFixed(2)}N`, system: 'avrpc' as System },
          { label: `${m.n} MB, server`, value: m.serverWorstN, text: `${m.serverWorstN.toFixed(2)}N`, system: 'avrpc' as System },
        ]),
      },
    });
    for (const m of r.memory) {
      const worst = Math.max(m.clientWorstN, m.serverWorstN);
      targets.push({
        what: `issue 4: memory beyond the payload per side, ${m.n} MB echo`,
        value: worst,
        limit: '<= about 2N',
        ok: worst <= 2.2,
        unit: 'N',
      });
    }
  }
  return { sections, targets };
}

/** Issue 13's HTTP gateway: each comparison's calls/s and server CPU per call ratios, and its targets. */
function gatewaySection(r: GatewayReport): { section: ReportSection; targets: TargetCheck[] } {
  const section: ReportSection = {
    title: 'HTTP/JSON gateway (issue 13): gateway against plain node:http, avrpc on a port shared with HTTP against avrpc only',
    note:
      `Per round both servers' processes and one client process; the client loads them in alternating short slices so that both meet ` +
      `the same machine load (\`bench/http-gateway.ts\`). ${r.settings}`,
    header: ['comparison', 'calls/s', 'calls/s ratio, median round', 'server CPU/call ratio'],
    rows: r.scenarios.map((s) => [
      s.title,
      s.systems.map((x) => `${x.label} ${rate(x.callsPerSecMedian)}`).join(' / '),
      times(s.ratioMedian),
      times(s.serverCpuRatioMedian),
    ]),
    chart: {
      title: 'HTTP gateway: calls/s ratio, first system / second (higher is better)',
      bars: r.scenarios.map((s) => ({ label: s.id, value: s.ratioMedian, text: times(s.ratioMedian) })),
    },
  };
  const targets = r.scenarios.flatMap((s) =>
    s.target === undefined
      ? []
      : [
          {
            what: `issue 13: ${s.id} ${s.systems[0]!.label} / ${s.systems[1]!.label} calls/s`,
            value: s.ratioMedian,
            limit: s.target.limit,
            ok: s.target.met,
          },
        ],
  );
  return { section, targets };
}

/** The lower middle of sorted values; NaN for none. */
function median(sorted: number[]): number {
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
}

function ratio(a: number | undefined, b: number | undefined): number {
  return a === undefined || b === undefined || b === 0 ? NaN : a / b;
}

async function main(): Promise<void> {
  const started = Date.now();
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, load average ${loadavg()[0]!.toFixed(1)} at start`;
  console.log(`avrpc benchmark: ${machine}`);
  const micro = only === undefined ? await runMicro(1) : [];
  for (const m of micro) console.log(`  micro  ${m.name.padEnd(46)} ${Math.round(m.opsPerSec).toLocaleString('en-US').padStart(12)} ops/s`);

  const runs = new Map<string, RunResult[]>();
  const streamRuns = new Map<string, StreamRun[]>();
  for (let round = 1; round <= rounds; round++) {
    for (const s of scenarios) {
      for (const system of s.systems) {
        const key = `${s.id}/${system}`;
        if (!selected(key)) continue;
        const run = await runOnce(s, system, { warmupSeconds, seconds, execArgv });
        const r = run.result;
        const c = run.cpuUsPerCall;
        console.log(
          `  round ${round}/${rounds}  ${key.padEnd(18)} ${rate(r.callsPerSec).padStart(10)}  p50 ${latency(r.p50Us).padStart(8)}  p99 ${latency(r.p99Us).padStart(8)}` +
            `  CPU/call ${c.client.toFixed(2)} + ${c.server.toFixed(2)} = ${cpuUs(c.total)}` +
            `${r.errors > 0 ? `  ${r.errors} errors (${r.firstError})` : ''}${run.callsPerServer.length > 0 ? `  calls per server ${run.callsPerServer.join(' / ')}` : ''}`,
        );
        runs.set(key, [...(runs.get(key) ?? []), run]);
      }
    }
    // Issue 10's streams, in the same rounds: the slow consumer (a memory check, not a rate) in the first only.
    for (const s of streamScenarios) {
      if (s.id === 'slow-consumer' && round > 1) continue;
      for (const which of s.systems) {
        const key = `${s.id}/${which.label}`;
        if (!selected(key)) continue;
        let run: StreamRun;
        try {
          run = await runStreamOnce(s, which, { warmupSeconds, seconds, execArgv });
        } catch (err) {
          console.log(`  round ${round}/${rounds}  ${key.padEnd(18)} failed: ${err instanceof Error ? err.message : String(err)}`);
          continue;
        }
        const c = run.cpuUsPerElement;
        const slow = run.slow === undefined ? '' : `  producer lead ${run.slow.maxLead}, ${run.slow.produced} produced`;
        console.log(
          `  round ${round}/${rounds}  ${key.padEnd(18)} ${rate(run.elementsPerSec).padStart(10)} elements  ` +
            `CPU/element ${c.client.toFixed(2)} + ${c.server.toFixed(2)} = ${cpuUs(c.total)}${slow}`,
        );
        streamRuns.set(key, [...(streamRuns.get(key) ?? []), run]);
      }
    }
  }

  // Issue 4's scenarios, shortened: each in its own process tree.
  const extraSeconds = 3;
  const offload = scriptSelected('offload/avrpc')
    ? await runScript<OffloadModeResult[]>('./offload.js', [String(extraSeconds)], 120_000)
    : undefined;
  // Each part of bench/large.ts in fresh processes: throughput measured in processes that just ran
  // the 8 MB latency rows came out 10-20% lower, floor and avrpc alike, from the heap those left.
  let large: LargeResults | undefined;
  if (scriptSelected('large/avrpc')) {
    const part = (n: string) => runScript<LargeResults>('./large.js', [n, '--quick', `--seconds=${extraSeconds}`], 180_000);
    const [p1, p2, p3] = [await part('1'), await part('2'), await part('3')];
    large = {
      latency: p1?.latency ?? [],
      memory: p3?.memory ?? [],
      ...(p2?.throughput === undefined ? {} : { throughput: p2.throughput }),
    };
  }

  // Issue 13's HTTP gateway comparisons, in their own process tree.
  const gateway = scriptSelected('http-gateway') ? await runScript<GatewayReport>('./http-gateway.js', [], 180_000) : undefined;

  const rows: ScenarioRow[] = [];
  for (const s of scenarios) {
    const row: ScenarioRow = { id: s.id, title: s.title, results: {} };
    for (const system of s.systems) {
      const all = runs.get(`${s.id}/${system}`);
      if (all === undefined) continue;
      const run = all.reduce((a, b) => (b.result.callsPerSec > a.result.callsPerSec ? b : a));
      const cpuRounds = all.map((x) => x.cpuUsPerCall);
      row.results[system] = {
        ...run.result,
        callsPerSecRounds: all.map((x) => x.result.callsPerSec),
        cpuUsPerCall: medianCpu(cpuRounds),
        cpuRounds,
      };
      if (run.callsPerServer.length > 1) {
        const total = run.callsPerServer.reduce((a, b) => a + b, 0);
        row.note = `slowed server got ${((100 * run.callsPerServer[1]!) / Math.max(1, total)).toFixed(1)}% of calls`;
      }
    }
    if (Object.keys(row.results).length > 0) rows.push(row);
  }
  const get = (id: string, sys: System) => rows.find((r) => r.id === id)?.results[sys];
  const ratios: Record<string, number> = {
    'echo-64 avrpc/floor calls/s': ratio(get('echo-64', 'avrpc')?.callsPerSec, get('echo-64', 'raw')?.callsPerSec),
    'echo-64 avrpc/grpc-js calls/s': ratio(get('echo-64', 'avrpc')?.callsPerSec, get('echo-64', 'grpc')?.callsPerSec),
    'echo-64 avrpc/floor p99': ratio(get('echo-64', 'avrpc')?.p99Us, get('echo-64', 'raw')?.p99Us),
    'echo-1 avrpc/floor p50': ratio(get('echo-1', 'avrpc')?.p50Us, get('echo-1', 'raw')?.p50Us),
    'echo-1 avrpc/floor calls/s': ratio(get('echo-1', 'avrpc')?.callsPerSec, get('echo-1', 'raw')?.callsPerSec),
    'echo-1 avrpc/floor CPU/call': ratio(get('echo-1', 'avrpc')?.cpuUsPerCall.total, get('echo-1', 'raw')?.cpuUsPerCall.total),
    'echo-64 avrpc/floor CPU/call': ratio(get('echo-64', 'avrpc')?.cpuUsPerCall.total, get('echo-64', 'raw')?.cpuUsPerCall.total),
    'echo-1 avrpc/grpc-js CPU/call': ratio(get('echo-1', 'avrpc')?.cpuUsPerCall.total, get('echo-1', 'grpc')?.cpuUsPerCall.total),
    'echo-64 avrpc/grpc-js CPU/call': ratio(get('echo-64', 'avrpc')?.cpuUsPerCall.total, get('echo-64', 'grpc')?.cpuUsPerCall.total),
    'echo-1 avrpc/floor CPU/call, median of same-round ratios': median(
      cpuVsFloorRounds(
        rows.find((r) => r.id === 'echo-1'),
        'avrpc',
      ),
    ),
    'echo-64 avrpc/floor CPU/call, median of same-round ratios': median(
      cpuVsFloorRounds(
        rows.find((r) => r.id === 'echo-64'),
        'avrpc',
      ),
    ),
    'echo-64 avrpc/raw batched CPU/call': ratio(
      get('echo-64', 'avrpc')?.cpuUsPerCall.total,
      get('echo-64', 'rawBatched')?.cpuUsPerCall.total,
    ),
    'echo-64 avrpc/raw batched calls/s': ratio(get('echo-64', 'avrpc')?.callsPerSec, get('echo-64', 'rawBatched')?.callsPerSec),
    'echo-64 avrpc/raw batched p99': ratio(get('echo-64', 'avrpc')?.p99Us, get('echo-64', 'rawBatched')?.p99Us),
    'echo-64 with/without deadline and metadata calls/s': ratio(
      get('echo-64-dm', 'avrpc')?.callsPerSec,
      get('echo-64', 'avrpc')?.callsPerSec,
    ),
    'lb least-connections/round-robin calls/s': ratio(get('lb-lc', 'avrpc')?.callsPerSec, get('lb-rr', 'avrpc')?.callsPerSec),
    'lb least-connections/round-robin p99': ratio(get('lb-lc', 'avrpc')?.p99Us, get('lb-rr', 'avrpc')?.p99Us),
  };
  const addNote = (id: string, note: string): void => {
    const row = rows.find((r) => r.id === id);
    if (row !== undefined) row.note = [note, row.note].filter(Boolean).join('; ');
  };
  const dm = ratios['echo-64 with/without deadline and metadata calls/s']!;
  if (!Number.isNaN(dm)) addNote('echo-64-dm', `calls/s ${times(dm)} of plain echo at 64`);
  const lbRate = ratios['lb least-connections/round-robin calls/s']!;
  const lbP99 = ratios['lb least-connections/round-robin p99']!;
  if (!Number.isNaN(lbRate)) addNote('lb-lc', `calls/s ${times(lbRate)} round-robin, p99 ${times(lbP99)} round-robin`);
  const target = (what: string, key: string, limit: string, ok: (v: number) => boolean): TargetCheck[] =>
    Number.isNaN(ratios[key]!) ? [] : [{ what, value: ratios[key]!, limit, ok: ok(ratios[key]!) }];
  const targets = [
    ...target('64 in flight: avrpc calls/s vs floor', 'echo-64 avrpc/floor calls/s', '>= 0.9x', (v) => v >= 0.9),
    ...target('64 in flight: avrpc calls/s vs grpc-js', 'echo-64 avrpc/grpc-js calls/s', '>= 15x', (v) => v >= 15),
    ...target('64 in flight: avrpc p99 vs floor', 'echo-64 avrpc/floor p99', '<= 1.5x', (v) => v <= 1.5),
    ...target('1 in flight: avrpc p50 vs floor', 'echo-1 avrpc/floor p50', '<= 1.3x', (v) => v <= 1.3),
  ];
  const sections: ReportSection[] = [];
  if (offload !== undefined) {
    const o = offloadSection(offload, extraSeconds);
    sections.push(o.section);
    targets.push(...o.targets);
  }
  if (large !== undefined) {
    const l = largeSections(large, extraSeconds);
    sections.push(...l.sections);
    targets.push(...l.targets);
  }
  if (gateway !== undefined) {
    const g = gatewaySection(gateway);
    sections.push(g.section);
    targets.push(...g.targets);
  }
  const streams = streamReport(streamRuns);
  sections.push(...streams.sections);
  targets.push(...streams.targets);
  Object.assign(ratios, streams.ratios);
  const report: BenchReport = {
    date: new Date(started).toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    machine,
    settings:
      `One server process and one client process per run, loopback; ${warmupSeconds} s warm-up, ${seconds} s measured, ` +
      `best of ${rounds} interleaved round${rounds > 1 ? 's' : ''} (CPU per call: the median round). Payload: Item { id, 8-char name, 3 tags, score, 64-byte blob }.`,
    micro,
    rows,
    ratios,
    targets,
    sections,
  };
  console.log('');
  console.log(consoleTable(report));
  for (const [k, v] of Object.entries(ratios)) if (!Number.isNaN(v)) console.log(`  ratio ${k}: ${times(v)}`);
  if (only === undefined) {
    const dir = repoFile('bench/results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/latest.md`, `# avrpc benchmark results\n\n${markdown(report)}`);
    writeFileSync(`${dir}/latest.svg`, svg(report));
    writeFileSync(`${dir}/latest.json`, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwrote bench/results/latest.md, latest.svg, latest.json (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
}

await main();
