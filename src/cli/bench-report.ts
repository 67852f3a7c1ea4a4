/**
 * What `avrpc bench` prints: the report as text (default), one JSON object, CSV (a header and one
 * row, so that runs append to one file) or Markdown tables (for a pull request or a wiki).
 */
import type { LatencySummary } from './bench-load.js';

/** The output formats of `bench --format`. */
export const BENCH_FORMATS = ['text', 'json', 'csv', 'markdown'] as const;
/** One of {@link BENCH_FORMATS}. */
export type BenchFormat = (typeof BENCH_FORMATS)[number];

/** What a run measured; `--format json` prints exactly this. */
export interface BenchReport {
  message: string;
  concurrency: number;
  connections: number;
  /** The rate asked for with `--rps` (calls started per second), or null for a closed loop. */
  rps: number | null;
  /** How many different requests were cycled through. */
  requests: number;
  calls: number;
  ok: number;
  errors: Record<string, number>;
  durationMs: number;
  callsPerSec: number;
  /**
   * Latency percentiles of all calls (ok or not), in microseconds: with `--rps`, from the time each
   * call was due (corrected for coordinated omission), else from its send.
   */
  latencyUs: LatencySummary;
  /** From each call's actual send (equal to `latencyUs` without `--rps`). */
  serviceUs: LatencySummary;
  /** Latency histogram: calls whose latency is at most `leUs` and above the previous bucket's bound. */
  histogram: Array<{ leUs: number; count: number }>;
}

/** `report` in `format`, ending with a newline. */
export function formatBench(report: BenchReport, format: BenchFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(report)}\n`;
    case 'csv':
      return formatCsv(report);
    case 'markdown':
      return formatMarkdown(report);
    default:
      return formatText(report);
  }
}

const PERCENTILES = ['min', 'mean', 'p50', 'p90', 'p99', 'p999', 'max'] as const;

function errorList(r: BenchReport, sep: string): string {
  return Object.entries(r.errors)
    .map(([k, v]) => `${k} ${v}`)
    .join(sep);
}

function formatCsv(r: BenchReport): string {
  const head = ['message', 'concurrency', 'connections', 'rps', 'requests', 'calls', 'ok', 'errors', 'duration_ms', 'calls_per_sec'];
  const row: Array<string | number> = [
    r.message,
    r.concurrency,
    r.connections,
    r.rps ?? '',
    r.requests,
    r.calls,
    r.ok,
    errorList(r, ';'),
    r.durationMs,
    r.callsPerSec,
  ];
  for (const [prefix, l] of [
    ['latency', r.latencyUs],
    ['service', r.serviceUs],
  ] as const) {
    for (const p of PERCENTILES) {
      head.push(`${prefix}_${p}_us`);
      row.push(l[p]);
    }
  }
  return `${head.join(',')}\n${row.map(csvField).join(',')}\n`;
}

/** RFC 4180: a field with a comma, quote or newline is quoted, its quotes doubled. */
function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function formatMarkdown(r: BenchReport): string {
  const ms = (us: number): string => (us / 1000).toFixed(3);
  const cell = (s: string): string => s.replace(/\|/g, '\\|');
  const lines = [
    `### bench ${cell(r.message)}`,
    '',
    '| calls | ok | errors | duration (s) | calls/s | in flight | connections | target rps |',
    '|---:|---:|---|---:|---:|---:|---:|---:|',
    `| ${r.calls} | ${r.ok} | ${errorList(r, ', ') || 'none'} | ${(r.durationMs / 1000).toFixed(2)} | ${r.callsPerSec} | ${r.concurrency} | ${r.connections} | ${r.rps ?? '-'} |`,
    '',
    `| latency (ms) | ${PERCENTILES.join(' | ')} |`,
    `|---|${PERCENTILES.map(() => '---:').join('|')}|`,
    `| ${r.rps === null ? 'from send' : 'from due time'} | ${PERCENTILES.map((p) => ms(r.latencyUs[p])).join(' | ')} |`,
  ];
  if (r.rps !== null) lines.push(`| service (from send) | ${PERCENTILES.map((p) => ms(r.serviceUs[p])).join(' | ')} |`);
  lines.push('', '| <= ms | calls |', '|---:|---:|');
  for (const b of r.histogram) lines.push(`| ${ms(b.leUs)} | ${b.count} |`);
  return `${lines.join('\n')}\n`;
}

function formatText(r: BenchReport): string {
  const ms = (us: number): string => (us / 1000).toFixed(us < 10_000 ? 3 : 1).padStart(9);
  const block = (title: string, l: LatencySummary): string[] => [
    `  ${title}`,
    `    min ${ms(l.min)}   mean ${ms(l.mean)}`,
    `    p50 ${ms(l.p50)}   p90  ${ms(l.p90)}`,
    `    p99 ${ms(l.p99)}   p99.9${ms(l.p999)}   max ${ms(l.max)}`,
  ];
  const rate = r.rps === null ? '' : ` (target ${r.rps} calls/s)`;
  const lines = [
    `${r.message}: ${r.calls} calls in ${(r.durationMs / 1000).toFixed(2)} s, ${r.concurrency} in flight on ${r.connections} connection(s)` +
      (r.requests > 1 ? `, ${r.requests} requests cycled` : ''),
    `  ${r.callsPerSec} calls/s${rate}, ${r.ok} ok`,
    '',
    ...(r.rps === null
      ? block('latency (ms)', r.latencyUs)
      : [
          ...block("latency (ms) from each call's due time (corrected for coordinated omission)", r.latencyUs),
          ...block('service time (ms) from each actual send', r.serviceUs),
        ]),
    '',
    '  histogram (ms, calls)',
  ];
  const top = Math.max(1, ...r.histogram.map((b) => b.count));
  for (const b of r.histogram)
    lines.push(`    <= ${ms(b.leUs)}  ${String(b.count).padStart(8)}  ${'#'.repeat(Math.round((b.count / top) * 40))}`);
  const errs = errorList(r, ', ');
  lines.push('', errs === '' ? '  errors: none' : `  errors by code: ${errs}`);
  return `${lines.join('\n')}\n`;
}
