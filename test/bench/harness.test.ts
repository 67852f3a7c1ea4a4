import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { missingReason, runOnce } from '../../bench/e2e.js';
import { runLoad, type LoadResult, type WindowEdge } from '../../bench/load.js';
import {
  consoleTable,
  markdown,
  markdownSummary,
  medianCpu,
  sameRoundRatios,
  summarize,
  SUMMARY_END,
  SUMMARY_START,
  type BenchReport,
  type CpuPerCall,
  type RoundResult,
  type System,
  type SystemResult,
} from '../../bench/report.js';
import { gatewaySection } from '../../bench/report-sections.js';
import type { GatewayReport, GatewayScenarioSummary } from '../../bench/http-gateway.js';
import { svg } from '../../bench/report-svg.js';
import { benchTargets } from '../../bench/targets.js';
import { peer as codecFloor } from '../../bench/peers/floor-codec.js';
import { benchItem } from '../../bench/payload.js';

const test = suite('bench harness');

test('runLoad counts completed and failed calls of the measured window only', async () => {
  let n = 0;
  // Each call yields to the event loop, as real I/O does (a pure microtask loop would starve the timers).
  const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
  const edges: [WindowEdge, number][] = [];
  const ok = await runLoad(
    () => tick().then(() => n++),
    4,
    20,
    50,
    (edge) => edges.push([edge, n]),
  );
  assert.ok(ok.calls > 0 && ok.calls < n, 'warm-up calls are not counted');
  assert.is(ok.errors, 0);
  assert.ok(ok.p50Us <= ok.p99Us && ok.p99Us <= ok.maxUs);
  assert.ok(ok.cpuUs > 0, 'CPU of the measured window');
  assert.equal(
    edges.map(([edge]) => edge),
    ['start', 'end'],
  );
  assert.ok(edges[0]![1] > 0 && edges[1]![1] - edges[0]![1] >= ok.calls, 'the edges bracket the measured window, after the warm-up');
  const bad = await runLoad(
    () =>
      tick().then(() => {
        throw new Error('boom');
      }),
    2,
    0,
    30,
  );
  assert.is(bad.calls, 0);
  assert.ok(bad.errors > 0);
  assert.match(bad.firstError ?? '', 'boom');
});

for (const servers of [1, 2]) {
  test(`a tiny end-to-end run of avrpc with ${servers} server(s) gives CPU per call of both sides`, async () => {
    const scenario = {
      id: 'tiny',
      title: 'tiny',
      systems: ['avrpc' as const],
      inFlight: 4,
      serverDelaysMs: Array<number>(servers).fill(0),
    };
    const run = await runOnce(scenario, 'avrpc', { warmupSeconds: 0.05, seconds: 0.2, execArgv: [] });
    assert.ok(run.result.calls > 0 && run.result.errors === 0, `calls ${run.result.calls}, errors ${run.result.errors}`);
    const c = run.cpuUsPerCall;
    assert.ok(c.client > 0 && c.server > 0, `client ${c.client} µs, server ${c.server} µs`);
    assert.is(c.total, c.client + c.server);
    assert.is(c.serverExtra, undefined, 'avrpc has no helper process');
    assert.is(run.label, 'avrpc');
    assert.is(run.callsPerServer.length, servers > 1 ? servers : 0);
  });
}

test('a server that cannot start fails its run at once instead of hanging the bench', async () => {
  const scenario = { id: 'tiny', title: 'tiny', systems: [], inFlight: 1, serverDelaysMs: [0] };
  try {
    await runOnce(scenario, 'no-such-system' as System, { warmupSeconds: 0, seconds: 0.1, execArgv: [], startTimeoutMs: 20_000 });
    assert.unreachable('the run should fail');
  } catch (err) {
    assert.match((err as Error).message, 'did not start: unknown server kind no-such-system');
  }
});

