/**
 * bench/results/latest.svg, drawn by hand (no charting package): for each scenario that compares
 * systems, calls/s on a linear scale, and latency (p50 with p99 behind it) and CPU per call on log scales (grpc-js's
 * milliseconds beside avrpc's microseconds would leave avrpc's bars slivers on a linear one); then one
 * chart of avrpc alone across its other scenarios, and one per section.
 */
import { cpuUs, latency, rate, SYSTEMS, type BenchReport, type ScenarioRow, type System, type SystemResult } from './report.js';

const COLOR: Record<System, string> = {
  avrpc: '#2b7bb9',
  floor: '#7f7f7f',
  'floor-early': '#b0b0b0',
  'floor-codec': '#d0d0d0',
  moleculer: '#9bbb59',
  avsc: '#f79646',
  http: '#8064a2',
  nats: '#4bacc6',
  thrift: '#c4a000',
  grpc: '#c0504d',
  connect: '#d36aa5',
};

const BAR_H = 14;
const LABEL_W = 330;
const PLOT_W = 440;
const WIDTH = LABEL_W + PLOT_W + 170;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

interface Bar {
  label: string;
  value: number;
  text: string;
  system: System;
  /** A second, larger value drawn behind the first in a lighter shade (p99 behind p50). */
  upTo?: number;
}

/** A decade tick in µs: `10 µs`, `1 ms`, `1 s`. */
function tickUs(us: number): string {
  if (us >= 1e6) return `${Math.round(us / 1e6)} s`;
  if (us >= 1e3) return `${Math.round(us / 1e3)} ms`;
  return us >= 1 ? `${Math.round(us)} µs` : `${us} µs`;
}

/** A scale from values to bar widths in pixels (tenths, so that different values differ). */
type Scale = { width(v: number): number; ticks: { x: number; text: string }[] };

function linearScale(max: number): Scale {
  const top = Math.max(1e-9, max);
  return { width: (v) => Math.max(0.5, Math.round((v / top) * PLOT_W * 10) / 10), ticks: [] };
}

/** Decades from below the smallest value to above the largest; a bar's length is its log distance from the lowest decade. */
function logScale(values: number[], fmt: (v: number) => string): Scale {
  const positive = values.filter((v) => v > 0);
  const lo = positive.length === 0 ? 1 : 10 ** Math.floor(Math.log10(Math.min(...positive)) - 1e-9);
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...positive, lo * 10) * 1.0001));
  const span = Math.log10(hi) - Math.log10(lo);
  const x = (v: number) => ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / span) * PLOT_W;
  const ticks: { x: number; text: string }[] = [];
  for (let d = lo; d <= hi * 1.0001; d *= 10) ticks.push({ x: x(d), text: fmt(d) });
  return { width: (v) => Math.max(0.5, Math.round(x(v) * 10) / 10), ticks };
}

/** Draws the charts top to bottom, keeping the running height. */
class Canvas {
  readonly parts: string[] = [];
  y = 30;

  title(text: string, size = 13): void {
    this.y += 20;
    this.parts.push(`<text x="10" y="${this.y}" font-size="${size}" font-weight="bold">${esc(text)}</text>`);
    this.y += 8;
  }

  chart(title: string | undefined, bars: Bar[], scale: Scale): void {
    if (title !== undefined) this.title(title, 12);
    const top = this.y;
    const bottom = top + bars.length * BAR_H;
    // The decade lines first, so that the bars cover them.
    for (const t of scale.ticks) {
      const x = LABEL_W + Math.round(t.x * 10) / 10;
      this.parts.push(`<line x1="${x}" y1="${top - 2}" x2="${x}" y2="${bottom}" stroke="#ccc" stroke-dasharray="2,2"/>`);
      this.parts.push(
        `<text class="tick" x="${x}" y="${bottom + 10}" font-size="9" text-anchor="middle" fill="#666">${esc(t.text)}</text>`,
      );
    }
    for (const b of bars) {
      const w = scale.width(b.value);
      const end = b.upTo === undefined ? w : Math.max(w, scale.width(b.upTo));
      this.parts.push(`<text x="10" y="${this.y + BAR_H - 4}" font-size="10">${esc(b.label)}</text>`);
      if (b.upTo !== undefined)
        this.parts.push(
          `<rect class="upto" x="${LABEL_W}" y="${this.y}" width="${end}" height="${BAR_H - 2}" fill="${COLOR[b.system]}" fill-opacity="0.35"/>`,
        );
      this.parts.push(`<rect class="bar" x="${LABEL_W}" y="${this.y}" width="${w}" height="${BAR_H - 2}" fill="${COLOR[b.system]}"/>`);
      this.parts.push(`<text x="${LABEL_W + end + 4}" y="${this.y + BAR_H - 4}" font-size="10">${esc(b.text)}</text>`);
      this.y += BAR_H;
    }
    this.y += scale.ticks.length > 0 ? 16 : 6;
  }
}

