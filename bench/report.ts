/**
 * Renders benchmark results: the console table, bench/results/latest.md and a hand-built SVG bar chart
 * of calls/s, p99 and CPU per call per scenario (no charting package).
 */
import type { LoadResult } from './load.js';
import type { MicroResult } from './micro.js';

/** The systems compared end to end. */
export type System = 'avrpc' | 'grpc' | 'raw' | 'rawBatched';

/** CPU time per completed call over the measured window, in µs: each side, and their sum. */
export interface CpuPerCall {
  client: number;
  /** All the scenario's server processes together. */
  server: number;
  total: number;
}

/** One system's figures in one scenario, over its rounds. */
export interface SystemResult extends LoadResult {
  /** The load figures above are the round with the most calls/s; these are each round's, in round order. */
  callsPerSecRounds: number[];
  /** CPU per call of the round with the median total (steadier than the best round on a busy machine). */
  cpuUsPerCall: CpuPerCall;
  /** Each round's CPU per call, in round order: the spread behind `cpuUsPerCall`. */
  cpuRounds: CpuPerCall[];
}

/** The results of one scenario row: a measurement per system that ran it. */
export interface ScenarioRow {
  id: string;
  title: string;
  results: Partial<Record<System, SystemResult>>;
  /** Free text shown after the ratios (e.g. the slow server's share of calls). */
  note?: string;
}

/** A target of an issue, checked on the measured figures. */
export interface TargetCheck {
  what: string;
  value: number;
  limit: string;
  ok: boolean;
  /** How `value` reads: a ratio (default), milliseconds, a multiple of the payload size N, MiB, or a count of elements. */
  unit?: 'x' | 'ms' | 'N' | 'MiB' | 'elements';
}

function targetValue(t: TargetCheck): string {
  if (t.unit === 'ms') return `${t.value.toFixed(2)} ms`;
  if (t.unit === 'N') return `${t.value.toFixed(2)}N`;
  if (t.unit === 'MiB') return `${t.value.toFixed(1)} MiB`;
  if (t.unit === 'elements') return `${t.value} elements`;
  return times(t.value);
}

/**
 * A scenario of another issue (worker offload, large messages) with its own columns: a table in the
 * Markdown, and one bar per row in the SVG.
 */
export interface ReportSection {
  title: string;
  /** Says how it was measured, under the table. */
  note: string;
  header: string[];
  rows: string[][];
  chart: { title: string; bars: { label: string; value: number; text: string; system?: System }[] };
}

/** Everything one `npm run bench` measured. */
export interface BenchReport {
  date: string;
  machine: string;
  settings: string;
  micro: MicroResult[];
  rows: ScenarioRow[];
  ratios: Record<string, number>;
  targets: TargetCheck[];
  sections: ReportSection[];
}

const SYSTEMS: readonly System[] = ['avrpc', 'grpc', 'raw', 'rawBatched'];
const LABEL: Record<System, string> = { avrpc: 'avrpc', grpc: 'grpc-js', raw: 'raw floor', rawBatched: 'raw batched' };
const COLOR: Record<System, string> = { avrpc: '#2b7bb9', grpc: '#c0504d', raw: '#7f7f7f', rawBatched: '#bfbfbf' };

/** `12,345/s` style. */
export function rate(n: number): string {
  return `${Math.round(n).toLocaleString('en-US')}/s`;
}

/** Microseconds shown as µs below 1 ms, as ms above. */
export function latency(us: number): string {
  return us < 1000 ? `${Math.round(us)} µs` : `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
}

/** `1.23x`. */
export function times(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(x >= 10 ? 1 : 2)}x` : '-';
}

const cpuNumber = (us: number): string => us.toFixed(us < 10 ? 2 : 1);

/** `12.3 µs`: CPU per call. */
export function cpuUs(us: number): string {
  return `${cpuNumber(us)} µs`;
}

/** `4.10 + 5.00 = 9.10 µs (8.80-9.60)`: client + server = total of the median round, and the range of the rounds' totals. */
function cpuCell(r: SystemResult | undefined): string {
  if (r === undefined) return '-';
  const c = r.cpuUsPerCall;
  const totals = r.cpuRounds.map((x) => x.total);
  const range = totals.length > 1 ? ` (${cpuNumber(Math.min(...totals))}-${cpuNumber(Math.max(...totals))})` : '';
  return `${cpuNumber(c.client)} + ${cpuNumber(c.server)} = ${cpuUs(c.total)}${range}`;
}

