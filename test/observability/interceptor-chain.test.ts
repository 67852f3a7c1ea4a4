import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  Code,
  RpcError,
  createClient,
  createServer,
  parseProtocol,
  type Client,
  type ClientInterceptor,
  type Server,
  type ServerInterceptor,
} from '../../src/index.js';

const test = suite('interceptor chains: order, auth, tracing across hops, error observers');
const protocol = parseProtocol(`protocol Chain {
  string hello(string name);
  string trace(string name);
  string fail(string how);
}`);

const opened: Array<Client | Server> = [];
async function serve(
  handlers: Record<string, (req: never, ctx: never) => unknown>,
  interceptors: ServerInterceptor[] = [],
): Promise<string> {
  const server = createServer({ protocol, handlers: handlers as never, interceptors });
  opened.push(server);
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return `127.0.0.1:${port}`;
}
function connect(endpoint: string, interceptors: ClientInterceptor[] = []): Client {
  const client = createClient({ protocol, endpoints: [endpoint], interceptors, maxAttempts: 1 });
  opened.push(client);
  return client;
}
test.after.each(async () => {
  for (const c of opened.splice(0).reverse()) await ('call' in c ? c.close() : c.close({ graceMs: 100 }));
});
const codeOf = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => 'resolved',
    (e: unknown) => (e instanceof RpcError ? e.code : e),
  );

test('several interceptors nest in order on both sides, first outermost', async () => {
  const trace: string[] = [];
  const s =
    (name: string): ServerInterceptor =>
    async (req, _ctx, next) => {
      trace.push(`>${name}`);
      const out = await next(req);
      trace.push(`<${name}`);
      return `${name}(${String(out)})`;
    };
  const c =
    (name: string): ClientInterceptor =>
    async (call, next) => {
      trace.push(`>${name}`);
      const out = await next(call);
      trace.push(`<${name}`);
      return `${name}(${String(out)})`;
    };
  const endpoint = await serve(
    {
      hello: (req: { name: string }) => {
        trace.push('handler');
        return req.name;
      },
    },
    [s('s1'), s('s2'), s('s3')],
  );
  const client = connect(endpoint, [c('c1'), c('c2'), c('c3')]);
  assert.is(await client.call('hello', { name: 'x' }), 'c1(c2(c3(s1(s2(s3(x))))))');
  assert.equal(trace, ['>c1', '>c2', '>c3', '>s1', '>s2', '>s3', 'handler', '<s3', '<s2', '<s1', '<c3', '<c2', '<c1']);
});

test('an auth interceptor refuses a call with its code; the handler never runs', async () => {
  let ran = 0;
  const auth: ServerInterceptor = (req, ctx, next) => {
    if (ctx.metadata.authorization !== 'Bearer good') throw new RpcError(Code.UNAUTHENTICATED, 'bad or missing token');
    return next(req);
  };
  const endpoint = await serve(
    {
      hello: (req: { name: string }) => {
        ran++;
        return req.name;
      },
    },
    [auth],
  );
  const client = connect(endpoint);
  const err = await client.call('hello', { name: 'x' }).catch((e: RpcError) => e);
  assert.instance(err, RpcError);
  assert.is(err.code, Code.UNAUTHENTICATED);
  assert.is(err.message, 'bad or missing token');
  assert.is(err.isRemote, true);
  assert.is(await codeOf(client.call('hello', { name: 'x' }, { metadata: { authorization: 'Bearer bad' } })), Code.UNAUTHENTICATED);
  assert.is(ran, 0);
  assert.is(await client.call('hello', { name: 'x' }, { metadata: { authorization: 'Bearer good' } }), 'x');
  assert.is(ran, 1);
});

test('a client interceptor refuses locally; whatever it throws reaches the caller as an RpcError', async () => {
  let ran = 0;
  const endpoint = await serve({
    hello: (req: { name: string }) => {
      ran++;
      return req.name;
    },
  });
  const deny: ClientInterceptor = async (call, next) => {
    if (call.message === 'hello' && (call.request as { name: string }).name === 'root')
      throw new RpcError(Code.PERMISSION_DENIED, 'not root');
    return next(call);
  };
  const plain: ClientInterceptor = (call, next) => {
    if ((call.request as { name: string }).name === 'crash') throw new Error('interceptor bug'); // synchronous, not an RpcError
    return next(call);
  };
  const client = connect(endpoint, [deny, plain]);
  const denied = await client.call('hello', { name: 'root' }).catch((e: RpcError) => e);
  assert.is(denied.code, Code.PERMISSION_DENIED);
  const crashed = await client.call('hello', { name: 'crash' }).catch((e: unknown) => e);
  assert.instance(crashed, RpcError);
  assert.is((crashed as RpcError).code, Code.INTERNAL);
  assert.is((crashed as RpcError).message, 'interceptor bug');
  assert.is(ran, 0, 'refused calls never left the client');
  assert.is(await client.call('hello', { name: 'ann' }), 'ann');
});