function comparisonCharts(c: Canvas, row: ScenarioRow): void {
  const present = SYSTEMS.filter((s) => row.results[s] !== undefined).map((s) => [s, row.results[s]!] as const);
  const bars = (value: (r: SystemResult) => number, fmt: (v: number) => string): Bar[] =>
    present.map(([system, r]) => ({ label: r.label, value: value(r), text: fmt(value(r)), system }));
  c.title(row.title);
  const calls = bars((r) => r.callsPerSec.median, rate);
  c.chart('calls/s, median (higher is better; linear)', calls, linearScale(Math.max(...calls.map((b) => b.value))));
  const lat: Bar[] = present.map(([system, r]) => ({
    label: r.label,
    value: r.p50Us.median,
    upTo: r.p99Us.median,
    text: `${latency(r.p50Us.median)} / ${latency(r.p99Us.median)}`,
    system,
  }));
  const latValues = lat.flatMap((x) => [x.value, x.upTo!]);
  c.chart('latency, p50 (dark) / p99 (light), median (lower is better; log scale)', lat, logScale(latValues, tickUs));
  const cpu = bars((r) => r.cpuTotal.median, cpuUs);
  const cpuValues = cpu.map((x) => x.value);
  c.chart('CPU per call, client + server, median (lower is better; log scale)', cpu, logScale(cpuValues, tickUs));
}

/** The SVG document. */
export function svg(report: BenchReport): string {
  const c = new Canvas();
  c.parts.push(`<text x="10" y="20" font-size="14" font-weight="bold">avrpc benchmark, ${esc(report.date)}</text>`);
  c.parts.push(`<text x="10" y="36" font-size="10">${esc(report.machine)}</text>`);
  c.y = 40;
  const comparisons = report.rows.filter((r) => Object.keys(r.results).length + r.skipped.length > 1);
  for (const row of comparisons) comparisonCharts(c, row);
  const alone = report.rows.filter((r) => !comparisons.includes(r) && r.results.avrpc !== undefined);
  if (alone.length > 0) {
    c.title('avrpc alone');
    const bars = alone.map((r) => ({
      label: r.title,
      value: r.results.avrpc!.callsPerSec.median,
      text: rate(r.results.avrpc!.callsPerSec.median),
      system: 'avrpc' as System,
    }));
    c.chart('calls/s, median (higher is better; linear)', bars, linearScale(Math.max(...bars.map((b) => b.value))));
  }
  for (const sec of report.sections) {
    const bars = sec.chart.bars.map((b) => ({ ...b, system: b.system ?? ('avrpc' as System) }));
    c.title(sec.chart.title);
    c.chart(undefined, bars, linearScale(Math.max(...bars.map((b) => b.value))));
  }
  c.y += 10;
  const legend = SYSTEMS.filter((s) => report.rows.some((r) => r.results[s] !== undefined));
  legend.forEach((s, i) => {
    const x = 10 + (i % 6) * 150;
    const y = c.y + Math.floor(i / 6) * 16;
    const label = report.systems.find((x) => x.system === s)?.label ?? s;
    c.parts.push(
      `<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${COLOR[s]}"/><text x="${x + 16}" y="${y}" font-size="11">${esc(label)}</text>`,
    );
  });
  const height = c.y + Math.ceil(legend.length / 6) * 16 + 4;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${c.parts.join('\n')}\n</svg>\n`
  );
}
