/**
 * `npm run bench`: micro benchmarks, then the end-to-end scenarios (avrpc against the tuned floor and
 * every peer of bench/peers/, then avrpc alone with deadlines and metadata and behind balancers), each
 * run with its server(s) and its client in separate processes on loopback, one pair at a time, in
 * interleaved rounds; then the stream scenarios in the same rounds, then shortened runs of the worker
 * offload, large-message and HTTP gateway scripts (forked: they send their figures over IPC); then the
 * report: tables on stdout, bench/results/latest.md, latest.svg and latest.json. README.md is never
 * touched: it quotes latest.md's summary (copy it with `node dist/bench/readme-figures.js --write`).
 *
 * Environment: BENCH_SECONDS (measured seconds per run, default 3), BENCH_WARMUP_SECONDS (warm-up
 * before each timed window, default 1), BENCH_ROUNDS (each run is repeated this many times,
 * interleaved with the others so that the machine's noise hits every system alike; default 3),
 * BENCH_ROUNDS_BUDGET_SECONDS (no round starts that would end the rounds past this; default 540, which
 * keeps the whole run under 15 minutes whatever the peers cost), BENCH_ONLY (substrings of `scenario/system`, comma-separated, to run a subset, e.g.
 * `echo-64/avrpc,echo-64/floor`; `offload/avrpc`, `large/avrpc`, `http-gateway`, `stream/avrpc`,
 * `bidi-64/avrpc`, `slow-consumer/avrpc` name the others; skips the micro benchmarks and writes no
 * result files unless BENCH_RESULTS_DIR is set), BENCH_RESULTS_DIR (where to write the result files;
 * default bench/results), BENCH_STREAM_ELEMENTS, BENCH_STREAM_WINDOW (bench/stream-report.ts),
 * BENCH_PROFILE (a directory: children run with `--cpu-prof` and write their profiles there),
 * BENCH_NODE_ARGS (more Node flags for the children, e.g. `--trace-gc`).
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { missingReason, runOnce, ServerStartError, type Scenario } from './e2e.js';
import type { GatewayReport } from './http-gateway.js';
import type { LargeResults } from './large.js';
import { runMicro } from './micro.js';
import type { OffloadModeResult } from './offload.js';
import { repoFile } from './payload.js';
import { peerIds } from './peers/index.js';
import { benchTargets, benchRatios } from './targets.js';
import {
  FALLBACK_LABEL,
  consoleTable,
  cpuUs,
  latency,
  markdown,
  rate,
  summarize,
  type BenchReport,
  type RoundResult,
  type ReportSection,
  type ScenarioRow,
  type System,
  type SystemInfo,
  type TargetCheck,
} from './report.js';
import { gatewaySection, largeSections, offloadSection } from './report-sections.js';
import { svg } from './report-svg.js';
import { runStreamOnce, type StreamRun } from './stream.js';
import { streamReport, streamScenarios } from './stream-report.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
const rounds = Math.max(1, Math.floor(Number(process.env.BENCH_ROUNDS ?? 3)));
const onlyParts = process.env.BENCH_ONLY?.split(',').filter(Boolean);
const only = onlyParts === undefined || onlyParts.length === 0 ? undefined : onlyParts;
/** Whether `key` (`scenario/system`, or a script's name) runs: every key without BENCH_ONLY, else those containing one of its parts. */
const selected = (key: string): boolean => only === undefined || only.some((part) => key.includes(part));
const resultsDir = process.env.BENCH_RESULTS_DIR ?? (only === undefined ? repoFile('bench/results') : undefined);
const profileDir = process.env.BENCH_PROFILE;
/** The interleaved rounds stop early rather than run past this (the other scripts take about 3 minutes more). */
const roundsBudgetMs = 1000 * Number(process.env.BENCH_ROUNDS_BUDGET_SECONDS ?? 540);
if (!(seconds > 0) || !(warmupSeconds >= 0)) throw new Error('BENCH_SECONDS must be > 0 and BENCH_WARMUP_SECONDS >= 0');

