/**
 * The benchmark's figures and their text renderings: per system and scenario, the median and spread
 * over the interleaved rounds, avrpc's same-round ratios to each peer, the console tables and
 * bench/results/latest.md. The chart is bench/report-svg.ts.
 */
import type { LoadResult } from './load.js';
import type { MicroResult } from './micro.js';
import { peerIds, type PeerId } from './peers/index.js';

/** avrpc, or one of the peers it is compared with. */
export type System = 'avrpc' | PeerId;

/** Every system, in report order: avrpc, the floor, then the structured peers. */
export const SYSTEMS: readonly System[] = ['avrpc', ...peerIds];

/** Labels for systems that did not run (a running peer gives its own, from its module). */
export const FALLBACK_LABEL: Record<System, string> = {
  avrpc: 'avrpc',
  floor: 'tuned floor',
  'floor-early': 'raw floor, early writes',
  'floor-codec': 'raw floor + Avro codec',
  moleculer: 'Moleculer TCP',
  avsc: 'avsc 5 Service',
  http: 'HTTP/1.1 JSON',
  nats: 'NATS request/reply',
  thrift: 'Thrift compact',
  grpc: 'grpc-js',
  connect: 'Connect (h2)',
};

/** CPU time per completed call over the measured window, in µs. */
export interface CpuPerCall {
  client: number;
  /** Every server process of the scenario, with the helper processes (a broker) it needs. */
  server: number;
  total: number;
  /** The helper processes' share of `server` (NATS's broker), when there are any. */
  serverExtra?: number;
}

/** One round of one system in one scenario. */
export interface RoundResult {
  /** 1-based round number: rounds of the same number ran back to back, under the same machine load. */
  round: number;
  load: LoadResult;
  cpu: CpuPerCall;
}

/** The median of a figure over the rounds, and its range. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** One system's figures in one scenario, over its rounds. */
export interface SystemResult {
  label: string;
  rounds: RoundResult[];
  callsPerSec: Spread;
  p50Us: Spread;
  p99Us: Spread;
  cpuClient: Spread;
  cpuServer: Spread;
  /** The helper processes' share of `cpuServer` (NATS's broker), when the system has any. */
  cpuServerExtra?: Spread;
  cpuTotal: Spread;
  /** Failed calls inside the measured windows, all rounds (should be 0). */
  errors: number;
  firstError?: string;
}

/** A system that was meant to run a scenario and did not, with why. */
export interface Skipped {
  system: System;
  label: string;
  reason: string;
}

/** One scenario: a result per system that ran it. */
export interface ScenarioRow {
  id: string;
  title: string;
  results: Partial<Record<System, SystemResult>>;
  skipped: Skipped[];
  /** Free text shown under the table (e.g. the slowed server's share of calls). */
  note?: string;
}

/** A target checked on the measured figures. */
export interface TargetCheck {
  what: string;
  value: number;
  limit: string;
  ok: boolean;
  /** How `value` reads: a ratio (default), milliseconds, a multiple of the payload size N, MiB, or a count of elements. */
  unit?: 'x' | 'ms' | 'N' | 'MiB' | 'elements';
}

/** A scenario measured by its own script (worker offload, large messages, streams, HTTP gateway). */
export interface ReportSection {
  title: string;
  /** Says how it was measured, under the table. */
  note: string;
  header: string[];
  rows: string[][];
  chart: { title: string; bars: { label: string; value: number; text: string; system?: System }[] };
}

/** What each system is, for the report's legend. */
export interface SystemInfo {
  system: System;
  label: string;
  description: string;
}

/** Everything one `npm run bench` measured. */
export interface BenchReport {
  date: string;
  machine: string;
  settings: string;
  micro: MicroResult[];
  rows: ScenarioRow[];
  systems: SystemInfo[];
  ratios: Record<string, number>;
  targets: TargetCheck[];
  sections: ReportSection[];
}

