/**
 * The gRPC bridge end to end: real grpc-js clients (avsc serializers, proto-loader for health) on
 * 127.0.0.1 against `createServer({ grpc: { port: 0 } })`.
 */
import * as grpc from '@grpc/grpc-js';
import { connect as http2Connect } from 'node:http2';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createServer, type CallContext, type Protocol, type Server, type ServerOptions } from '../../src/index.js';
import { ERROR_BIN_KEY, ERROR_TYPE_KEY } from '../../src/server/grpc/grpc-bridge.js';
import { item, loadEcho } from '../helpers/echo-fixture.js';
import { avroClient, healthClient, rawClient, rawUnary, unary } from './grpc-client.js';

const test = suite('grpc bridge');

let protocol: Protocol;
const servers: Server[] = [];
const clients: grpc.Client[] = [];

async function start(options: Partial<ServerOptions> = {}): Promise<{ server: Server; port: number; grpcPort: number }> {
  const server = createServer({ protocol, handlers: { echo: (r: { item: unknown }) => r.item }, grpc: { port: 0 }, ...options });
  servers.push(server);
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  assert.ok(bound.grpc !== undefined, 'listen reports the grpc port');
  return { server, port: bound.port, grpcPort: bound.grpc.port };
}

/** An avsc record as a plain object (records decode as instances of their generated class). */
const plain = (v: unknown): unknown => ({ ...(v as object) });

function client(port: number): grpc.Client {
  const c = avroClient(protocol, port);
  clients.push(c);
  return c;
}

test.before(async () => {
  protocol = await loadEcho();
});

test.after.each(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 100 })));
});

test('a unary call round-trips the Avro record; metadata goes both ways', async () => {
  let seen: CallContext | undefined;
  const { grpcPort, port } = await start({
    handlers: {
      echo: (r: { item: unknown }, ctx: CallContext) => {
        seen = ctx;
        ctx.responseHeader['x-served-by'] = 'bridge';
        ctx.responseTrailer['x-rows'] = '1';
        return r.item;
      },
    },
  });
  assert.is.not(grpcPort, port);
  const md = new grpc.Metadata();
  md.set('tenant', 'blue');
  const r = await unary(client(grpcPort), 'echo', { item: item(7, 40) }, md);
  assert.is(r.error, undefined, String(r.error));
  assert.equal(plain(r.value), item(7, 40));
  assert.is(seen!.metadata['tenant'], 'blue');
  // Transport headers are not call metadata.
  assert.ok(!Object.keys(seen!.metadata).some((k) => k.startsWith('grpc-') || k === 'content-type' || k === 'user-agent'));
  assert.is(seen!.deadline, Infinity);
  assert.is(seen!.peer.address, '127.0.0.1');
  assert.is(r.headers?.get('x-served-by')[0], 'bridge');
  assert.is(r.status?.code, grpc.status.OK);
  assert.is(r.status?.metadata.get('x-rows')[0], '1');
});

test('a declared error: UNKNOWN with the error type and its Avro binary in the trailers', async () => {
  const EchoError = protocol.type('avrpc.echo.EchoError')!;
  const { grpcPort } = await start({
    handlers: { fail: (r: { reason: string }) => Promise.reject(EchoError.clone({ reason: r.reason }, { wrapUnions: false })) },
  });
  const r = await unary(client(grpcPort), 'fail', { reason: 'no luck' });
  assert.is(r.error?.code, grpc.status.UNKNOWN);
  assert.is(r.status?.metadata.get(ERROR_TYPE_KEY)[0], 'avrpc.echo.EchoError');
  const bin = r.status?.metadata.get(ERROR_BIN_KEY)[0];
  assert.instance(bin, Buffer);
  assert.equal({ ...(EchoError.fromBuffer(bin as Buffer) as object) }, { reason: 'no luck' });
});

test('an RpcError keeps its code, message and metadata', async () => {
  const { grpcPort } = await start({
    handlers: { echo: () => Promise.reject(new RpcError(Code.NOT_FOUND, 'no such item', { metadata: { 'x-why': 'gone' } })) },
  });
  const r = await unary(client(grpcPort), 'echo', { item: item(1) });
  assert.is(r.error?.code, grpc.status.NOT_FOUND);
  assert.is(r.error?.details, 'no such item');
  assert.is(r.status?.metadata.get('x-why')[0], 'gone');
});

