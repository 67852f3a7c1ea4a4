import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry, register as defaultRegister } from 'prom-client';
import { newCallInfo } from '../../src/observability/call-info.js';
import { Code, RpcError, createClient, createPrometheusObserver, createServer, parseProtocol } from '../../src/index.js';

const test = suite('Prometheus metrics: exact values after real calls');
const protocol = parseProtocol(`protocol Shop {
  string greet(string name);
  string boom();
  string fail();
  string secret();
  string bad();
  string slow();
}`);

type Labels = Record<string, string>;

/** The value of one sample of `name` whose labels include `labels`; undefined when there is none. */
async function sample(register: Registry, name: string, labels: Labels = {}): Promise<number | undefined> {
  const metric = (await register.getMetricsAsJSON()).find((m) => m.name === name);
  if (metric === undefined) return undefined;
  const hits = (metric.values as Array<{ value: number; labels: Labels; metricName?: string }>).filter(
    (v) => (v.metricName ?? name) === name && Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${hits.length} samples`);
  return hits[0]?.value;
}

/** The count of a histogram's observations for `labels`. */
async function histogramCount(register: Registry, name: string, labels: Labels): Promise<number | undefined> {
  const metric = (await register.getMetricsAsJSON()).find((m) => m.name === name);
  const v = (metric?.values as Array<{ value: number; labels: Labels; metricName?: string }> | undefined)?.find(
    (s) => s.metricName === `${name}_count` && Object.entries(labels).every(([k, want]) => String(s.labels[k]) === want),
  );
  return v?.value;
}

/** Waits (bounded) until `check` holds: for state another process-side event loop turn settles. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error(`never true: ${what}`);
}

test('calls by message and code, latency counts, in flight, bytes, connections and pool state', async () => {
  const serverRegister = new Registry();
  const clientRegister = new Registry();
  let release = (): void => {};
  let entered!: () => void;
  const slowEntered = new Promise<void>((r) => {
    entered = r;
  });
  const server = createServer({
    protocol,
    handlers: {
      greet: (req: { name: string }) => `hi ${req.name}`,
      boom: () => {
        throw new Error('kaput');
      },
      fail: () => {
        throw new RpcError(Code.NOT_FOUND, 'no such thing');
      },
      secret: () => 'never',
      bad: () => 42 as unknown as string,
      slow: () =>
        new Promise<string>((resolve) => {
          release = () => resolve('done');
          entered();
        }),
    },
    authorize: (_principal, message) => message !== 'secret',
    observer: await createPrometheusObserver({ side: 'server', register: serverRegister }),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const endpoint = `127.0.0.1:${port}`;
  // No `pool` option: createClient attaches its pool to the observer by itself.
  const client = createClient({
    protocol,
    endpoints: [endpoint],
    connectionsPerEndpoint: 2,
    observer: await createPrometheusObserver({ side: 'client', register: clientRegister }),
  });
  const code = (p: Promise<unknown>) =>
    p.then(
      () => Code.OK,
      (e: RpcError) => e.code,
    );
  try {
    for (let i = 0; i < 3; i++) assert.is(await client.call('greet', { name: 'a' }), 'hi a');
    assert.is(await code(client.call('boom', {})), Code.INTERNAL);
    assert.is(await code(client.call('fail', {})), Code.NOT_FOUND);
    assert.is(await code(client.call('secret', {})), Code.PERMISSION_DENIED);
    assert.is(await code(client.call('bad', {})), Code.INTERNAL);
    assert.is(await code(client.call('greet', { name: 'late' }, { timeoutMs: 0 })), Code.DEADLINE_EXCEEDED);

    const slow = client.call('slow', {});
    await slowEntered;
    assert.is(await sample(serverRegister, 'avrpc_calls_in_flight', { side: 'server' }), 1);
    assert.is(await sample(clientRegister, 'avrpc_calls_in_flight', { side: 'client' }), 1);
    assert.is(await sample(clientRegister, 'avrpc_pool_in_flight', { endpoint }), 1);
    release();
    assert.is(await slow, 'done');

    const expected: Array<[string, string, number]> = [
      ['greet', 'OK', 3],
      ['boom', 'INTERNAL', 1],
      ['fail', 'NOT_FOUND', 1],
      ['secret', 'PERMISSION_DENIED', 1],
      ['bad', 'INTERNAL', 1],
      ['slow', 'OK', 1],
    ];
    for (const [message, c, n] of expected) {
      assert.is(await sample(serverRegister, 'avrpc_calls_total', { side: 'server', message, code: c }), n, `server ${message} ${c}`);
      assert.is(await sample(clientRegister, 'avrpc_calls_total', { side: 'client', message, code: c }), n, `client ${message} ${c}`);
    }
    // Refused locally before it was sent: the client counts it, the server never saw it.
    assert.is(await sample(clientRegister, 'avrpc_calls_total', { message: 'greet', code: 'DEADLINE_EXCEEDED' }), 1);
    assert.is(await sample(serverRegister, 'avrpc_calls_total', { message: 'greet', code: 'DEADLINE_EXCEEDED' }), undefined);
    const serverCalls = (await serverRegister.getMetricsAsJSON()).find((m) => m.name === 'avrpc_calls_total')!.values;
    assert.is(serverCalls.length, expected.length, 'no other label set on the server');

    assert.is(await histogramCount(serverRegister, 'avrpc_call_duration_seconds', { side: 'server', message: 'greet' }), 3);
    assert.is(await histogramCount(serverRegister, 'avrpc_call_duration_seconds', { side: 'server', message: 'secret' }), 1);
    assert.is(await histogramCount(clientRegister, 'avrpc_call_duration_seconds', { side: 'client', message: 'greet' }), 4);
    assert.is(await histogramCount(clientRegister, 'avrpc_call_duration_seconds', { side: 'client', message: 'slow' }), 1);

    // Every call has settled: nothing in flight on either side (denied calls included).
    assert.is(await sample(serverRegister, 'avrpc_calls_in_flight', { side: 'server' }), 0);
    assert.is(await sample(clientRegister, 'avrpc_calls_in_flight', { side: 'client' }), 0);

    assert.equal(
      client.stats().map((s) => s.ready),
      [2],
    );
    assert.is(await sample(serverRegister, 'avrpc_connections', { side: 'server' }), 2);
    assert.is(await sample(clientRegister, 'avrpc_connections', { side: 'client' }), 2);
    assert.is(await sample(clientRegister, 'avrpc_pool_connections', { endpoint }), 2);
    assert.is(await sample(clientRegister, 'avrpc_pool_ready_connections', { endpoint }), 2);
    assert.is(await sample(clientRegister, 'avrpc_pool_in_flight', { endpoint }), 0);
    assert.is(await sample(clientRegister, 'avrpc_pool_ejected', { endpoint }), 0);
    assert.is(await sample(serverRegister, 'avrpc_pool_ready_connections'), undefined, 'a server has no pool metrics');

    // Every byte one side wrote, the other read: the counters agree exactly.
    const clientSent = (await sample(clientRegister, 'avrpc_bytes_sent_total', { side: 'client' }))!;
    const clientReceived = (await sample(clientRegister, 'avrpc_bytes_received_total', { side: 'client' }))!;
    assert.ok(clientSent > 0 && clientReceived > 0);
    assert.is(await sample(serverRegister, 'avrpc_bytes_received_total', { side: 'server' }), clientSent);
    assert.is(await sample(serverRegister, 'avrpc_bytes_sent_total', { side: 'server' }), clientReceived);
  } finally {
    release();
    await client.close();
  }
  try {
    assert.is(await sample(clientRegister, 'avrpc_connections', { side: 'client' }), 0);
    assert.is(await sample(clientRegister, 'avrpc_pool_ready_connections', { endpoint }), undefined, 'a closed client is detached');
    await eventually(
      'server connections back to 0',
      async () => (await sample(serverRegister, 'avrpc_connections', { side: 'server' })) === 0,
    );
  } finally {
    await server.close({ graceMs: 100 });
  }
});

test('cancelled and timed-out calls count under their codes, and leave nothing in flight', async () => {
  const serverRegister = new Registry();
  const clientRegister = new Registry();
  let waiting = 0;
  const server = createServer({
    protocol,
    // Answers only when the call is cancelled or its deadline passes.
    handlers: {
      slow: (_req: unknown, ctx) =>
        new Promise<string>((resolve) => {
          waiting++;
          ctx.signal.addEventListener('abort', () => resolve('late'));
        }),
    },
    observer: await createPrometheusObserver({ side: 'server', register: serverRegister }),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({
    protocol,
    endpoints: [`127.0.0.1:${port}`],
    observer: await createPrometheusObserver({ side: 'client', register: clientRegister }),
  });
  try {
    const abort = new AbortController();
    const cancelled = client.call('slow', {}, { signal: abort.signal }).catch((e: RpcError) => e.code);
    await eventually('the handler runs', async () => waiting === 1);
    abort.abort();
    assert.is(await cancelled, Code.CANCELLED);
    assert.is(await client.call('slow', {}, { timeoutMs: 30 }).catch((e: RpcError) => e.code), Code.DEADLINE_EXCEEDED);
    const serverEnded = async (): Promise<number> => {
      const m = (await serverRegister.getMetricsAsJSON()).find((x) => x.name === 'avrpc_calls_total');
      return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
    };
    await eventually('the server saw both calls end', async () => (await serverEnded()) === 2);
    assert.is(await sample(clientRegister, 'avrpc_calls_total', { message: 'slow', code: 'CANCELLED' }), 1);
    assert.is(await sample(clientRegister, 'avrpc_calls_total', { message: 'slow', code: 'DEADLINE_EXCEEDED' }), 1);
    // The first call had no deadline: only the client's CANCEL could end it.
    assert.ok((await sample(serverRegister, 'avrpc_calls_total', { message: 'slow', code: 'CANCELLED' }))! >= 1);
    // The second call ended on the server by its own deadline or by the client's CANCEL, whichever came first.
    const serverCodes = (await serverRegister.getMetricsAsJSON())
      .find((x) => x.name === 'avrpc_calls_total')!
      .values.map((v) => v.labels.code);
    assert.ok(
      serverCodes.every((c) => c === 'CANCELLED' || c === 'DEADLINE_EXCEEDED'),
      String(serverCodes),
    );
    assert.is(await sample(serverRegister, 'avrpc_calls_in_flight', { side: 'server' }), 0);
    assert.is(await sample(clientRegister, 'avrpc_calls_in_flight', { side: 'client' }), 0);
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test('an endpoint ejected by outlier detection shows in the pool gauge', async () => {
  const clientRegister = new Registry();
  const server = createServer({
    protocol,
    handlers: {
      boom: () => {
        throw new Error('kaput');
      },
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const endpoint = `127.0.0.1:${port}`;
  const client = createClient({
    protocol,
    endpoints: [endpoint],
    ejectAfterFailures: 2,
    ejectMs: 60_000,
    observer: await createPrometheusObserver({ side: 'client', register: clientRegister }),
  });
  try {
    await client.call('boom', {}).catch(() => undefined);
    assert.is(await sample(clientRegister, 'avrpc_pool_ejected', { endpoint }), 0);
    await client.call('boom', {}).catch(() => undefined);
    assert.is(await sample(clientRegister, 'avrpc_pool_ejected', { endpoint }), 1);
    assert.is(await sample(clientRegister, 'avrpc_calls_total', { message: 'boom', code: 'INTERNAL' }), 2);
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test('one observer shared by two clients adds their pools up per endpoint', async () => {
  const register = new Registry();
  const server = createServer({ protocol, handlers: { greet: (req: { name: string }) => req.name } });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const endpoint = `127.0.0.1:${port}`;
  const observer = await createPrometheusObserver({ side: 'client', register });
  const a = createClient({ protocol, endpoints: [endpoint], observer });
  const b = createClient({ protocol, endpoints: [endpoint], observer, connectionsPerEndpoint: 2 });
  try {
    await Promise.all([a.call('greet', { name: 'a' }), b.call('greet', { name: 'b' })]);
    await eventually('b has both sockets ready', async () => b.stats()[0]!.ready === 2);
    assert.is(await sample(register, 'avrpc_pool_ready_connections', { endpoint }), 3);
    assert.is(await sample(register, 'avrpc_connections', { side: 'client' }), 3);
    await b.close();
    assert.is(await sample(register, 'avrpc_pool_ready_connections', { endpoint }), 1);
    assert.is(await sample(register, 'avrpc_calls_total', { message: 'greet', code: 'OK' }), 2);
  } finally {
    await a.close();
    await b.close();
    await server.close({ graceMs: 100 });
  }
});

test('a server and a client in one process share the default registry: one /metrics, told apart by side', async () => {
  // The middle hop of a call chain: it serves and it calls. Both observers use prom-client's global registry.
  const serverObserver = await createPrometheusObserver({ side: 'server' });
  const clientObserver = await createPrometheusObserver({ side: 'client' });
  assert.is(serverObserver.register, defaultRegister);
  assert.is(clientObserver.register, defaultRegister);
  const server = createServer({ protocol, handlers: { greet: (req: { name: string }) => req.name }, observer: serverObserver });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const endpoint = `127.0.0.1:${port}`;
  const client = createClient({ protocol, endpoints: [endpoint], observer: clientObserver });
  const r = defaultRegister as Registry;
  try {
    for (let i = 0; i < 3; i++) await client.call('greet', { name: 'x' });
    assert.is(await sample(r, 'avrpc_calls_total', { side: 'server', message: 'greet', code: 'OK' }), 3);
    assert.is(await sample(r, 'avrpc_calls_total', { side: 'client', message: 'greet', code: 'OK' }), 3);
    assert.is(await histogramCount(r, 'avrpc_call_duration_seconds', { side: 'server', message: 'greet' }), 3);
    assert.is(await histogramCount(r, 'avrpc_call_duration_seconds', { side: 'client', message: 'greet' }), 3);
    assert.is(await sample(r, 'avrpc_connections', { side: 'client' }), 1);
    assert.is(await sample(r, 'avrpc_pool_ready_connections', { endpoint }), 1);
    const sent = (await sample(r, 'avrpc_bytes_sent_total', { side: 'client' }))!;
    assert.ok(sent > 0);
    assert.is(await sample(r, 'avrpc_bytes_received_total', { side: 'server' }), sent);
    assert.match(await defaultRegister.metrics(), /avrpc_calls_total\{side="server",message="greet",code="OK"\} 3/);
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test('two observers of one side on one registry add up; a cleared registry gets its metrics again', async () => {
  const register = new Registry();
  const servers = [
    createServer({
      protocol,
      handlers: { greet: (req: { name: string }) => req.name },
      observer: await createPrometheusObserver({ side: 'server', register }),
    }),
    createServer({
      protocol,
      handlers: { greet: (req: { name: string }) => req.name },
      observer: await createPrometheusObserver({ side: 'server', register }),
    }),
  ];
  const ports = await Promise.all(servers.map(async (s) => (await s.listen({ host: '127.0.0.1', port: 0 })).port));
  const clients = ports.map((port) => createClient({ protocol, endpoints: [`127.0.0.1:${port}`] }));
  try {
    await clients[0]!.call('greet', { name: 'a' });
    for (let i = 0; i < 2; i++) await clients[1]!.call('greet', { name: 'b' });
    assert.is(await sample(register, 'avrpc_calls_total', { side: 'server', message: 'greet', code: 'OK' }), 3);
    assert.is(await histogramCount(register, 'avrpc_call_duration_seconds', { side: 'server', message: 'greet' }), 3);
    assert.is(await sample(register, 'avrpc_connections', { side: 'server' }), 2);
    register.clear();
    const again = await createPrometheusObserver({ side: 'server', register });
    again.callEnded!('greet', Code.OK, 1, newCallInfo('server', 'Shop', 'greet', 'unary', '', undefined, Infinity, undefined, 0));
    assert.is(await sample(register, 'avrpc_calls_total', { side: 'server', message: 'greet', code: 'OK' }), 1);
  } finally {
    for (const c of clients) await c.close();
    for (const s of servers) await s.close({ graceMs: 100 });
  }
});

test.run();