/**
 * The median of the rounds by total CPU per call (the lower middle one for an even count), so that
 * client + server = total holds for the figure shown.
 */
export function medianCpu(rounds: CpuPerCall[]): CpuPerCall {
  const sorted = [...rounds].sort((a, b) => a.total - b.total);
  const m = sorted[Math.floor((sorted.length - 1) / 2)];
  if (m === undefined) throw new Error('no rounds');
  return m;
}

function cell(r: LoadResult | undefined): string {
  if (r === undefined) return '-';
  const errors = r.errors > 0 ? `, ${r.errors} errors` : '';
  return `${rate(r.callsPerSec)}, p50 ${latency(r.p50Us)}, p99 ${latency(r.p99Us)}${errors}`;
}

/** The Markdown report (also what README.md shows). */
export function markdown(report: BenchReport): string {
  const lines: string[] = [];
  lines.push(`Measured ${report.date} on ${report.machine}. ${report.settings}`);
  lines.push('');
  lines.push('| scenario | avrpc | grpc-js | raw floor | raw batched | ratios |');
  lines.push('|---|---|---|---|---|---|');
  for (const row of report.rows) {
    const ratios = rowRatios(row);
    const r = row.results;
    lines.push(
      `| ${row.title} | ${cell(r.avrpc)} | ${cell(r.grpc)} | ${cell(r.raw)} | ${cell(r.rawBatched)} | ${[ratios, row.note].filter(Boolean).join('; ')} |`,
    );
  }
  lines.push('');
  lines.push("CPU per call, client + server = total (range of the rounds' totals):");
  lines.push('');
  lines.push('| scenario | avrpc | grpc-js | raw floor | raw batched |');
  lines.push('|---|---|---|---|---|');
  for (const row of report.rows) {
    const r = row.results;
    lines.push(`| ${row.title} | ${cpuCell(r.avrpc)} | ${cpuCell(r.grpc)} | ${cpuCell(r.raw)} | ${cpuCell(r.rawBatched)} |`);
  }
  lines.push('');
  lines.push(
    'CPU per call: `process.cpuUsage()` (user + system, all threads) of each process over the measured window, divided by the calls ' +
      'the client completed in it, in µs; server is every server process of the scenario together. The round with the median total is shown.',
  );
  lines.push('');
  lines.push(
    "raw floor: length-prefixed, id-multiplexed echo over `net`, one socket write per frame (the floor issue 2's " +
      'targets are set against). raw batched: the same with one write per tick on both sides, as avrpc does; no codec, ' +
      'no handshake, no deadlines: what the kernel and V8 allow at best.',
  );
  lines.push('');
  for (const sec of report.sections) {
    lines.push(`${sec.title}:`);
    lines.push('');
    lines.push(`| ${sec.header.join(' | ')} |`);
    lines.push(`|${sec.header.map(() => '---').join('|')}|`);
    for (const r of sec.rows) lines.push(`| ${r.join(' | ')} |`);
    lines.push('');
    lines.push(sec.note);
    lines.push('');
  }
  lines.push('Targets:');
  lines.push('');
  lines.push('| target | measured | limit | met |');
  lines.push('|---|---|---|---|');
  for (const t of report.targets) lines.push(`| ${t.what} | ${targetValue(t)} | ${t.limit} | ${t.ok ? 'yes' : 'no'} |`);
  lines.push('');
  lines.push('Micro benchmarks (benchmark.js, one process):');
  lines.push('');
  lines.push('| case | ops/s |');
  lines.push('|---|---|');
  for (const m of report.micro) lines.push(`| ${m.name} | ${Math.round(m.opsPerSec).toLocaleString('en-US')} |`);
  lines.push('');
  return lines.join('\n');
}