/** `12,345/s`. */
export function rate(n: number): string {
  return `${Math.round(n).toLocaleString('en-US')}/s`;
}

/** Microseconds shown as µs below 1 ms, as ms above. */
export function latency(us: number): string {
  return us < 1000 ? `${Math.round(us)} µs` : `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
}

/** `12.3x`, `1.23x`, `0.012x` (two significant digits below 0.1); `-` when not finite. */
export function times(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (x > 0 && x < 0.1) return `${Number(x.toPrecision(2))}x`;
  return `${x.toFixed(x >= 10 ? 1 : 2)}x`;
}

const cpuNumber = (us: number): string => us.toFixed(us < 10 ? 2 : 1);

/** `12.3 µs`: CPU per call. */
export function cpuUs(us: number): string {
  return `${cpuNumber(us)} µs`;
}

/** The lower middle of the values (sorted here); NaN for none. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
}

/** Median and range of the values. */
export function spread(values: number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** `±4%`: half the range over the median; empty for one round. */
export function plusMinus(s: Spread, rounds: number): string {
  if (rounds < 2 || !(s.median > 0)) return '';
  return ` ±${Math.round((50 * (s.max - s.min)) / s.median)}%`;
}

/**
 * The round with the median total CPU per call (the lower middle one for an even count), so that
 * client + server = total holds for the figures shown.
 */
export function medianCpu(rounds: CpuPerCall[]): CpuPerCall {
  const sorted = [...rounds].sort((a, b) => a.total - b.total);
  const m = sorted[Math.floor((sorted.length - 1) / 2)];
  if (m === undefined) throw new Error('no rounds');
  return m;
}

/** One system's rounds summarised. */
export function summarize(label: string, rounds: RoundResult[]): SystemResult {
  if (rounds.length === 0) throw new Error('no rounds');
  const of = (f: (r: RoundResult) => number): Spread => spread(rounds.map(f));
  const result: SystemResult = {
    label,
    rounds,
    callsPerSec: of((r) => r.load.callsPerSec),
    p50Us: of((r) => r.load.p50Us),
    p99Us: of((r) => r.load.p99Us),
    cpuClient: of((r) => r.cpu.client),
    cpuServer: of((r) => r.cpu.server),
    cpuTotal: of((r) => r.cpu.total),
    errors: rounds.reduce((n, r) => n + r.load.errors, 0),
  };
  if (rounds.every((r) => r.cpu.serverExtra !== undefined)) result.cpuServerExtra = of((r) => r.cpu.serverExtra!);
  const firstError = rounds.find((r) => r.load.firstError !== undefined)?.load.firstError;
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

/** A per-round figure the ratios are taken of. */
export type Metric = 'callsPerSec' | 'p50Us' | 'p99Us' | 'cpuTotal';

const metricOf = (r: RoundResult, m: Metric): number => (m === 'cpuTotal' ? r.cpu.total : r.load[m]);

/**
 * `a`'s figure over `b`'s in each round both ran (interleaved rounds: both met the same machine load),
 * sorted; empty when they share no round.
 */
export function sameRoundRatios(a: SystemResult | undefined, b: SystemResult | undefined, m: Metric): number[] {
  if (a === undefined || b === undefined) return [];
  return a.rounds
    .flatMap((x) => {
      const y = b.rounds.find((r) => r.round === x.round);
      return y === undefined || metricOf(y, m) === 0 ? [] : [metricOf(x, m) / metricOf(y, m)];
    })
    .sort((p, q) => p - q);
}

/** The median of {@link sameRoundRatios}; NaN when they share no round. */
export function sameRoundRatio(a: SystemResult | undefined, b: SystemResult | undefined, m: Metric): number {
  return median(sameRoundRatios(a, b, m));
}

function targetValue(t: TargetCheck): string {
  if (t.unit === 'ms') return `${t.value.toFixed(2)} ms`;
  if (t.unit === 'N') return `${t.value.toFixed(2)}N`;
  if (t.unit === 'MiB') return `${t.value.toFixed(1)} MiB`;
  if (t.unit === 'elements') return `${t.value} elements`;
  return times(t.value);
}

/** The systems of a row in report order: those that ran, then those skipped. */
function rowSystems(row: ScenarioRow): System[] {
  return SYSTEMS.filter((s) => row.results[s] !== undefined);
}

/** Whether a row compares systems (then it gets a row per system) or measures avrpc alone. */
const isComparison = (row: ScenarioRow): boolean => rowSystems(row).length + row.skipped.length > 1;

const COMPARISON_HEADER = [
  'system',
  'calls/s',
  'p50',
  'p99',
  'CPU µs/call: client',
  'server',
  'total',
  'avrpc / it: calls/s',
  'p50',
  'p99',
  'CPU/call',
];

/** The cells of one system's line in a comparison table (both renderings). */
function comparisonCells(row: ScenarioRow, s: System): string[] {
  const r = row.results[s]!;
  const n = r.rounds.length;
  const avrpc = row.results.avrpc;
  const ratio = (m: Metric) => (s === 'avrpc' ? '' : times(sameRoundRatio(avrpc, r, m)));
  const errors = r.errors > 0 ? ` (${r.errors} errors)` : '';
  return [
    r.label,
    `${rate(r.callsPerSec.median)}${plusMinus(r.callsPerSec, n)}${errors}`,
    `${latency(r.p50Us.median)}${plusMinus(r.p50Us, n)}`,
    `${latency(r.p99Us.median)}${plusMinus(r.p99Us, n)}`,
    `${cpuNumber(r.cpuClient.median)}${plusMinus(r.cpuClient, n)}`,
    `${cpuNumber(r.cpuServer.median)}${plusMinus(r.cpuServer, n)}${r.cpuServerExtra === undefined ? '' : ` (helper ${cpuNumber(r.cpuServerExtra.median)})`}`,
    `${cpuNumber(r.cpuTotal.median)}${plusMinus(r.cpuTotal, n)}`,
    ratio('callsPerSec'),
    ratio('p50Us'),
    ratio('p99Us'),
    ratio('cpuTotal'),
  ];
}

const SINGLE_HEADER = ['scenario', 'calls/s', 'p50', 'p99', 'CPU µs/call: client', 'server', 'total', 'note'];

function singleCells(row: ScenarioRow): string[] {
  const r = row.results.avrpc!;
  const n = r.rounds.length;
  const errors = r.errors > 0 ? ` (${r.errors} errors)` : '';
  return [
    row.title,
    `${rate(r.callsPerSec.median)}${plusMinus(r.callsPerSec, n)}${errors}`,
    `${latency(r.p50Us.median)}${plusMinus(r.p50Us, n)}`,
    `${latency(r.p99Us.median)}${plusMinus(r.p99Us, n)}`,
    `${cpuNumber(r.cpuClient.median)}${plusMinus(r.cpuClient, n)}`,
    `${cpuNumber(r.cpuServer.median)}${plusMinus(r.cpuServer, n)}`,
    `${cpuNumber(r.cpuTotal.median)}${plusMinus(r.cpuTotal, n)}`,
    row.note ?? '',
  ];
}

const mdRow = (cells: string[]): string => `| ${cells.join(' | ')} |`;
const mdTable = (header: string[], rows: string[][]): string[] => [
  mdRow(header),
  `|${header.map(() => '---').join('|')}|`,
  ...rows.map(mdRow),
];

/** The start and end markers of the summary in latest.md: README.md quotes what lies between. */
export const SUMMARY_START = '<!-- summary:start -->';
export const SUMMARY_END = '<!-- summary:end -->';

/** The part README.md quotes: the comparisons, the avrpc-only scenarios and the targets. */
export function markdownSummary(report: BenchReport): string {
  const lines: string[] = [`Measured ${report.date} on ${report.machine}. ${report.settings}`, ''];
  lines.push(
    'Each figure is the median over the rounds, ± half its range over the median. CPU per call: `process.cpuUsage()` (user + system, ' +
      'all threads) of each process over the measured window, divided by the calls the client completed in it; server includes the ' +
      "helper processes a system needs (NATS's broker, whose share is in parentheses).",
    '',
  );
  for (const row of report.rows.filter(isComparison)) {
    lines.push(`**${row.title}** (ratios: avrpc's figure over the system's, median of same-round ratios):`, '');
    lines.push(
      ...mdTable(
        COMPARISON_HEADER,
        rowSystems(row).map((s) => comparisonCells(row, s)),
      ),
      '',
    );
    if (row.skipped.length > 0) lines.push(`Not run: ${row.skipped.map((k) => `${k.label} (${k.reason})`).join('; ')}.`, '');
    if (row.note !== undefined) lines.push(row.note, '');
  }
  const single = report.rows.filter((r) => !isComparison(r) && r.results.avrpc !== undefined);
  if (single.length > 0) lines.push('**avrpc alone:**', '', ...mdTable(SINGLE_HEADER, single.map(singleCells)), '');
  lines.push('**Targets:**', '');
  lines.push(
    ...mdTable(
      ['target', 'measured', 'limit', 'met'],
      report.targets.map((t) => [t.what, targetValue(t), t.limit, t.ok ? 'met' : 'MISSED']),
    ),
  );
  lines.push('');
  return lines.join('\n');
}

/** bench/results/latest.md's body: the summary (between its markers), what each system is, the other scenarios, micro benchmarks. */
export function markdown(report: BenchReport): string {
  const lines: string[] = [SUMMARY_START, markdownSummary(report), SUMMARY_END, ''];
  lines.push('Chart: [latest.svg](latest.svg).', '');
  if (report.systems.length > 0) {
    lines.push('What each system is:', '');
    for (const s of report.systems) lines.push(`- **${s.label}** (\`${s.system}\`): ${s.description}`);
    lines.push('');
  }
  for (const sec of report.sections) lines.push(`${sec.title}:`, '', ...mdTable(sec.header, sec.rows), '', sec.note, '');
  if (report.micro.length > 0) {
    lines.push('Micro benchmarks (benchmark.js, one process):', '');
    lines.push(
      ...mdTable(
        ['case', 'ops/s'],
        report.micro.map((m) => [m.name, Math.round(m.opsPerSec).toLocaleString('en-US')]),
      ),
      '',
    );
  }
  return lines.join('\n');
}

/** Left-aligned first column, the others right-aligned, under a header. */
function textTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** The plain-text tables printed at the end of a run, each with its header. */
export function consoleTable(report: BenchReport): string {
  const out: string[] = [];
  for (const row of report.rows.filter(isComparison)) {
    out.push(`${row.title} (medians over the rounds; avrpc / it: same-round ratios)`);
    out.push(
      ...textTable(
        COMPARISON_HEADER,
        rowSystems(row).map((s) => comparisonCells(row, s)),
      ),
    );
    for (const k of row.skipped) out.push(`skipped: ${k.label}: ${k.reason}`);
    out.push('');
  }
  const single = report.rows.filter((r) => !isComparison(r) && r.results.avrpc !== undefined);
  if (single.length > 0) out.push('avrpc alone (medians over the rounds)', ...textTable(SINGLE_HEADER, single.map(singleCells)), '');
  for (const sec of report.sections) out.push(sec.title, ...textTable(sec.header, sec.rows), '');
  out.push(
    ...textTable(
      ['target', 'measured', 'limit', 'met'],
      report.targets.map((t) => [t.what, targetValue(t), t.limit, t.ok ? 'met' : 'MISSED']),
    ),
  );
  return out.join('\n');
}