test('missingReason: a peer without its compiled module is skipped; avrpc never is', () => {
  const dir = mkdtempSync(join(tmpdir(), 'avrpc-peers-'));
  try {
    writeFileSync(join(dir, 'nats.js'), 'export const peer = {};\n');
    assert.is(missingReason('nats', dir), undefined);
    assert.is(missingReason('thrift', dir), 'module bench/peers/thrift.js not built');
    assert.is(missingReason('avrpc', dir), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const load = (callsPerSec: number, p50Us: number, p99Us: number): LoadResult => ({
  calls: callsPerSec,
  errors: 0,
  seconds: 1,
  callsPerSec,
  p50Us,
  p90Us: p99Us,
  p99Us,
  maxUs: p99Us,
  cpuUs: 1,
});
const cpu = (client: number, server: number): CpuPerCall => ({ client, server, total: client + server });

/** Three rounds: calls/s, p50, p99 and CPU each scaled by the round's factor. */
function system(label: string, callsPerSec: number, p50Us: number, cpuTotal: number, factors = [1, 1.1, 0.9]): SystemResult {
  const rounds: RoundResult[] = factors.map((f, i) => ({
    round: i + 1,
    load: load(callsPerSec * f, p50Us * f, 2 * p50Us * f),
    cpu: cpu((cpuTotal / 2) * f, (cpuTotal / 2) * f),
  }));
  return summarize(label, rounds);
}

test('summarize: medians and ranges over the rounds; same-round ratios pair rounds by number', () => {
  const a = system('a', 1000, 100, 10);
  assert.is(a.callsPerSec.median, 1000);
  assert.is(a.callsPerSec.min, 900);
  assert.is(a.callsPerSec.max, 1100);
  assert.is(a.cpuTotal.median, 10);
  assert.is(a.cpuServerExtra, undefined);
  const withBroker = summarize('nats', [{ round: 1, load: load(100, 1, 2), cpu: { ...cpu(1, 3), serverExtra: 2 } }]);
  assert.equal(withBroker.cpuServerExtra, { median: 2, min: 2, max: 2 });
  const b = system('b', 500, 100, 20, [1, 1.2]);
  // Rounds 1 and 2 only: 1000/500 and 1100/600.
  assert.equal(
    sameRoundRatios(a, b, 'callsPerSec').map((x) => x.toFixed(3)),
    ['1.833', '2.000'],
  );
  const r = (total: number): CpuPerCall => ({ client: total - 1, server: 1, total });
  assert.equal(medianCpu([r(9), r(3), r(5), r(4)]), r(4));
});

function sampleReport(): BenchReport {
  return {
    date: '2026-01-01 00:00 UTC',
    machine: 'test machine',
    settings: 'settings.',
    micro: [{ name: 'case', opsPerSec: 1000 }],
    rows: [
      {
        id: 'echo-64',
        title: 'echo <64>',
        results: {
          avrpc: system('avrpc', 300_000, 150, 3),
          floor: system('tuned floor', 600_000, 100, 1.5),
          grpc: system('grpc-js', 7_500, 8000, 175),
          nats: system('NATS', 30_000, 2000, 40),
        },
        skipped: [{ system: 'thrift', label: 'Thrift compact', reason: 'module bench/peers/thrift.js not built' }],
      },
      {
        id: 'lb-lc',
        title: 'lb',
        results: { avrpc: system('avrpc', 50_000, 300, 4) },
        skipped: [],
        note: 'slowed server got 5.0% of calls',
      },
    ],
    systems: [{ system: 'nats', label: 'NATS', description: 'nats.js 2.29 through nats-server, JSON.' }],
    ratios: {},
    targets: [{ what: 'calls/s vs floor', value: 0.5, limit: '>= 0.65x', ok: false }],
    sections: [
      {
        title: 'Offload',
        note: 'how it was measured',
        header: ['mode', 'delay'],
        rows: [['on', '7.5 ms']],
        chart: { title: 'delay chart', bars: [{ label: 'on', value: 7.5, text: '7.5 ms' }] },
      },
    ],
  };
}

test('markdown: a row per system with median ± spread and same-round ratios, skipped peers said, targets met or missed', () => {
  const report = sampleReport();
  const md = markdown(report);
  assert.match(md, '| system | calls/s | p50 | p99 | CPU µs/call: client | server | total | avrpc / it: calls/s | p50 | p99 | CPU/call |');
  assert.match(md, '| avrpc | 300,000/s ±10% | 150 µs ±10% | 300 µs ±10% | 1.50 ±10% | 1.50 ±10% | 3.00 ±10% |  |  |  |  |');
  assert.match(
    md,
    '| tuned floor | 600,000/s ±10% | 100 µs ±10% | 200 µs ±10% | 0.75 ±10% | 0.75 ±10% | 1.50 ±10% | 0.50x | 1.50x | 1.50x | 2.00x |',
  );
  assert.match(
    md,
    '| grpc-js | 7,500/s ±10% | 8.00 ms ±10% | 16.0 ms ±10% | 87.5 ±10% | 87.5 ±10% | 175.0 ±10% | 40.0x | 0.019x | 0.019x | 0.017x |',
  );
  assert.match(md, 'Not run: Thrift compact (module bench/peers/thrift.js not built).');
  assert.match(
    md,
    '| lb | 50,000/s ±10% | 300 µs ±10% | 600 µs ±10% | 2.00 ±10% | 2.00 ±10% | 4.00 ±10% | slowed server got 5.0% of calls |',
  );
  assert.match(md, '| calls/s vs floor | 0.50x | >= 0.65x | MISSED |');
  assert.match(md, '- **NATS** (`nats`): nats.js 2.29 through nats-server, JSON.');
  assert.match(md, '| mode | delay |\n|---|---|\n| on | 7.5 ms |');
  assert.ok(md.startsWith(`${SUMMARY_START}\n${markdownSummary(report)}\n${SUMMARY_END}\n`), 'the summary README quotes, between markers');
  assert.not.match(md, /issue \d/i);
});

test('console tables: every table has a header line', () => {
  const lines = consoleTable(sampleReport()).split('\n');
  assert.ok(
    lines.some((l) =>
      /^system +calls\/s +p50 +p99 +CPU µs\/call: client +server +total +avrpc \/ it: calls\/s +p50 +p99 +CPU\/call$/.test(l),
    ),
  );
  assert.ok(lines.some((l) => /^scenario +calls\/s +p50 +p99 +CPU µs\/call: client +server +total +note$/.test(l)));
  assert.ok(lines.some((l) => /^mode +delay$/.test(l)));
  assert.ok(lines.some((l) => /^target +measured +limit +met$/.test(l)));
  assert.ok(lines.some((l) => /^skipped: Thrift compact: module/.test(l)));
});

test('svg: calls/s on a linear scale, latency and CPU per call on log scales with decade ticks', () => {
  const chart = svg(sampleReport());
  assert.match(chart, 'echo &lt;64&gt;');
  const section = (title: string): string => {
    const from = chart.indexOf(`>${title}`);
    return chart.slice(from, chart.indexOf('font-weight="bold"', from + 1));
  };
  const widths = (part: string): Record<string, number> =>
    Object.fromEntries(
      [...part.matchAll(/<rect class="bar" [^>]*width="([\d.]+)"[^>]*\/>\n<text [^>]*>([^<]*)<\/text>/g)].map((m) => [m[2]!, Number(m[1])]),
    );
  const calls = widths(section('calls/s, median'));
  assert.is(Object.keys(calls).length, 4);
  assert.is(calls['600,000/s'], 2 * calls['300,000/s']!, 'linear');
  const lat = section('latency, p50');
  const w = widths(lat);
  // Decades 10 µs .. 100 ms: p50 100 µs sits one decade in, its p99 200 µs drawn behind it, longer.
  assert.match(lat, '>10 µs<');
  assert.match(lat, '>100 ms<');
  assert.ok(Math.abs(w['100 µs / 200 µs']! - 440 / 4) < 0.2, `100 µs at one quarter, got ${w['100 µs / 200 µs']}`);
  const upTo = /<rect class="upto" [^>]*width="([\d.]+)"/.exec(lat);
  assert.ok(upTo !== null && Number(upTo[1]) > w['150 µs / 300 µs']!, 'p99 behind p50');
  assert.ok(section('CPU per call').includes('>1 µs<') && section('CPU per call').includes('>1 ms<'), 'CPU ticks');
  assert.match(chart, 'delay chart');
});

test('targets: avrpc against the tuned floor and each structured peer measured, from same-round ratios', () => {
  const rows = sampleReport().rows;
  // The informational floors (early writes, the codec floor) set no target, however they compare.
  Object.assign(rows[0]!.results, {
    'floor-early': system('raw floor, early writes', 900_000, 60, 1.4),
    'floor-codec': system('raw floor + Avro codec', 500_000, 110, 2.4),
  });
  rows.push({
    id: 'echo-1',
    title: 'echo 1',
    results: { avrpc: system('avrpc', 10_000, 100, 10), floor: system('floor', 11_000, 98, 5) },
    skipped: [],
  });
  const got = benchTargets(rows).map((t) => `${t.what} ${t.value.toFixed(3)} ${t.limit} ${t.ok}`);
  assert.equal(got, [
    '64 in flight: avrpc calls/s vs tuned floor 0.500 >= 0.65x false',
    '64 in flight: avrpc CPU per call vs tuned floor 2.000 <= 1.7x false',
    '64 in flight: avrpc p99 vs tuned floor 1.500 <= 1.5x true',
    '64 in flight: avrpc calls/s vs NATS 10.000 >= 5x true',
    '64 in flight: avrpc calls/s vs grpc-js 40.000 >= 15x true',
    '1 in flight: avrpc p50 vs floor 1.020 <= 1.05x true',
  ]);
});

test('codec floor: answers each call with the Item decoded and encoded again, right away and from a slowed server', async () => {
  for (const delayMs of [0, 2]) {
    const server = await codecFloor.startServer({ delayMs });
    const client = await codecFloor.connect(server.port);
    try {
      const answers = await Promise.all([client.call(), client.call(), client.call()]);
      // avsc decodes into its record class: compared field by field, the blob by its bytes.
      const plain = (v: typeof benchItem) => ({ ...v, blob: [...v.blob] });
      for (const a of answers) assert.equal(plain(a as typeof benchItem), plain(benchItem), `delayMs ${delayMs}`);
    } finally {
      await client.close();
      await server.close();
    }
  }
});

test('gateway targets: the row shows the figure the verdict was judged on, and names it', () => {
  const side = { label: 'x', callsPerSecMedian: 1, callsPerSecRounds: [1], p50Us: 1, p99Us: 1, errors: 0 };
  const scenario = (id: string, by: 'calls' | 'cpu', value: number, met: boolean): GatewayScenarioSummary =>
    ({
      id,
      title: id,
      systems: [side, side],
      // The median round reads otherwise: the row must not show it.
      ratioMedian: 1.0,
      ratioRounds: [1.0],
      pairRatioMedian: value,
      pairRatioQuartiles: [value, value],
      serverCpuRatioMedian: 1,
      serverCpuRatioRounds: [1],
      pairs: 2,
      pairCpuRatioMedian: 1 / value,
      pairCpuRatioQuartiles: [1 / value, 1 / value],
      target: { limit: '>= 0.98x', by, value, met },
    }) as unknown as GatewayScenarioSummary;
  const report = {
    date: 'd',
    machine: 'm',
    settings: 's',
    scenarios: [scenario('a', 'cpu', 0.96, false), scenario('b', 'calls', 0.93, false)],
  };
  const { targets } = gatewaySection(report as unknown as GatewayReport);
  assert.equal(
    targets.map((t) => [t.value, t.ok]),
    [
      [0.96, false],
      [0.93, false],
    ],
  );
  assert.match(targets[0]!.what, /1 \/ CPU per call ratio/);
  assert.match(targets[1]!.what, /slice pairs/);
});

test.run();
