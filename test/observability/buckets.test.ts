import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AggregatorRegistry, Registry } from 'prom-client';
import {
  Code,
  DEFAULT_LATENCY_BUCKETS,
  RpcError,
  createClient,
  createPrometheusObserver,
  createServer,
  parseProtocol,
} from '../../src/index.js';

const test = suite('latency histogram buckets');
const protocol = parseProtocol(`protocol Buckets { string hello(string name); }`);

/** The `le` bounds of `avrpc_call_duration_seconds` in the exposition text, for one side. */
function bounds(text: string, side: string): string[] {
  const re = new RegExp(`^avrpc_call_duration_seconds_bucket\\{le="([^"]+)",side="${side}",message="hello"\\} (\\d+)$`, 'gm');
  return [...text.matchAll(re)].map((m) => m[1]!);
}

/** `(value)` of the bucket `le` of one side. */
function bucketCount(text: string, side: string, le: string): number {
  const re = new RegExp(
    `^avrpc_call_duration_seconds_bucket\\{le="${le.replace(/[.+]/g, '\\$&')}",side="${side}",message="hello"\\} (\\d+)$`,
    'm',
  );
  const m = re.exec(text);
  if (m === null) throw new Error(`no bucket le=${le} for ${side} in\n${text}`);
  return Number(m[1]);
}

test('default buckets start at 1 us, increase, and end at 10 s; real calls land in them', async () => {
  assert.is(DEFAULT_LATENCY_BUCKETS[0], 0.000001);
  assert.is(DEFAULT_LATENCY_BUCKETS.at(-1), 10);
  assert.ok(DEFAULT_LATENCY_BUCKETS.every((b, i) => i === 0 || b > DEFAULT_LATENCY_BUCKETS[i - 1]!));
  const register = new Registry();
  const server = createServer({
    protocol,
    handlers: { hello: ({ name }: { name: string }) => `hi ${name}` },
    observer: await createPrometheusObserver({ register }),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    for (let i = 0; i < 20; i++) await client.call('hello', { name: 'a' });
    const text = await register.metrics();
    const les = bounds(text, 'server');
    assert.equal(les, [...DEFAULT_LATENCY_BUCKETS.map(String), '+Inf']);
    assert.is(bucketCount(text, 'server', '+Inf'), 20);
    // Cumulative: never decreasing.
    const counts = les.map((le) => bucketCount(text, 'server', le));
    assert.ok(
      counts.every((n, i) => i === 0 || n >= counts[i - 1]!),
      counts.join(' '),
    );
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test('buckets option: exactly those bounds (seconds), per observer registry', async () => {
  const register = new Registry();
  const observer = await createPrometheusObserver({ side: 'client', register, buckets: [0.001, 0.5] });
  const server = createServer({ protocol, handlers: { hello: () => 'hi' } });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], observer });
  try {
    for (let i = 0; i < 3; i++) await client.call('hello', { name: 'a' });
    const text = await register.metrics();
    assert.equal(bounds(text, 'client'), ['0.001', '0.5', '+Inf']);
    assert.is(bucketCount(text, 'client', '+Inf'), 3);
    // A second observer on that registry shares the histogram: the same buckets, or none given, is
    // fine only when they match; others are refused.
    await createPrometheusObserver({ side: 'server', register, buckets: [0.001, 0.5] });
    const clash = await createPrometheusObserver({ side: 'server', register }).catch((e: unknown) => e);
    assert.instance(clash, RpcError);
    assert.is((clash as RpcError).code, Code.INVALID_ARGUMENT);
    assert.match((clash as RpcError).message, /buckets/);
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test('the histogram reads as prom-client histograms do: JSON samples, and summed by an AggregatorRegistry', async () => {
  const registers = [new Registry(), new Registry()];
  const server = createServer({ protocol, handlers: { hello: () => 'hi' } });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const clients = await Promise.all(
    registers.map(async (register) =>
      createClient({ protocol, endpoints: [`127.0.0.1:${port}`], observer: await createPrometheusObserver({ side: 'client', register }) }),
    ),
  );
  try {
    for (let i = 0; i < 2; i++) await clients[0]!.call('hello', { name: 'a' });
    for (let i = 0; i < 3; i++) await clients[1]!.call('hello', { name: 'a' });
    // What node:cluster workers send their primary: getMetricsAsJSON of each.
    const perWorker = await Promise.all(registers.map((r) => r.getMetricsAsJSON()));
    const merged = AggregatorRegistry.aggregate(perWorker as Parameters<typeof AggregatorRegistry.aggregate>[0]);
    const text = await merged.metrics();
    assert.match(text, /^# TYPE avrpc_call_duration_seconds histogram$/m);
    assert.match(text, /^avrpc_call_duration_seconds_count\{side="client",message="hello"\} 5$/m);
    assert.match(text, /^avrpc_call_duration_seconds_bucket\{le="\+Inf",side="client",message="hello"\} 5$/m);
    const sums = perWorker.map((m) => {
      const h = m.find((x) => x.name === 'avrpc_call_duration_seconds')!;
      return (h.values as Array<{ metricName?: string; value: number }>).find((v) => v.metricName === 'avrpc_call_duration_seconds_sum')!
        .value;
    });
    assert.ok(sums.every((x) => x > 0));
    const sum = Number(/^avrpc_call_duration_seconds_sum\{side="client",message="hello"\} (\S+)$/m.exec(text)![1]);
    assert.ok(Math.abs(sum - (sums[0]! + sums[1]!)) < 1e-9, `${sum} vs ${sums[0]} + ${sums[1]}`);
    // resetMetrics empties it, as it empties prom-client's own.
    registers[0]!.resetMetrics();
    assert.not.match(await registers[0]!.metrics(), /avrpc_call_duration_seconds_count/);
  } finally {
    for (const c of clients) await c.close();
    await server.close({ graceMs: 100 });
  }
});

test('bad buckets are INVALID_ARGUMENT naming the entry', async () => {
  const cases: Array<[unknown, RegExp]> = [
    [[], /non-empty array/],
    ['0.1', /non-empty array/],
    [[0.1, 0.1], /buckets\[1\] must be greater/],
    [[0.2, 0.1], /buckets\[1\] must be greater/],
    [[0, 1], /buckets\[0\] must be a positive/],
    [[0.1, Infinity], /buckets\[1\] must be a positive/],
    [[0.1, '1'], /buckets\[1\] must be a positive/],
  ];
  for (const [buckets, why] of cases) {
    const err = await createPrometheusObserver({ register: new Registry(), buckets: buckets as number[] }).catch((e: unknown) => e);
    assert.instance(err, RpcError, JSON.stringify(buckets));
    assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
    assert.match((err as RpcError).message, why);
  }
});

test.run();