test('a one-way message answers an empty message once its handler ran', async () => {
  let got: unknown;
  const { grpcPort } = await start({ handlers: { notify: (r: { item: unknown }) => void (got = r.item) } });
  const r = await unary(client(grpcPort), 'notify', { item: item(3) });
  assert.is(r.error, undefined, String(r.error));
  assert.is(r.value, undefined);
  assert.equal(plain(got), item(3));
});

test('the gRPC deadline is the call deadline; passing it aborts the handler with DEADLINE_EXCEEDED', async () => {
  let ctx: CallContext | undefined;
  const aborted = new Promise<unknown>((resolve) => {
    void start({
      handlers: {
        echo: (_r: unknown, c: CallContext) => {
          ctx = c;
          c.signal.addEventListener('abort', () => resolve(c.signal.reason));
          return new Promise(() => {});
        },
      },
    }).then(({ grpcPort }) =>
      unary(client(grpcPort), 'echo', { item: item(1) }, new grpc.Metadata(), { deadline: Date.now() + 300 }).then((r) => {
        assert.is(r.error?.code, grpc.status.DEADLINE_EXCEEDED);
      }),
    );
  });
  const reason = await aborted;
  assert.instance(reason, RpcError);
  assert.is((reason as RpcError).code, Code.DEADLINE_EXCEEDED);
  assert.ok(Number.isFinite(ctx!.deadline));
});

test('a client cancel aborts the handler with CANCELLED', async () => {
  let resolveStarted!: () => void;
  const started = new Promise<void>((r) => (resolveStarted = r));
  let reason: unknown;
  const ended = new Promise<void>((resolve) => {
    void start({
      handlers: {
        echo: (_r: unknown, c: CallContext) => {
          c.signal.addEventListener('abort', () => {
            reason = c.signal.reason;
            resolve();
          });
          resolveStarted();
          return new Promise(() => {});
        },
      },
    }).then(({ grpcPort }) =>
      unary(client(grpcPort), 'echo', { item: item(1) }, new grpc.Metadata(), {}, (call) => void started.then(() => call.cancel())),
    );
  });
  await ended;
  assert.is((reason as RpcError).code, Code.CANCELLED);
});

test('Bearer tokens go through authenticate; authorize refuses with PERMISSION_DENIED', async () => {
  const { grpcPort } = await start({
    authenticate: ({ token }) => {
      if (token !== 'good' && token !== 'reader') throw new Error('bad token');
      return token;
    },
    authorize: (principal) => principal === 'good',
    handlers: { echo: (_r: unknown, ctx: CallContext) => ({ ...item(1), name: String(ctx.peer.principal) }) },
  });
  const c = client(grpcPort);
  const as = (token: string | undefined) => {
    const md = new grpc.Metadata();
    if (token !== undefined) md.set('authorization', `Bearer ${token}`);
    return unary(c, 'echo', { item: item(1) }, md);
  };
  const ok = await as('good');
  assert.is((ok.value as { name: string }).name, 'good');
  assert.is((await as('bad')).error?.code, grpc.status.UNAUTHENTICATED);
  assert.is((await as(undefined)).error?.code, grpc.status.UNAUTHENTICATED);
  assert.is((await as('reader')).error?.code, grpc.status.PERMISSION_DENIED);
});

