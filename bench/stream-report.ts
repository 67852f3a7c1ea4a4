/**
 * Issue 10's stream benchmarks in the report: the scenarios `npm run bench` runs (bench/stream.ts), and
 * their tables, ratios and targets from the rounds' runs (best round for elements/s, median round for
 * CPU per element, as for the calls).
 */
import { cpuUs, medianCpu, rate, times, type CpuPerCall, type ReportSection, type System, type TargetCheck } from './report.js';
import type { StreamRun, StreamScenario } from './stream.js';
import type { MemorySummary } from './stream-memory.js';
import { streamWindow } from './payload.js';

/** Elements per server stream and per bidi stream (and calls per unary unit); BENCH_STREAM_ELEMENTS overrides. */
const ELEMENTS = Math.max(1, Math.floor(Number(process.env.BENCH_STREAM_ELEMENTS ?? 200_000)));
/** The slow consumer: elements, its sleep per element (ms) and the blob of each Item (bytes). */
const SLOW = { elements: 2000, sleepMs: 1, blobBytes: 16 * 1024 };
/** The credit window both sides advertise: BENCH_STREAM_WINDOW, else avrpc's default (TransportOptions.maxBufferedElements). */
const WINDOW = streamWindow().maxBufferedElements ?? 64;

/** The stream scenarios, in run order; keys for BENCH_ONLY are `id/label`. */
export const streamScenarios: StreamScenario[] = [
  {
    id: 'stream',
    systems: [
      { label: 'avrpc', system: 'avrpc', kind: 'stream' },
      { label: 'floor', system: 'floor', kind: 'stream' },
      { label: 'grpc', system: 'grpc', kind: 'stream' },
    ],
    elements: ELEMENTS,
    inFlight: 0,
    sleepMs: 0,
    blobBytes: 64,
  },
  {
    id: 'bidi-64',
    systems: [
      { label: 'avrpc', system: 'avrpc', kind: 'bidi' },
      { label: 'avrpc-unary', system: 'avrpc', kind: 'unary' },
    ],
    elements: ELEMENTS,
    inFlight: 64,
    sleepMs: 0,
    blobBytes: 64,
  },
  {
    id: 'slow-consumer',
    systems: [{ label: 'avrpc', system: 'avrpc', kind: 'slow' }],
    elements: SLOW.elements,
    inFlight: 0,
    sleepMs: SLOW.sleepMs,
    blobBytes: SLOW.blobBytes,
  },
];

/** The best round's elements/s and the median round's CPU per element of one key's runs. */
interface Agg {
  elementsPerSec: number;
  cpu: CpuPerCall;
  rounds: number[];
}

function aggregate(runs: StreamRun[] | undefined): Agg | undefined {
  if (runs === undefined || runs.length === 0) return undefined;
  return {
    elementsPerSec: Math.max(...runs.map((r) => r.elementsPerSec)),
    cpu: medianCpu(runs.map((r) => r.cpuUsPerElement)),
    rounds: runs.map((r) => r.elementsPerSec),
  };
}

/**
 * The median over the rounds of `a`'s CPU per element divided by `b`'s in the same round (interleaved
 * rounds met the same machine load); NaN unless both ran every round.
 */
function sameRound(runs: Map<string, StreamRun[]>, a: string, b: string): number {
  const ra = runs.get(a);
  const rb = runs.get(b);
  if (ra === undefined || rb === undefined || ra.length !== rb.length || ra.length === 0) return NaN;
  const r = ra.map((x, i) => x.cpuUsPerElement.total / rb[i]!.cpuUsPerElement.total).sort((x, y) => x - y);
  return r[Math.floor((r.length - 1) / 2)]!;
}

const cpuText = (c: CpuPerCall): string => `${c.client.toFixed(2)} + ${c.server.toFixed(2)} = ${cpuUs(c.total)}`;
const ratio = (a: number | undefined, b: number | undefined): number => (a === undefined || b === undefined || b === 0 ? NaN : a / b);
const mib = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
const growth = (m: MemorySummary): number => Math.max(m.heap.max - m.heap.start, 0);

