/**
 * The end-to-end scenarios' ratios and targets: avrpc against the tuned floor and each structured peer
 * at 1 and 64 in flight, and what deadlines with metadata cost. Every ratio is the median of the
 * same-round ratios (rounds are interleaved, so both figures of a ratio met the same machine load).
 */
import { peerIds } from './peers/index.js';
import { sameRoundRatio, type Metric, type ScenarioRow, type System, type TargetCheck } from './report.js';

/** The structured peers: every peer but the floors. */
const structured = peerIds.filter((p) => !p.startsWith('floor'));

const METRIC_NAME: Record<Metric, string> = { callsPerSec: 'calls/s', p50Us: 'p50', p99Us: 'p99', cpuTotal: 'CPU/call' };

function result(rows: ScenarioRow[], id: string, system: System) {
  return rows.find((r) => r.id === id)?.results[system];
}

/** avrpc's ratio to `other` in scenario `id`. */
function vs(rows: ScenarioRow[], id: string, other: System, m: Metric): number {
  return sameRoundRatio(result(rows, id, 'avrpc'), result(rows, id, other), m);
}

/** Named ratios for latest.json: `echo-64 avrpc/floor calls/s` and so on. */
export function benchRatios(rows: ScenarioRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ['echo-1', 'echo-64']) {
    for (const p of peerIds) {
      for (const m of ['callsPerSec', 'p50Us', 'p99Us', 'cpuTotal'] as const) {
        const v = vs(rows, id, p, m);
        if (!Number.isNaN(v)) out[`${id} avrpc/${p} ${METRIC_NAME[m]}`] = v;
      }
    }
  }
  const dm = sameRoundRatio(result(rows, 'echo-64-dm', 'avrpc'), result(rows, 'echo-64', 'avrpc'), 'callsPerSec');
  if (!Number.isNaN(dm)) out['echo-64 with/without deadline and metadata calls/s'] = dm;
  const dmCpu = sameRoundRatio(result(rows, 'echo-64-dm', 'avrpc'), result(rows, 'echo-64', 'avrpc'), 'cpuTotal');
  if (!Number.isNaN(dmCpu)) out['echo-64 with/without deadline and metadata CPU/call'] = dmCpu;
  const lbRate = sameRoundRatio(result(rows, 'lb-lc', 'avrpc'), result(rows, 'lb-rr', 'avrpc'), 'callsPerSec');
  if (!Number.isNaN(lbRate)) out['lb least-connections/round-robin calls/s'] = lbRate;
  const lbP99 = sameRoundRatio(result(rows, 'lb-lc', 'avrpc'), result(rows, 'lb-rr', 'avrpc'), 'p99Us');
  if (!Number.isNaN(lbP99)) out['lb least-connections/round-robin p99'] = lbP99;
  return out;
}

/** The targets, each present only when both of its figures were measured. */
export function benchTargets(rows: ScenarioRow[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  const check = (what: string, value: number, limit: string, ok: (v: number) => boolean): void => {
    if (!Number.isNaN(value)) out.push({ what, value, limit, ok: ok(value) });
  };
  const floor = result(rows, 'echo-64', 'floor')?.label ?? 'the tuned floor';
  check(`64 in flight: avrpc calls/s vs ${floor}`, vs(rows, 'echo-64', 'floor', 'callsPerSec'), '>= 0.65x', (v) => v >= 0.65);
  check(`64 in flight: avrpc CPU per call vs ${floor}`, vs(rows, 'echo-64', 'floor', 'cpuTotal'), '<= 1.7x', (v) => v <= 1.7);
  check(`64 in flight: avrpc p99 vs ${floor}`, vs(rows, 'echo-64', 'floor', 'p99Us'), '<= 1.5x', (v) => v <= 1.5);
  for (const p of structured) {
    const label = result(rows, 'echo-64', p)?.label ?? p;
    // grpc-js keeps its older, higher bar.
    const limit = p === 'grpc' ? 15 : 5;
    check(`64 in flight: avrpc calls/s vs ${label}`, vs(rows, 'echo-64', p, 'callsPerSec'), `>= ${limit}x`, (v) => v >= limit);
  }
  const floor1 = result(rows, 'echo-1', 'floor')?.label ?? 'the tuned floor';
  check(`1 in flight: avrpc p50 vs ${floor1}`, vs(rows, 'echo-1', 'floor', 'p50Us'), '<= 1.05x', (v) => v <= 1.05);
  check(
    '64 in flight: calls/s with a deadline and metadata on every call vs without',
    sameRoundRatio(result(rows, 'echo-64-dm', 'avrpc'), result(rows, 'echo-64', 'avrpc'), 'callsPerSec'),
    '>= 0.9x',
    (v) => v >= 0.9,
  );
  return out;
}
