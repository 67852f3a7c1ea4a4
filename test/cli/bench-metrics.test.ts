import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { BenchReport } from '../../src/cli/bench.js';
import { KITCHEN, KITCHEN_HANDLERS, avrpc, serve } from '../helpers/cli.js';

/** `avrpc bench` and `avrpc serve --metrics-port` as processes. */
const test = suite('avrpc bench and serve --metrics-port');
const thing = '{"thing": {"id": 1, "blob": "", "choice": null, "hash": "abcd", "counts": {}, "at": 0}}';

test('bench -n 200 --json: one JSON object with 200 calls, percentiles in order, no errors', async () => {
  const server = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint');
  try {
    const r = await avrpc('bench', server.address, 'bump', thing, '-n', '200', '-c', '8', '--json');
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout.trim().split('\n').length, 1, 'exactly one line');
    const report = JSON.parse(r.stdout) as BenchReport;
    assert.is(report.calls, 200);
    assert.is(report.ok, 200);
    assert.equal(report.errors, {});
    assert.ok(report.callsPerSec > 0);
    const l = report.latencyUs;
    assert.ok(l.min > 0 && l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max, JSON.stringify(l));
    assert.is(
      report.histogram.reduce((n, b) => n + b.count, 0),
      200,
      'the histogram holds every call',
    );
  } finally {
    await server.stop();
  }
});

test('bench counts errors by code, prints the text report, and exits as the failed calls did', async () => {
  const server = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint');
  try {
    const r = await avrpc('bench', server.address, 'fail', '{"reason": "r", "code": 0}', '-n', '50', '-c', '4');
    // 20,000 failed calls of 20,000 used to exit 0: a failed run must fail the script that ran it.
    assert.is(r.status, 64 + 5, r.stderr);
    assert.is(r.stderr, 'bench: 50 of 50 calls failed (NOT_FOUND 50)\n');
    assert.match(r.stdout, /fail: 50 calls in/);
    assert.match(r.stdout, /p99 /);
    assert.match(r.stdout, /errors by code: NOT_FOUND 50/);
  } finally {
    await server.stop();
  }
});

test('serve --metrics-port exposes avrpc metrics after calls', async () => {
  const server = await serve(KITCHEN, KITCHEN_HANDLERS, '--longs', 'bigint', '--metrics-port', '0');
  try {
    assert.ok(server.metricsUrl?.startsWith('http://127.0.0.1:'), server.output());
    for (let i = 0; i < 3; i++) assert.is((await avrpc('call', server.address, 'bump', thing)).status, 0);
    assert.is((await avrpc('call', server.address, 'fail', '{"reason": "r", "code": 0}')).status, 64 + 5);
    const res = await fetch(server.metricsUrl!);
    assert.is(res.status, 200);
    const text = await res.text();
    assert.match(text, /^avrpc_calls_total\{side="server",message="bump",code="OK"\} 3$/m);
    assert.match(text, /^avrpc_calls_total\{side="server",message="fail",code="NOT_FOUND"\} 1$/m);
    assert.match(text, /^avrpc_call_duration_seconds_count\{side="server",message="bump"\} 3$/m);
    assert.match(text, /^avrpc_calls_in_flight\{side="server"\} 0$/m);
    assert.match(text, /^avrpc_bytes_received_total\{side="server"\} [1-9]/m);
    assert.is((await fetch(server.metricsUrl!.replace('/metrics', '/other'))).status, 404);
  } finally {
    assert.is(await server.stop(), 0);
  }
});

test.run();