test('bad request bytes are INVALID_ARGUMENT; unknown methods and messages without handler UNIMPLEMENTED', async () => {
  const { grpcPort } = await start();
  const raw = rawClient(grpcPort);
  clients.push(raw);
  const bad = await rawUnary(raw, `/${protocol.name}/echo`, Buffer.from([0xff, 0xff, 0xff]));
  assert.is(bad.error?.code, grpc.status.INVALID_ARGUMENT);
  const trailing = await rawUnary(
    raw,
    `/${protocol.name}/fail`,
    Buffer.concat([protocol.message('fail')!.request.toBuffer({ reason: 'x' }), Buffer.from([1])]),
  );
  assert.is(trailing.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.is((await rawUnary(raw, `/${protocol.name}/nope`, Buffer.alloc(0))).error?.code, grpc.status.UNIMPLEMENTED);
  assert.is((await unary(client(grpcPort), 'fail', { reason: 'x' })).error?.code, grpc.status.UNIMPLEMENTED);
});

test('application/grpc+avro is accepted (raw HTTP/2 client)', async () => {
  const { grpcPort } = await start();
  const session = http2Connect(`http://127.0.0.1:${grpcPort}`);
  try {
    const body = protocol.message('echo')!.request.toBuffer({ item: item(5) });
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    const req = session.request({
      ':method': 'POST',
      ':path': `/${protocol.name}/echo`,
      'content-type': 'application/grpc+avro',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    let trailers: Record<string, unknown> = {};
    req.on('trailers', (t) => (trailers = t));
    req.end(frame);
    await once(req, 'end');
    assert.is(trailers['grpc-status'], '0');
    const out = Buffer.concat(chunks);
    assert.equal(plain(protocol.message('echo')!.response.fromBuffer(out.subarray(5, 5 + out.readUInt32BE(1)))), item(5));
  } finally {
    session.close();
  }
});

test('grpc.health.v1.Health/Check: SERVING, NOT_FOUND for another service, NOT_SERVING while draining', async () => {
  let release!: () => void;
  let resolveStarted!: () => void;
  const started = new Promise<void>((r) => (resolveStarted = r));
  const { server, grpcPort } = await start({
    handlers: {
      echo: (r: { item: unknown }) => {
        resolveStarted();
        return new Promise((resolve) => (release = () => resolve(r.item)));
      },
    },
  });
  const health = healthClient(grpcPort);
  clients.push(health);
  const check = (service: string) =>
    new Promise<{ status?: string; code?: number }>((resolve) =>
      (health as unknown as { Check: grpc.requestCallback<unknown> & ((...a: unknown[]) => void) }).Check(
        { service },
        (err: grpc.ServiceError | null, res?: { status: string }) => resolve(err === null ? { status: res!.status } : { code: err.code }),
      ),
    );
  assert.equal(await check(''), { status: 'SERVING' });
  assert.equal(await check(protocol.name), { status: 'SERVING' });
  assert.equal(await check('other.Service'), { code: grpc.status.NOT_FOUND });
  // A call running when close begins finishes; the server drains meanwhile.
  const running = unary(client(grpcPort), 'echo', { item: item(9) });
  await started;
  const closed = server.close({ graceMs: 5000 });
  const during = await check('');
  // grpc-js refuses new streams once shutting down (UNAVAILABLE) or the check runs first: never SERVING.
  assert.ok(during.status === 'NOT_SERVING' || during.code === grpc.status.UNAVAILABLE, JSON.stringify(during));
  release();
  assert.equal(plain((await running).value), item(9));
  await closed;
});

test('interceptors and the observer see gRPC calls as avrpc calls', async () => {
  const ended: Array<[string, number]> = [];
  const { grpcPort } = await start({
    interceptors: [
      async (request, ctx, next) => {
        const out = (await next(request)) as { name: string };
        return { ...out, name: `${out.name} via ${ctx.message}` };
      },
    ],
    observer: { callEnded: (message, code) => void ended.push([message, code]) },
  });
  const r = await unary(client(grpcPort), 'echo', { item: item(4) });
  assert.is((r.value as { name: string }).name, 'item-4 via echo');
  assert.equal(ended, [['echo', Code.OK]]);
});

test('a request over maxMessageBytes is RESOURCE_EXHAUSTED; no handler runs', async () => {
  let ran = false;
  const { grpcPort } = await start({
    maxMessageBytes: 1024,
    handlers: { echo: (r: { item: unknown }) => ((ran = true), r.item) },
  });
  const r = await unary(client(grpcPort), 'echo', { item: item(1, 4096) });
  assert.is(r.error?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.is(ran, false);
  assert.is((await unary(client(grpcPort), 'echo', { item: item(1, 16) })).error, undefined, 'a small one still passes');
});

test('the grpc option is checked: port required and bounded, no other names', () => {
  for (const bad of [{}, { port: -1 }, { port: 70000 }, { port: 1, host: 'x' }]) {
    try {
      createServer({ protocol, handlers: {}, grpc: bad as { port: number } });
      assert.unreachable(JSON.stringify(bad));
    } catch (err) {
      assert.is((err as RpcError).code, Code.INVALID_ARGUMENT, JSON.stringify(bad));
    }
  }
});

test.run();