test('a tracing interceptor pair carries a trace id through metadata across two hops', async () => {
  // The tracing library's own context, as OpenTelemetry keeps it: server side enters it, client side reads it.
  const current = new AsyncLocalStorage<string>();
  const spans: string[] = [];
  let minted = 0;
  const traceOut =
    (hop: string): ClientInterceptor =>
    (call, next) => {
      const id = current.getStore() ?? `trace-${++minted}`;
      spans.push(`${hop} ${call.message} ${id}`);
      return next({ ...call, options: { ...call.options, metadata: { ...call.options.metadata, 'trace-id': id } } });
    };
  const traceIn =
    (hop: string): ServerInterceptor =>
    (req, ctx, next) => {
      const id = ctx.metadata['trace-id'] ?? 'none';
      spans.push(`${hop} ${ctx.message} ${id}`);
      return current.run(id, () => next(req));
    };
  // Hop 2: reports the trace id it received.
  const b = await serve({ trace: (_req: unknown, ctx: { metadata: Record<string, string> }) => `b saw ${ctx.metadata['trace-id']}` }, [
    traceIn('B'),
  ]);
  const toB = connect(b, [traceOut('A->B')]);
  // Hop 1: calls B from its handler; its metadata is never copied by hand.
  const a = await serve({ trace: async (req: { name: string }) => `a, ${await toB.call('trace', req)}` }, [traceIn('A')]);
  const client = connect(a, [traceOut('client')]);

  const [one, two] = await Promise.all([client.call('trace', { name: 'x' }), client.call('trace', { name: 'y' })]);
  assert.is(one, 'a, b saw trace-1');
  assert.is(two, 'a, b saw trace-2');
  for (const id of ['trace-1', 'trace-2']) {
    assert.equal(
      spans.filter((s) => s.endsWith(` ${id}`)).map((s) => s.split(' ')[0]),
      ['client', 'A', 'A->B', 'B'],
    );
  }
  assert.is(spans.length, 8);
  assert.is(minted, 2, 'only the outermost client minted ids');
});

test('error-observing interceptors see every failure with its code and pass it on unchanged', async () => {
  const seen: string[] = [];
  const observeServer: ServerInterceptor = async (req, ctx, next) => {
    try {
      return await next(req);
    } catch (err) {
      seen.push(`server ${ctx.message} ${RpcError.from(err).codeName}`);
      throw err;
    }
  };
  const observeClient: ClientInterceptor = async (call, next) => {
    try {
      return await next(call);
    } catch (err) {
      seen.push(`client ${call.message} ${(err as RpcError).codeName}`);
      throw err;
    }
  };
  const endpoint = await serve(
    {
      fail: (req: { how: string }, ctx: { signal: AbortSignal }) => {
        if (req.how === 'not-found') throw new RpcError(Code.NOT_FOUND, 'gone');
        // Answers only once the propagated deadline has passed on the server too.
        if (req.how === 'slow') return new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve('late')));
        throw new TypeError('bug');
      },
      hello: (req: { name: string }) => req.name,
    },
    [observeServer],
  );
  const client = connect(endpoint, [observeClient]);
  assert.is(await codeOf(client.call('fail', { how: 'not-found' })), Code.NOT_FOUND);
  assert.is(await codeOf(client.call('fail', { how: 'bug' })), Code.INTERNAL);
  assert.is(await codeOf(client.call('fail', { how: 'slow' }, { timeoutMs: 20 })), Code.DEADLINE_EXCEEDED);
  assert.is(await client.call('hello', { name: 'ok' }), 'ok');
  assert.equal(seen, [
    'server fail NOT_FOUND',
    'client fail NOT_FOUND',
    'server fail INTERNAL',
    'client fail INTERNAL',
    'client fail DEADLINE_EXCEEDED',
  ]);
});

test.run();
