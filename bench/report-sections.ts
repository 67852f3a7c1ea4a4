/**
 * The report sections of the scenarios `npm run bench` runs through their own scripts (worker offload,
 * large messages, the HTTP gateway): a table, a chart and targets each, from the figures the scripts
 * send over IPC.
 */
import type { GatewayReport } from './http-gateway.js';
import type { LargeResults } from './large.js';
import type { OffloadModeResult } from './offload.js';
import { rate, times, type ReportSection, type System, type TargetCheck } from './report.js';

const ms = (x: number): string => `${x.toFixed(x < 10 ? 2 : 1)} ms`;
const mibs = (bytesPerSec: number): string => `${(bytesPerSec / (1024 * 1024)).toFixed(0)} MiB/s`;

/** Worker offload: the server's event-loop delay under mixed load, offload off vs on. */
export function offloadSection(r: OffloadModeResult[], secondsPerMode: number): { section: ReportSection; targets: TargetCheck[] } {
  const label: Record<string, string> = {
    idle: "idle (no calls: the machine's noise)",
    small: 'small calls only',
    off: 'mixed load, offload off',
    on: 'mixed load, offload on',
  };
  const section: ReportSection = {
    title: 'Worker offload: server event-loop delay under mixed load',
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
  const targets: TargetCheck[] =
    on === undefined
      ? []
      : [
          {
            what: 'server loop delay max with offload, mixed load',
            value: on.server.maxMs,
            limit: '< 10 ms',
            ok: on.server.maxMs < 10,
            unit: 'ms',
          },
        ];
  return { section, targets };
}

/** Large messages: small-call latency beside 8 MB calls, 1 MB throughput, memory. */
export function largeSections(r: LargeResults, seconds: number): { sections: ReportSection[]; targets: TargetCheck[] } {
  const sections: ReportSection[] = [];
  const targets: TargetCheck[] = [];
  if (r.latency.length > 0) {
    sections.push({
      title: 'Large messages: small-call latency while 8 MB echoes share the connection',
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
        what: 'small-call p99 beside 8 MB calls, fragments on',
        value: on.p99Ms,
        limit: '< 5 ms',
        ok: on.p99Ms < 5,
        unit: 'ms',
      });
  }
  const t = r.throughput;
  if (t !== undefined) {
    const rows: [string, number, System][] = [
      ['raw framed floor', t.rawBytesPerSec, 'floor'],
      ['avrpc, fragments on', t.onBytesPerSec, 'avrpc'],
      ['avrpc, fragments off', t.offBytesPerSec, 'avrpc'],
    ];
    sections.push({
      title: 'Large messages: 1 MB echo throughput',
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
      what: '1 MB echo throughput vs raw framed floor, fragments on',
      value: t.onBytesPerSec / t.rawBytesPerSec,
      limit: '>= 0.8x',
      ok: t.onBytesPerSec / t.rawBytesPerSec >= 0.8,
    });
  }
  if (r.memory.length > 0) {
    // A peak below the level before the call (a GC ran during it) is no memory spent: shown as 0.
    const n = (x: number): number => Math.max(0, x);
    sections.push({
      title: 'Large messages: memory beyond the payload while one N MB echo is in flight',
      note:
        'Peak of `process.memoryUsage()` arrayBuffers + heapUsed above the level before the call, minus the payload (the request on the ' +
        'server, the result on the client), worst of 3 calls, sampled every 1 ms; 0 when a GC during the call left the peak below the ' +
        'level before plus the payload. It includes garbage V8 has not collected yet: every socket read is a fresh 64 KiB buffer (Node ' +
        'allocates one per read), copied into the message and then dropped, so up to about N of read buffers is counted until an ' +
        'external-memory GC runs, which for large N happens during the call.',
      header: ['N', 'client', 'server'],
      rows: r.memory.map((m) => [`${m.n} MB`, `${n(m.clientWorstN).toFixed(2)}N`, `${n(m.serverWorstN).toFixed(2)}N`]),
      chart: {
        title: 'memory beyond the payload, in multiples of N (lower is better)',
        bars: r.memory.flatMap((m) => [
          { label: `${m.n} MB, client`, value: n(m.clientWorstN), text: `${n(m.clientWorstN).toFixed(2)}N`, system: 'avrpc' as System },
          { label: `${m.n} MB, server`, value: n(m.serverWorstN), text: `${n(m.serverWorstN).toFixed(2)}N`, system: 'avrpc' as System },
        ]),
      },
    });
    for (const m of r.memory) {
      const worst = n(Math.max(m.clientWorstN, m.serverWorstN));
      targets.push({
        what: `memory beyond the payload per side, ${m.n} MB echo`,
        value: worst,
        limit: '<= about 2N',
        ok: worst <= 2.2,
        unit: 'N',
      });
    }
  }
  return { sections, targets };
}

/** The HTTP gateway: each comparison's calls/s and server CPU per call ratios, and its targets. */
export function gatewaySection(r: GatewayReport): { section: ReportSection; targets: TargetCheck[] } {
  const section: ReportSection = {
    title: 'HTTP/JSON gateway against plain node:http, and avrpc on a port shared with HTTP against avrpc only',
    note:
      `The client loads both servers in short slices (alternating, or both at once) so that both meet the same machine load ` +
      `(\`bench/http-gateway.ts\`). ${r.settings}`,
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
            // The figure it is judged on (slice pairs, or 1 / the server CPU ratio), not the median round's.
            what: `${s.id}: ${s.systems[0]!.label} / ${s.systems[1]!.label} ${s.target.by === 'cpu' ? 'calls/s its server CPU allows (1 / CPU per call ratio)' : 'calls/s, slice pairs'}`,
            value: s.target.value,
            limit: s.target.limit,
            ok: s.target.met,
          },
        ],
  );
  return { section, targets };
}