/** The ratios shown for one row: avrpc against the floor and grpc-js. */
function rowRatios(row: ScenarioRow): string {
  const { avrpc, grpc, raw, rawBatched } = row.results;
  if (avrpc === undefined) return '';
  const parts: string[] = [];
  const cpu = (other: SystemResult): string => times(avrpc.cpuUsPerCall.total / other.cpuUsPerCall.total);
  if (raw !== undefined) {
    parts.push(`calls/s ${times(avrpc.callsPerSec / raw.callsPerSec)} floor`);
    parts.push(`p50 ${times(avrpc.p50Us / raw.p50Us)} floor`);
    parts.push(`p99 ${times(avrpc.p99Us / raw.p99Us)} floor`);
    parts.push(`CPU/call ${cpu(raw)} floor`);
  }
  if (grpc !== undefined) {
    parts.push(`calls/s ${times(avrpc.callsPerSec / grpc.callsPerSec)} grpc-js`);
    parts.push(`CPU/call ${cpu(grpc)} grpc-js`);
  }
  if (rawBatched !== undefined) {
    parts.push(`calls/s ${times(avrpc.callsPerSec / rawBatched.callsPerSec)} raw batched`);
    parts.push(`CPU/call ${cpu(rawBatched)} raw batched`);
  }
  return parts.join(', ');
}

/** The plain-text table printed at the end of a run. */
export function consoleTable(report: BenchReport): string {
  const out: string[] = [];
  const w = Math.max(...report.rows.map((r) => r.title.length), 8);
  const n = (x: number) => x.toFixed(2).padStart(7);
  out.push(
    `${'scenario'.padEnd(w)}  ${'system'.padEnd(11)}  ${'calls/s'.padStart(9)}  ${'p50'.padStart(9)}  ${'p99'.padStart(9)}  errors` +
      `  ${'CPU/call µs: client'.padStart(19)}  ${'server'.padStart(7)}  ${'total'.padStart(7)}  ${'rounds min-max'.padStart(15)}`,
  );
  for (const row of report.rows) {
    for (const s of SYSTEMS) {
      const r = row.results[s];
      if (r === undefined) continue;
      const c = r.cpuUsPerCall;
      const totals = r.cpuRounds.map((x) => x.total);
      out.push(
        `${row.title.padEnd(w)}  ${LABEL[s].padEnd(11)}  ${Math.round(r.callsPerSec).toString().padStart(9)}  ${latency(r.p50Us).padStart(9)}  ` +
          `${latency(r.p99Us).padStart(9)}  ${String(r.errors).padStart(6)}  ${n(c.client).padStart(19)}  ${n(c.server)}  ${n(c.total)}  ` +
          `${`${Math.min(...totals).toFixed(2)}-${Math.max(...totals).toFixed(2)}`.padStart(15)}`,
      );
    }
    const extra = [rowRatios(row), row.note].filter(Boolean).join('; ');
    if (extra !== '') out.push(`${''.padEnd(w)}  ${extra}`);
  }
  out.push('', ...roundsTable(report));
  for (const sec of report.sections) {
    out.push('');
    out.push(`${sec.title}:`);
    for (const r of sec.rows) out.push(`  ${r.join('  |  ')}`);
  }
  out.push('');
  for (const t of report.targets) out.push(`${t.ok ? 'MET   ' : 'MISSED'} ${t.what}: ${targetValue(t)} (${t.limit})`);
  return out.join('\n');
}

/**
 * Each round's CPU per call of `system` divided by the raw floor's in the same round (rounds are
 * interleaved, so both met the same machine load), sorted; empty without the row or its floor.
 */
export function cpuVsFloorRounds(row: ScenarioRow | undefined, system: System): number[] {
  const r = row?.results[system];
  const floor = row?.results.raw;
  if (r === undefined || floor === undefined || floor.cpuRounds.length !== r.cpuRounds.length) return [];
  return r.cpuRounds.map((x, i) => x.total / floor.cpuRounds[i]!.total).sort((a, b) => a - b);
}

const lowerMedian = (sorted: number[]): number => sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;

