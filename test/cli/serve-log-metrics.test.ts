import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { avrpc } from '../helpers/cli.js';
import { logFixture, serveProcess, type LogFixture } from './serve-log-fixture.js';

/** `avrpc serve --metrics-port`: avrpc's metrics and prom-client's process metrics on one /metrics. */
const test = suite('avrpc serve --metrics-port: process metrics');
let fx: LogFixture;

test.before(() => {
  fx = logFixture();
});
test.after(() => fx.remove());

test('process and Node metrics beside avrpc metrics, the fine latency buckets, and the URL in the startup entry', async () => {
  const server = await serveProcess(fx.protocol, fx.handlers, '--metrics-port', '0', '--log-format', 'json');
  try {
    assert.ok(server.metricsUrl?.startsWith('http://127.0.0.1:'), server.stdout());
    assert.is((await avrpc('call', server.address, 'echo', '{"s": "x"}')).status, 0);
    const res = await fetch(server.metricsUrl!);
    assert.is(res.status, 200);
    const text = await res.text();
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'process_open_fds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_version_info',
    ])
      assert.match(text, new RegExp(`^${name}(\\{[^}]*\\})? \\d`, 'm'), name);
    assert.match(text, /^avrpc_calls_total\{side="server",message="echo",code="OK"\} 1$/m);
    assert.match(text, /^avrpc_call_duration_seconds_bucket\{le="0\.00001",side="server",message="echo"\} \d+$/m);
    await server.logged(/"msg":"listening"/);
    const start = JSON.parse(
      server
        .stderr()
        .split('\n')
        .find((l) => l.includes('"msg":"listening"'))!,
    ) as { metrics: string };
    assert.is(start.metrics, server.metricsUrl);
    assert.is(await server.stop(), 0);
  } finally {
    await server.stop();
  }
});

test.run();