/** Sections, ratios and targets of the stream runs in `runs` (keyed `id/label`); empty for what did not run. */
export function streamReport(runs: Map<string, StreamRun[]>): {
  sections: ReportSection[];
  ratios: Record<string, number>;
  targets: TargetCheck[];
} {
  const sections: ReportSection[] = [];
  const targets: TargetCheck[] = [];
  const get = (key: string) => aggregate(runs.get(key));
  const [avrpc, floor, grpc] = [get('stream/avrpc'), get('stream/floor'), get('stream/grpc')];
  const [bidi, unary] = [get('bidi-64/avrpc'), get('bidi-64/avrpc-unary')];
  const ratios: Record<string, number> = {
    'stream avrpc/floor elements/s': ratio(avrpc?.elementsPerSec, floor?.elementsPerSec),
    'stream avrpc/grpc-js elements/s': ratio(avrpc?.elementsPerSec, grpc?.elementsPerSec),
    'stream avrpc/floor CPU/element': ratio(avrpc?.cpu.total, floor?.cpu.total),
    'stream avrpc/grpc-js CPU/element': ratio(avrpc?.cpu.total, grpc?.cpu.total),
    'bidi-64 stream/unary elements/s': ratio(bidi?.elementsPerSec, unary?.elementsPerSec),
    'bidi-64 stream/unary CPU/element': ratio(bidi?.cpu.total, unary?.cpu.total),
    'stream avrpc/floor CPU/element, median of same-round ratios': sameRound(runs, 'stream/avrpc', 'stream/floor'),
    'bidi-64 stream/unary CPU/element, median of same-round ratios': sameRound(runs, 'bidi-64/avrpc', 'bidi-64/avrpc-unary'),
  };
  const rows: [string, Agg | undefined, System][] = [
    ['avrpc `watch`', avrpc, 'avrpc'],
    ['raw framed floor', floor, 'floor'],
    ['grpc-js server streaming', grpc, 'grpc'],
  ];
  const present = rows.filter((r): r is [string, Agg, System] => r[1] !== undefined);
  if (present.length > 0)
    sections.push({
      title: 'Server stream of small Items: elements/s and CPU per element',
      note:
        `One server process, one client process; streams of ${ELEMENTS.toLocaleString('en-US')} Items each, back to back, for the measured window ` +
        '(`bench/stream.ts`); best round for elements/s, median round for CPU. avrpc: `client.serverStream("watch")` of protocol/stream.avdl, ' +
        `the handler an \`async function*\` yielding a fresh Item per element, the credit window ${WINDOW}. Raw framed floor: \`u32 length | Item\` ` +
        'frames over `net`, the encoded Item copied into an arena per element, one `socket.write` per event-loop turn waiting on `drain`, ' +
        'a client counting frames in place (no decode, no allocation per element; bench/stream-floor.ts). grpc-js: a generic ' +
        'server-streaming method with avsc serializers (the same bytes and codec as avrpc), `call.write` until it returns false, then `drain`.',
      header: [
        'system',
        'elements/s',
        'CPU/element µs, client + server = total',
        'elements/s vs floor',
        'elements/s vs grpc-js',
        'CPU vs floor',
      ],
      rows: present.map(([label, a]) => [
        label,
        rate(a.elementsPerSec),
        cpuText(a.cpu),
        times(ratio(a.elementsPerSec, floor?.elementsPerSec)),
        times(ratio(a.elementsPerSec, grpc?.elementsPerSec)),
        times(ratio(a.cpu.total, floor?.cpu.total)),
      ]),
      chart: {
        title: 'Server stream elements/s (higher is better)',
        bars: present.map(([label, a, system]) => ({ label, value: a.elementsPerSec, text: rate(a.elementsPerSec), system })),
      },
    });
  const target = (what: string, key: string, limit: string, ok: (v: number) => boolean): void => {
    const v = ratios[key]!;
    if (!Number.isNaN(v)) targets.push({ what, value: v, limit, ok: ok(v) });
  };
  target('server stream elements/s vs raw framed floor', 'stream avrpc/floor elements/s', '>= 0.6x', (v) => v >= 0.6);
  target('server stream elements/s vs grpc-js', 'stream avrpc/grpc-js elements/s', '>= 20x', (v) => v >= 20);

  const bidiRows: [string, Agg | undefined][] = [
    ['bidi stream `chat`, 64 elements in flight', bidi],
    ['unary `echo` calls, 64 in flight', unary],
  ];
  const bidiPresent = bidiRows.filter((r): r is [string, Agg] => r[1] !== undefined);
  if (bidiPresent.length > 0)
    sections.push({
      title: 'Bidi echo at 64 in flight against unary calls',
      note:
        `The same avrpc server process kind (protocol/stream.avdl), fresh processes per run; bidi: streams of ${ELEMENTS.toLocaleString('en-US')} ` +
        'Items, the client yielding a request while fewer than 64 are unanswered; unary: the same number of `echo` calls from 64 workers. ' +
        'An element is one Item each way.',
      header: ['mode', 'elements/s', 'CPU/element µs, client + server = total', 'elements/s vs unary', 'CPU vs unary'],
      rows: bidiPresent.map(([label, a]) => [
        label,
        rate(a.elementsPerSec),
        cpuText(a.cpu),
        times(ratio(a.elementsPerSec, unary?.elementsPerSec)),
        times(ratio(a.cpu.total, unary?.cpu.total)),
      ]),
      chart: {
        title: 'Bidi stream vs unary calls, 64 in flight: elements/s (higher is better)',
        bars: bidiPresent.map(([label, a]) => ({
          label,
          value: a.elementsPerSec,
          text: rate(a.elementsPerSec),
          system: 'avrpc' as System,
        })),
      },
    });
  // Per round, then the median: the two ran back to back, so this moves least with the machine's load.
  target(
    'bidi stream CPU per element vs unary call, 64 in flight (median of same-round ratios)',
    'bidi-64 stream/unary CPU/element, median of same-round ratios',
    '< 1x',
    (v) => v < 1,
  );

  const slowRuns = runs.get('slow-consumer/avrpc')?.filter((r) => r.slow !== undefined) ?? [];
  if (slowRuns.length > 0) {
    // The worst round: the most growth on either side.
    const worst = slowRuns.reduce((a, b) =>
      Math.max(growth(b.slow!.client), growth(b.slow!.server)) > Math.max(growth(a.slow!.client), growth(a.slow!.server)) ? b : a,
    );
    const s = worst.slow!;
    const payload = SLOW.elements * SLOW.blobBytes;
    const budget = payload / 4;
    const flat = (m: MemorySummary) => growth(m) <= budget && m.rss.max - m.rss.start <= budget;
    const span = (x: { start: number; max: number; end: number }) => `${mib(x.start)} / ${mib(x.max)} / ${mib(x.end)}`;
    sections.push({
      title: 'Slow consumer: memory while the client reads far slower than the producer',
      note:
        `One avrpc \`watch\` of ${SLOW.elements} Items with a ${SLOW.blobBytes / 1024} KiB blob (${mib(payload)} in all); the client sleeps ` +
        `${SLOW.sleepMs} ms per element (about ${Math.round(worst.elementsPerSec)} elements/s), the handler yields as fast as credit lets it ` +
        "(an unhindered stream runs at the server-stream row's rate, hundreds of times faster). Each process samples `process.memoryUsage()` " +
        `every 100 ms, each time after a full GC (\`--expose-gc\`: what it holds, not garbage); heap is heapUsed + arrayBuffers. Flat: heap and RSS grow by at most a quarter of the stream's payload (${mib(budget)}). ` +
        `Producer lead: the most elements the handler had yielded beyond those the client had consumed, from each side's ` +
        `\`process.hrtime\` per element: ${s.maxLead} (window ${WINDOW}; ${s.produced} produced). Worst of ${slowRuns.length} round(s).`,
      header: ['process', 'RSS start / max / end', 'heap start / max / end', 'samples', 'flat'],
      rows: (
        [
          ['client', s.client],
          ['server', s.server],
        ] as const
      ).map(([label, m]) => [label, span(m.rss), span(m.heap), String(m.samples), flat(m) ? 'yes' : 'no']),
      chart: {
        title: 'Slow consumer: heap growth over the stream, MiB (lower is better)',
        bars: (
          [
            ['client', s.client],
            ['server', s.server],
          ] as const
        ).map(([label, m]) => ({ label, value: growth(m) / 2 ** 20, text: mib(growth(m)), system: 'avrpc' as System })),
      },
    });
    const worstGrowth = Math.max(
      growth(s.client),
      growth(s.server),
      s.client.rss.max - s.client.rss.start,
      s.server.rss.max - s.server.rss.start,
    );
    targets.push({
      what: 'memory flat with a consumer 10x+ slower (most growth of heap or RSS, either side)',
      value: worstGrowth / 2 ** 20,
      limit: `<= ${mib(budget)}`,
      ok: flat(s.client) && flat(s.server),
      unit: 'MiB',
    });
    targets.push({
      what: 'producer held by credit (most elements yielded beyond those consumed)',
      value: s.maxLead,
      limit: `<= ${2 * WINDOW} (2 windows)`,
      ok: s.maxLead <= 2 * WINDOW && s.produced === SLOW.elements,
      unit: 'elements',
    });
  }
  return { sections, ratios, targets };
}