/** Medians and ranges over the rounds, per scenario and system: what to compare between two runs on a busy machine. */
function roundsTable(report: BenchReport): string[] {
  const range = (sorted: number[], digits: number) => `${sorted[0]!.toFixed(digits)}-${sorted[sorted.length - 1]!.toFixed(digits)}`;
  const out = [
    `${'over the rounds'.padEnd(24)}  ${'calls/s median'.padStart(14)}  ${'min-max'.padStart(17)}  ${'CPU/call µs median'.padStart(18)}  ` +
      `${'min-max'.padStart(13)}  ${'CPU/call vs floor, same round: median'.padStart(37)}  ${'min-max'.padStart(11)}`,
  ];
  for (const row of report.rows) {
    for (const s of SYSTEMS) {
      const r = row.results[s];
      if (r === undefined) continue;
      const rates = [...r.callsPerSecRounds].sort((a, b) => a - b);
      const totals = r.cpuRounds.map((x) => x.total).sort((a, b) => a - b);
      const vsFloor = s === 'raw' ? [] : cpuVsFloorRounds(row, s);
      out.push(
        `${`${row.id}/${s}`.padEnd(24)}  ${lowerMedian(rates).toFixed(0).padStart(14)}  ${range(rates, 0).padStart(17)}  ` +
          `${r.cpuUsPerCall.total.toFixed(2).padStart(18)}  ${range(totals, 2).padStart(13)}` +
          (vsFloor.length === 0 ? '' : `  ${times(lowerMedian(vsFloor)).padStart(37)}  ${range(vsFloor, 2).padStart(11)}`),
      );
    }
  }
  return out;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Three horizontal bar charts, one above the other: calls/s, p99 latency and CPU per call, per
 * scenario and system. Each chart has one scale for all its bars, so that scenarios compare with
 * each other (least-connections against round-robin is the point of those rows); a bar scaled within
 * its own scenario would fill the width whenever one system ran it. Every bar carries its value.
 */
export function svg(report: BenchReport): string {
  const barH = 14;
  const gap = 10;
  const labelW = 370;
  const plotW = 420;
  const width = labelW + plotW + 150;
  const parts: string[] = [];
  // Tenths of a pixel: on one scale a 1-in-flight bar is a few pixels, and different values must differ.
  const barW = (v: number, max: number): number => Math.max(0.5, Math.round((v / max) * plotW * 10) / 10);
  let y = 30;
  parts.push(`<text x="10" y="20" font-size="14" font-weight="bold">avrpc benchmark, ${esc(report.date)}, ${esc(report.machine)}</text>`);
  const chart = (title: string, value: (r: SystemResult) => number, fmt: (v: number) => string): void => {
    y += 20;
    parts.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${esc(title)}</text>`);
    y += 8;
    const max = Math.max(
      1e-9,
      ...report.rows.flatMap((row) => SYSTEMS.flatMap((s) => (row.results[s] === undefined ? [] : [value(row.results[s]!)]))),
    );
    for (const row of report.rows) {
      const systems = SYSTEMS.filter((s) => row.results[s] !== undefined);
      const groupH = systems.length * barH;
      parts.push(`<text x="10" y="${y + groupH / 2 + 4}" font-size="11">${esc(row.title)}</text>`);
      for (const s of systems) {
        const v = value(row.results[s]!);
        const w = barW(v, max);
        parts.push(`<rect class="bar" x="${labelW}" y="${y}" width="${w}" height="${barH - 2}" fill="${COLOR[s]}"/>`);
        parts.push(`<text x="${labelW + w + 4}" y="${y + barH - 4}" font-size="10">${esc(`${LABEL[s]} ${fmt(v)}`)}</text>`);
        y += barH;
      }
      y += gap;
    }
  };
  chart('calls/s (higher is better; one scale for all bars)', (r) => r.callsPerSec, rate);
  chart('p99 latency (lower is better; one scale for all bars)', (r) => r.p99Us, latency);
  chart('CPU per call, client + server (lower is better; one scale for all bars)', (r) => r.cpuUsPerCall.total, cpuUs);
  for (const sec of report.sections) {
    y += 20;
    parts.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${esc(sec.chart.title)}</text>`);
    y += 8;
    const max = Math.max(1e-9, ...sec.chart.bars.map((b) => b.value));
    for (const b of sec.chart.bars) {
      const w = Math.max(1, Math.round((b.value / max) * plotW));
      parts.push(`<text x="10" y="${y + barH - 4}" font-size="11">${esc(b.label)}</text>`);
      parts.push(`<rect class="bar" x="${labelW}" y="${y}" width="${w}" height="${barH - 2}" fill="${COLOR[b.system ?? 'avrpc']}"/>`);
      parts.push(`<text x="${labelW + w + 4}" y="${y + barH - 4}" font-size="10">${esc(b.text)}</text>`);
      y += barH + 2;
    }
  }
  y += 10;
  let x = 10;
  for (const s of SYSTEMS) {
    parts.push(
      `<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${COLOR[s]}"/><text x="${x + 16}" y="${y}" font-size="11">${LABEL[s]}</text>`,
    );
    x += 110;
  }
  y += 12;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`
  );
}