const SLOW_MS = 2;
const everyone: System[] = ['avrpc', ...peerIds];
const scenarios: Scenario[] = [
  { id: 'echo-1', title: 'echo Item, 1 in flight', systems: everyone, inFlight: 1, serverDelaysMs: [0] },
  // Right before plain avrpc at 64 in flight (the first system of echo-64): their same-round ratio
  // compares runs seconds apart, not half a minute of other peers apart.
  {
    id: 'echo-64-dm',
    title: 'echo Item, 64 in flight, with deadline and metadata',
    systems: ['avrpc'],
    inFlight: 64,
    serverDelaysMs: [0],
    withDeadlineAndMetadata: true,
  },
  { id: 'echo-64', title: 'echo Item, 64 in flight', systems: everyone, inFlight: 64, serverDelaysMs: [0] },
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

/** Runs a bench script in its own process; it sends its figures over IPC before exiting. */
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

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

async function main(): Promise<void> {
  const started = Date.now();
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, load average ${loadavg()[0]!.toFixed(1)} at start`;
  console.log(`avrpc benchmark: ${machine}`);
  const micro = only === undefined ? await runMicro(1) : [];
  if (micro.length > 0) console.log(`  ${'micro benchmark'.padEnd(46)} ${'ops/s'.padStart(12)}`);
  for (const m of micro) console.log(`  ${m.name.padEnd(46)} ${Math.round(m.opsPerSec).toLocaleString('en-US').padStart(12)}`);

  const runs = new Map<string, RoundResult[]>();
  const failures = new Map<string, string>();
  const broken = new Map<System, string>();
  const infos = new Map<System, SystemInfo>();
  const callsPerServer = new Map<string, number[][]>();
  const streamRuns = new Map<string, StreamRun[]>();
  console.log(
    `  ${'round'.padEnd(7)} ${'scenario/system'.padEnd(20)} ${'calls/s'.padStart(10)}  ${'p50'.padStart(8)}  ${'p99'.padStart(8)}  CPU µs/call client + server = total`,
  );
  const roundsStarted = Date.now();
  let roundsDone = 0;
  for (let round = 1; round <= rounds; round++) {
    for (const s of scenarios) {
      for (const system of s.systems) {
        const key = `${s.id}/${system}`;
        if (!selected(key)) continue;
        // A server that did not start once (a missing library, a broker not installed) is not retried:
        // each attempt can cost its whole start timeout, and the bench must stay bounded.
        const missing = missingReason(system) ?? broken.get(system);
        if (missing !== undefined) {
          if (!failures.has(key)) console.log(`  ${`${round}/${rounds}`.padEnd(7)} ${key.padEnd(20)} skipped: ${missing}`);
          failures.set(key, missing);
          continue;
        }
        try {
          const run = await runOnce(s, system, { warmupSeconds, seconds, execArgv });
          const r = run.result;
          const c = run.cpuUsPerCall;
          console.log(
            `  ${`${round}/${rounds}`.padEnd(7)} ${key.padEnd(20)} ${rate(r.callsPerSec).padStart(10)}  ${latency(r.p50Us).padStart(8)}  ${latency(r.p99Us).padStart(8)}` +
              `  ${c.client.toFixed(2)} + ${c.server.toFixed(2)} = ${cpuUs(c.total)}` +
              `${r.errors > 0 ? `  ${r.errors} errors (${r.firstError})` : ''}${run.callsPerServer.length > 0 ? `  calls per server ${run.callsPerServer.join(' / ')}` : ''}`,
          );
          runs.set(key, [...(runs.get(key) ?? []), { round, load: r, cpu: c }]);
          if (run.callsPerServer.length > 0) callsPerServer.set(key, [...(callsPerServer.get(key) ?? []), run.callsPerServer]);
          if (!infos.has(system)) infos.set(system, { system, label: run.label, description: run.description });
        } catch (err) {
          console.log(`  ${`${round}/${rounds}`.padEnd(7)} ${key.padEnd(20)} failed: ${message(err)}`);
          failures.set(key, `failed: ${message(err)}`);
          if (err instanceof ServerStartError) broken.set(system, `its server did not start (${message(err)})`);
        }
      }
    }
    // The streams, in the same rounds: the slow consumer (a memory check, not a rate) in the first only.
    for (const s of streamScenarios) {
      if (s.id === 'slow-consumer' && round > 1) continue;
      for (const which of s.systems) {
        const key = `${s.id}/${which.label}`;
        if (!selected(key)) continue;
        try {
          const run = await runStreamOnce(s, which, { warmupSeconds, seconds, execArgv });
          const c = run.cpuUsPerElement;
          const slow = run.slow === undefined ? '' : `  producer lead ${run.slow.maxLead}, ${run.slow.produced} produced`;
          console.log(
            `  ${`${round}/${rounds}`.padEnd(7)} ${key.padEnd(20)} ${rate(run.elementsPerSec).padStart(10)} elements  ` +
              `CPU µs/element ${c.client.toFixed(2)} + ${c.server.toFixed(2)} = ${cpuUs(c.total)}${slow}`,
          );
          streamRuns.set(key, [...(streamRuns.get(key) ?? []), run]);
        } catch (err) {
          console.log(`  ${`${round}/${rounds}`.padEnd(7)} ${key.padEnd(20)} failed: ${message(err)}`);
        }
      }
    }
    roundsDone = round;
    // Bounded whatever the peers cost: no round starts that would end past the rounds' budget.
    const perRoundMs = (Date.now() - roundsStarted) / round;
    if (round < rounds && Date.now() - roundsStarted + perRoundMs > roundsBudgetMs) {
      console.log(
        `  stopping after ${round} of ${rounds} rounds: another would pass BENCH_ROUNDS_BUDGET_SECONDS (${roundsBudgetMs / 1000} s)`,
      );
      break;
    }
  }

  // The other scripts, shortened, each in its own process tree.
  const extraSeconds = 3;
  const offload = selected('offload/avrpc')
    ? await runScript<OffloadModeResult[]>('./offload.js', [String(extraSeconds)], 120_000)
    : undefined;
  // Each part of bench/large.ts in fresh processes: throughput measured in processes that just ran
  // the 8 MB latency rows came out 10-20% lower, floor and avrpc alike, from the heap those left.
  let large: LargeResults | undefined;
  if (selected('large/avrpc')) {
    const part = (n: string) => runScript<LargeResults>('./large.js', [n, '--quick', `--seconds=${extraSeconds}`], 180_000);
    const [p1, p2, p3] = [await part('1'), await part('2'), await part('3')];
    large = {
      latency: p1?.latency ?? [],
      memory: p3?.memory ?? [],
      ...(p2?.throughput === undefined ? {} : { throughput: p2.throughput }),
    };
  }
  const gateway = selected('http-gateway') ? await runScript<GatewayReport>('./http-gateway.js', [], 300_000) : undefined;

  const rows: ScenarioRow[] = [];
  for (const s of scenarios) {
    const row: ScenarioRow = { id: s.id, title: s.title, results: {}, skipped: [] };
    for (const system of s.systems) {
      const key = `${s.id}/${system}`;
      const all = runs.get(key);
      const label = infos.get(system)?.label ?? FALLBACK_LABEL[system];
      if (all !== undefined) row.results[system] = summarize(label, all);
      else if (failures.has(key)) row.skipped.push({ system, label, reason: failures.get(key)! });
    }
    const shares = callsPerServer.get(`${s.id}/avrpc`);
    if (shares !== undefined) {
      const slowShare = shares
        .map(
          (x) =>
            (100 * x[1]!) /
            Math.max(
              1,
              x.reduce((a, b) => a + b, 0),
            ),
        )
        .sort((a, b) => a - b);
      row.note = `slowed server got ${slowShare[Math.floor((slowShare.length - 1) / 2)]!.toFixed(1)}% of calls`;
    }
    if (Object.keys(row.results).length + row.skipped.length > 0) rows.push(row);
  }
  const ratios = benchRatios(rows);
  const targets: TargetCheck[] = benchTargets(rows);
  const sections: ReportSection[] = [];
  const streams = streamReport(streamRuns);
  sections.push(...streams.sections);
  targets.push(...streams.targets);
  Object.assign(ratios, streams.ratios);
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
  const report: BenchReport = {
    date: new Date(started).toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    machine,
    settings:
      `One server process and one client process per run, loopback, one pair at a time; ${warmupSeconds} s warm-up before each ` +
      `${seconds} s timed window; ${roundsDone} interleaved round${roundsDone > 1 ? 's' : ''} (each round runs every system in turn). ` +
      "Payload: Item { id, 8-char name, 3 tags, score, 64-byte blob }, in each system's own encoding.",
    micro,
    rows,
    systems: everyone.flatMap((s) => infos.get(s) ?? []),
    ratios,
    targets,
    sections,
  };
  console.log('');
  console.log(consoleTable(report));
  if (resultsDir !== undefined) {
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(`${resultsDir}/latest.md`, `# avrpc benchmark results\n\n${markdown(report)}`);
    writeFileSync(`${resultsDir}/latest.svg`, svg(report));
    writeFileSync(`${resultsDir}/latest.json`, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwrote ${resultsDir}/latest.md, latest.svg, latest.json`);
  }
  console.log(`bench took ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

await main();
