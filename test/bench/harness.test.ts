import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runOnce } from '../../bench/e2e.js';
import { runLoad, type WindowEdge } from '../../bench/load.js';
import { rawClient, startRawServer } from '../../bench/raw-echo.js';
import {
  consoleTable,
  cpuVsFloorRounds,
  markdown,
  medianCpu,
  svg,
  type BenchReport,
  type CpuPerCall,
  type SystemResult,
} from '../../bench/report.js';

const test = suite('bench harness');

for (const batched of [false, true]) {
  test(`raw ${batched ? 'batched ' : ''}echo matches 500 concurrent calls to their callers`, async () => {
    const server = await startRawServer(batched);
    const client = await rawClient(server.port, batched);
    try {
      const bodies = Array.from({ length: 500 }, (_, i) => Buffer.alloc(1 + (i % 300), i & 0xff));
      const echoed = await Promise.all(bodies.map((b) => client.call(b)));
      echoed.forEach((e, i) => assert.ok(e.equals(bodies[i]!), `call ${i} got another call's body`));
    } finally {
      client.close();
      await server.close();
    }
  });
}

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

for (const [system, servers] of [
  ['raw', 1],
  ['avrpc', 2],
] as const) {
  test(`a tiny end-to-end run of ${system} with ${servers} server(s) gives CPU per call of both sides`, async () => {
    const scenario = { id: 'tiny', title: 'tiny', systems: [system], inFlight: 4, serverDelaysMs: Array<number>(servers).fill(0) };
    const run = await runOnce(scenario, system, { warmupSeconds: 0.05, seconds: 0.2, execArgv: [] });
    assert.ok(run.result.calls > 0 && run.result.errors === 0, `calls ${run.result.calls}, errors ${run.result.errors}`);
    const c = run.cpuUsPerCall;
    assert.ok(c.client > 0 && c.server > 0, `client ${c.client} µs, server ${c.server} µs`);
    assert.is(c.total, c.client + c.server);
    assert.is(run.callsPerServer.length, servers > 1 ? servers : 0);
  });
}

function result(callsPerSec: number, p50Us: number, p99Us: number, cpuTotal = 10): SystemResult {
  const cpu = { client: cpuTotal / 2, server: cpuTotal / 2, total: cpuTotal };
  return {
    calls: callsPerSec,
    errors: 0,
    seconds: 1,
    callsPerSec,
    p50Us,
    p90Us: p99Us,
    p99Us,
    maxUs: p99Us,
    cpuUs: callsPerSec * cpu.client,
    callsPerSecRounds: [callsPerSec],
    cpuUsPerCall: cpu,
    cpuRounds: [cpu, { client: cpu.client, server: cpu.server * 2, total: cpu.client + cpu.server * 2 }],
  };
}

test('medianCpu: the round with the median total, the lower middle one for an even count', () => {
  const r = (total: number): CpuPerCall => ({ client: total - 1, server: 1, total });
  assert.equal(medianCpu([r(9), r(3), r(5)]), r(5));
  assert.equal(medianCpu([r(9), r(3), r(5), r(4)]), r(4));
  assert.equal(medianCpu([r(7)]), r(7));
});

