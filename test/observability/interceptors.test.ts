import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Registry } from 'prom-client';
import {
  Code,
  RpcError,
  createClient,
  createPrometheusObserver,
  createServer,
  parseProtocol,
  type ClientInterceptor,
  type Logger,
  type PoolStat,
  type ServerInterceptor,
} from '../../src/index.js';

const test = suite('interceptors, observer metrics, logger');
const protocol = parseProtocol(`protocol Greeter { string greet(string name); string boom(); }`);

test('client and server interceptors run in order, can change the call, and see errors', async () => {
  const trace: string[] = [];
  const server = createServer({
    protocol,
    handlers: {
      greet: (req: { name: string }, ctx) => `hello ${req.name} (${ctx.metadata.tag})`,
      boom: () => {
        throw new Error('kaput');
      },
    },
    interceptors: [
      async (req, ctx, next) => {
        trace.push(`s1 ${ctx.message}`);
        try {
          return await next(req);
        } finally {
          trace.push('s1 done');
        }
      },
      (async (req, _ctx, next) => {
        trace.push('s2');
        return `${await next({ name: `${(req as { name: string }).name}!` })}`;
      }) as ServerInterceptor,
    ],
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const tagger: ClientInterceptor = (call, next) => {
    trace.push(`c ${call.message}`);
    return next({ ...call, options: { ...call.options, metadata: { tag: 'x' } } });
  };
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], interceptors: [tagger] });
  try {
    assert.is(await client.call('greet', { name: 'ann' }), 'hello ann! (x)');
    assert.equal(trace, ['c greet', 's1 greet', 's2', 's1 done']);
    const err = await client.call('boom', {}).catch((e: unknown) => e);
    assert.is((err as RpcError).code, Code.INTERNAL);
    assert.is((err as RpcError).message, 'kaput');
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test('the Prometheus observer counts calls by code, bytes, connections and pool state', async () => {
  const serverRegister = new Registry();
  const clientRegister = new Registry();
  const logs: string[] = [];
  const logger: Logger = {
    debug() {},
    info: (_o, m) => logs.push(`info ${m}`),
    warn: (_o, m) => logs.push(`warn ${m}`),
    error: (_o, m) => logs.push(`error ${m}`),
  };
  const server = createServer({
    protocol,
    handlers: {
      greet: (req: { name: string }) => `hi ${req.name}`,
      boom: () => {
        throw new Error('kaput');
      },
    },
    observer: await createPrometheusObserver({ side: 'server', register: serverRegister }),
    logger,
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  // Annotated: the client's type would otherwise depend on itself through the observer option.
  const pool = { stats: (): PoolStat[] => client.stats() };
  const client = createClient({
    protocol,
    endpoints: [`127.0.0.1:${port}`],
    observer: await createPrometheusObserver({ side: 'client', register: clientRegister, pool }),
  });
  try {
    for (let i = 0; i < 5; i++) await client.call('greet', { name: 'a' });
    await client.call('boom', {}).catch(() => undefined);
    const s = await serverRegister.metrics();
    assert.match(s, /avrpc_calls_total\{side="server",message="greet",code="OK"\} 5/);
    assert.match(s, /avrpc_calls_total\{side="server",message="boom",code="INTERNAL"\} 1/);
    assert.match(s, /avrpc_calls_in_flight\{side="server"\} 0/);
    assert.match(s, /avrpc_connections\{side="server"\} 1/);
    assert.match(s, /avrpc_bytes_received_total\{side="server"\} [1-9]/);
    assert.match(s, /avrpc_call_duration_seconds_count\{side="server",message="greet"\} 5/);
    const c = await clientRegister.metrics();
    assert.match(c, /avrpc_calls_total\{side="client",message="greet",code="OK"\} 5/);
    assert.match(c, new RegExp(`avrpc_pool_ready_connections\\{endpoint="127.0.0.1:${port}"\\} 1`));
    assert.ok(logs.includes('error handler failed'), 'the INTERNAL failure was logged');
  } finally {
    await client.close();
    await server.close({ graceMs: 100 });
  }
});

test('bad interceptors and loggers are refused with the option path', () => {
  assert.throws(
    () => createServer({ protocol, handlers: {}, interceptors: [1 as never] }),
    (e: RpcError) => e.code === Code.INVALID_ARGUMENT && /options\.interceptors/.test(e.message),
  );
  assert.throws(
    () => createClient({ protocol, endpoints: ['127.0.0.1:1'], logger: {} as never }),
    (e: RpcError) => /options\.logger/.test(e.message),
  );
});

test('interceptors with workers are refused: they would skip worker-offloaded calls', async () => {
  const { bulkProtocol } = await import('../offload/bulk-protocol.js');
  const deny: ServerInterceptor = () => {
    throw new RpcError(Code.PERMISSION_DENIED, 'denied');
  };
  let server: ReturnType<typeof createServer> | undefined;
  try {
    server = createServer({
      protocol: bulkProtocol(),
      handlers: {},
      interceptors: [deny],
      workers: { module: new URL('../offload/bulk-handlers.js', import.meta.url), messages: ['echo'], offload: 'always' },
    });
  } catch (err) {
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
    assert.match(
      (err as Error).message,
      /options\.interceptors cannot be combined with options\.workers.*options\.authorize or options\.acl/,
    );
  }
  if (server !== undefined) await server.close();
  assert.is(server, undefined, 'createServer accepted an auth interceptor that worker calls would bypass');
});

test.run();