test('report: ratios against the floor and grpc-js, targets, and one bar per result in each chart', () => {
  const report: BenchReport = {
    date: '2026-01-01 00:00 UTC',
    machine: 'test machine',
    settings: 'settings',
    micro: [{ name: 'case', opsPerSec: 1000 }],
    rows: [
      {
        id: 'echo-64',
        title: 'echo <64>',
        results: { avrpc: result(200, 100, 400, 22), grpc: result(10, 5000, 9000, 440), raw: result(100, 200, 800, 10) },
      },
      { id: 'lb', title: 'lb', results: { avrpc: result(50, 10, 20) }, note: 'slowed server got 5.0% of calls' },
    ],
    ratios: {},
    targets: [{ what: 'calls/s vs floor', value: 2, limit: '>= 0.9x', ok: true }],
    sections: [],
  };
  const md = markdown(report);
  assert.match(md, 'calls/s 2.00x floor');
  assert.match(md, 'p99 0.50x floor');
  assert.match(md, 'calls/s 20.0x grpc-js');
  assert.match(md, 'CPU/call 2.20x floor');
  assert.match(md, 'CPU/call 0.05x grpc-js');
  assert.match(
    md,
    '| echo <64> | 11.0 + 11.0 = 22.0 µs (22.0-33.0) | 220.0 + 220.0 = 440.0 µs (440.0-660.0) | 5.00 + 5.00 = 10.0 µs (10.0-15.0) | - |',
  );
  assert.match(md, 'slowed server got 5.0% of calls');
  const table = consoleTable(report).split('\n');
  assert.match(table[0]!, /^scenario +system +calls\/s +p50 +p99 +errors +CPU\/call µs: client +server +total +rounds min-max$/);
  assert.ok(
    table.some((l) => /^echo <64> +avrpc +200 .* 11\.00 +11\.00 +22\.00 +22\.00-33\.00$/.test(l)),
    'avrpc row with CPU columns',
  );
  assert.ok(
    table.some((l) => /^echo-64\/raw +100 +100-100 +10\.00 +10\.00-15\.00$/.test(l)),
    'medians over the rounds',
  );
  // avrpc's rounds total 22 and 33 µs, the floor's 10 and 15: 2.2x in each round.
  assert.ok(
    table.some((l) => /^echo-64\/avrpc +200 +200-200 +22\.00 +22\.00-33\.00 +2\.20x +2\.20-2\.20$/.test(l)),
    'CPU per call against the floor of the same round',
  );
  assert.equal(cpuVsFloorRounds(report.rows[0], 'grpc'), [44, 44]);
  assert.equal(cpuVsFloorRounds(report.rows[1], 'avrpc'), [], 'no floor in the row');
  assert.match(md, '| calls/s vs floor | 2.00x | >= 0.9x | yes |');
  const chart = svg(report);
  assert.match(chart, 'echo &lt;64&gt;');
  const bars = chart.match(/<rect class="bar"/g) ?? [];
  assert.is(bars.length, 3 * 4, 'four results, three charts');
  // One scale per chart: the single-system row 'lb' (50/s) must not fill the width like avrpc's 200/s.
  for (const [title, next] of [
    ['calls/s', 'p99 latency'],
    ['p99 latency', 'CPU per call, client + server'],
    ['CPU per call, client + server', undefined],
  ] as const) {
    const part = chart.slice(chart.indexOf(`>${title} (`), next === undefined ? undefined : chart.indexOf(`>${next} (`));
    const drawn = [
      ...part.matchAll(/<rect class="bar" [^>]*width="([\d.]+)"[^>]*\/>\n<text [^>]*>[^<]* ([\d,.]+ ?(?:\/s|µs|ms))<\/text>/g),
    ].map((m) => ({ width: Number(m[1]), text: m[2]! }));
    assert.is(drawn.length, 4, `${title}: four bars`);
    for (const a of drawn) {
      for (const b of drawn) {
        if (a.text !== b.text) assert.is.not(a.width, b.width, `${title}: ${a.text} and ${b.text} drawn alike`);
      }
    }
  }
  const width = (label: string): number => Number(new RegExp(`width="([\\d.]+)"[^>]*/>\n<text [^>]*>${label}<`).exec(chart)![1]);
  assert.ok(
    width('avrpc 200/s') > width('raw floor 100/s') &&
      width('raw floor 100/s') > width('avrpc 50/s') &&
      width('avrpc 50/s') > width('grpc-js 10/s'),
  );
  assert.is(width('avrpc 200/s'), 4 * width('avrpc 50/s'), 'calls/s bars proportional across scenarios');
});

test('report: the sections of other issues get a table, a bar per row, and targets in their unit', () => {
  const report: BenchReport = {
    date: '2026-01-01 00:00 UTC',
    machine: 'test machine',
    settings: 'settings',
    micro: [],
    ratios: {},
    rows: [{ id: 'echo-1', title: 'echo', results: { avrpc: result(200, 100, 400) } }],
    targets: [
      { what: 'loop delay max', value: 7.5, limit: '< 10 ms', ok: true, unit: 'ms' },
      { what: 'memory', value: 1.9, limit: '<= 2N', ok: true, unit: 'N' },
    ],
    sections: [
      {
        title: 'Offload',
        note: 'how it was measured',
        header: ['mode', 'delay'],
        rows: [
          ['off', '40 ms'],
          ['on', '7.5 ms'],
        ],
        chart: {
          title: 'delay chart',
          bars: [
            { label: 'off', value: 40, text: '40 ms' },
            { label: 'on', value: 7.5, text: '7.5 ms', system: 'raw' },
          ],
        },
      },
    ],
  };
  const md = markdown(report);
  assert.match(md, '| mode | delay |\n|---|---|\n| off | 40 ms |\n| on | 7.5 ms |');
  assert.match(md, 'how it was measured');
  assert.match(md, '| loop delay max | 7.50 ms | < 10 ms | yes |');
  assert.match(md, '| memory | 1.90N | <= 2N | yes |');
  const chart = svg(report);
  assert.match(chart, 'delay chart');
  assert.is((chart.match(/<rect class="bar"/g) ?? []).length, 3 + 2, 'one result in three charts, two section bars');
});

test.run();
