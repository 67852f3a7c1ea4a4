/**
 * The HTTP/JSON gateway: real sockets on 127.0.0.1, global fetch (undici) and curl as clients, the
 * same server answering avrpc on the same port.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { createConnection } from 'node:net';
import { promisify } from 'node:util';
import { Code, RpcError, createClient, createServer, type Protocol, type Server, type ServerOptions } from '../../src/index.js';
import { item, loadEcho } from '../helpers/echo-fixture.js';

const run = promisify(execFile);
let protocol: Protocol;
const open: Server[] = [];
const silent = { error() {}, warn() {}, info() {}, debug() {} } as never;

async function start(options: Partial<ServerOptions> = {}): Promise<{ server: Server; port: number; http: number; base: string }> {
  const server = createServer({
    protocol,
    logger: silent,
    http: {},
    handlers: {
      echo: (req: { item: unknown }, ctx) => {
        ctx.responseTrailer.seen = ctx.metadata.tenant ?? '-';
        return req.item;
      },
      fail: (req: { reason: string }) => {
        if (req.reason === 'slow') return new Promise(() => undefined);
        throw { reason: req.reason };
      },
      notify: () => undefined,
    },
    ...options,
  });
  open.push(server);
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  const http = bound.http!.port;
  return { server, port: bound.port, http, base: `http://127.0.0.1:${http}` };
}

// Written by hand: JSON.stringify of a JS number would round the long already.
const bigBody = '{"item":{"id":9007199254740993,"name":"n","tags":["a"],"score":1.5,"blob":"\\u0000\\u00ff"}}';
const echoBody = '{"item":{"id":7,"name":"n","tags":["a"],"score":1.5,"blob":"\\u0000\\u00ff"}}';

test.before(async () => {
  protocol = await loadEcho();
});

test.after.each(async () => {
  for (const s of open.splice(0)) await s.close({ graceMs: 1000 });
});

test('POST calls a message on the avrpc port, Avro JSON both ways (longs exact, bytes as code points), metadata both ways', async () => {
  const { base, port, http } = await start({ protocol: await loadEcho('echo.avdl', 'bigint') });
  assert.is(http, port);
  const res = await fetch(`${base}/avrpc.echo.Echo/echo`, { method: 'POST', body: bigBody, headers: { 'avrpc-md-tenant': 'blue' } });
  assert.is(res.status, 200);
  assert.is(res.headers.get('avrpc-md-seen'), 'blue');
  const text = await res.text();
  assert.ok(text.includes('"id":9007199254740993'), text);
  assert.ok(text.includes('"blob":"\\u0000ÿ"'), text);
});

test('the same port still serves avrpc clients', async () => {
  const { port } = await start();
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    const got = (await client.call('echo', { item: item(3) })) as { name: string };
    assert.is(got.name, 'item-3');
  } finally {
    await client.close();
  }
});

test('base64 bytes, one-way 202, errors with status, code and declared details', async () => {
  const { base } = await start();
  const b64 = JSON.stringify({ item: { id: 1, name: 'n', tags: [], score: 0, blob: Buffer.from([0, 255]).toString('base64') } });
  const res = await fetch(`${base}/avrpc.echo.Echo/echo?bytes=base64`, { method: 'POST', body: b64 });
  assert.is(res.status, 200);
  assert.is(((await res.json()) as { blob: string }).blob, 'AP8=');
  const one = await fetch(`${base}/avrpc.echo.Echo/notify`, { method: 'POST', body: echoBody });
  assert.is(one.status, 202);
  await one.text();
  const fail = await fetch(`${base}/avrpc.echo.Echo/fail`, { method: 'POST', body: '{"reason":"nope"}' });
  assert.is(fail.status, 500);
  assert.equal(await fail.json(), {
    code: 'UNKNOWN',
    message: 'EchoError: {"reason":"nope"}',
    errorType: 'avrpc.echo.EchoError',
    details: { reason: 'nope' },
  });
  const missing = await fetch(`${base}/avrpc.echo.Echo/nothing`, { method: 'POST', body: '{}' });
  assert.is(missing.status, 404);
  assert.is(((await missing.json()) as { code: string }).code, 'NOT_FOUND');
  const bad = await fetch(`${base}/avrpc.echo.Echo/echo`, { method: 'POST', body: '{"item": 3}' });
  assert.is(bad.status, 400);
  assert.is(((await bad.json()) as { code: string }).code, 'INVALID_ARGUMENT');
});

test('a timeout header is the deadline: 504 DEADLINE_EXCEEDED', async () => {
  const { base } = await start();
  const res = await fetch(`${base}/avrpc.echo.Echo/fail`, {
    method: 'POST',
    body: '{"reason":"slow"}',
    headers: { 'avrpc-timeout-ms': '30' },
  });
  assert.is(res.status, 504);
  assert.is(((await res.json()) as { code: string }).code, 'DEADLINE_EXCEEDED');
  const grpc = await fetch(`${base}/avrpc.echo.Echo/fail`, {
    method: 'POST',
    body: '{"reason":"slow"}',
    headers: { 'grpc-timeout': '20m' },
  });
  assert.is(grpc.status, 504);
  await grpc.text();
});

test('Bearer tokens go through authenticate (401 when it throws); authorize refusing is 403', async () => {
  const { base } = await start({
    authenticate: ({ token }) => {
      if (token !== 'good' && token !== 'other') throw new RpcError(Code.UNAUTHENTICATED, 'bad token');
      return token;
    },
    authorize: (principal) => principal === 'good',
  });
  const url = `${base}/avrpc.echo.Echo/echo`;
  const none = await fetch(url, { method: 'POST', body: echoBody });
  assert.is(none.status, 401);
  assert.is(((await none.json()) as { code: string }).code, 'UNAUTHENTICATED');
  const denied = await fetch(url, { method: 'POST', body: echoBody, headers: { authorization: 'Bearer other' } });
  assert.is(denied.status, 403);
  await denied.text();
  const ok = await fetch(url, { method: 'POST', body: echoBody, headers: { authorization: 'Bearer good' } });
  assert.is(ok.status, 200);
  await ok.text();
});

test('a client that goes away cancels its call: without a deadline (no signal read) and with a handler watching its signal', async () => {
  const ended: Array<{ message: string; code: number }> = [];
  let aborted = 0;
  let started = 0;
  const { base } = await start({
    observer: { callEnded: (message: string, code: number) => void ended.push({ message, code }) } as never,
    handlers: {
      // Never settles and never looks at ctx.signal: only the executor's cancel hook can end the call.
      echo: () => {
        started++;
        return new Promise(() => undefined);
      },
      fail: (_req: unknown, ctx) => {
        started++;
        ctx.signal.addEventListener('abort', () => aborted++);
        return new Promise(() => undefined);
      },
    },
  });
  for (const [message, body] of [
    ['echo', echoBody],
    ['fail', '{"reason":"x"}'],
  ] as const) {
    const controller = new AbortController();
    const before = started;
    const res = fetch(`${base}/avrpc.echo.Echo/${message}`, { method: 'POST', body, signal: controller.signal }).catch(() => 'aborted');
    while (started === before) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    assert.is(await res, 'aborted');
    while (!ended.some((e) => e.message === message)) await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(
    ended.map((e) => [e.message, e.code]),
    [
      ['echo', Code.CANCELLED],
      ['fail', Code.CANCELLED],
    ],
  );
  assert.is(aborted, 1);
});

test('a one-way call goes on after its client, answered 202, goes away', async () => {
  let release: (() => void) | undefined;
  let finished!: (cancelled: boolean) => void;
  const done = new Promise<boolean>((resolve) => (finished = resolve));
  const { http } = await start({
    handlers: {
      notify: (_req: unknown, ctx) =>
        new Promise<void>((resolve) => {
          release = () => {
            finished(ctx.cancelled);
            resolve();
          };
        }),
    },
  });
  const reply = await new Promise<string>((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port: http }, () =>
      s.write(`POST /avrpc.echo.Echo/notify HTTP/1.1\r\nhost: x\r\ncontent-length: ${echoBody.length}\r\n\r\n${echoBody}`),
    );
    s.once('data', (b: Buffer) => {
      s.destroy();
      resolve(b.toString('latin1'));
    });
  });
  assert.ok(reply.startsWith('HTTP/1.1 202'), reply);
  while (release === undefined) await new Promise((r) => setTimeout(r, 5));
  // Our side of the connection is closed; let the server see it before the handler ends.
  await new Promise((r) => setTimeout(r, 20));
  release!();
  assert.is(await done, false);
});

test('GET describes the protocol; healthz and readyz answer probes, readyz 503 once draining', async () => {
  let release!: () => void;
  const { base, server } = await start({
    handlers: { echo: (req: { item: unknown }) => new Promise((r) => (release = () => r(req.item))) },
  });
  for (const path of ['/', '/avrpc.echo.Echo']) {
    const res = await fetch(`${base}${path}`);
    assert.is(res.status, 200);
    assert.is(((await res.json()) as { protocol: string }).protocol, 'Echo');
  }
  assert.is((await fetch(`${base}/healthz`)).status, 200);
  assert.is((await fetch(`${base}/readyz`)).status, 200);
  // A call running holds the drain: readyz says 503 meanwhile, new calls are refused 503.
  const running = fetch(`${base}/avrpc.echo.Echo/echo`, { method: 'POST', body: echoBody });
  while (release === undefined) await new Promise((r) => setTimeout(r, 5));
  const closed = server.close({ graceMs: 5000 });
  assert.is(server.readiness, 'draining');
  // The port stops accepting at once; a probe on a kept-alive connection gets 503, never 200.
  const ready = await fetch(`${base}/readyz`).catch(() => undefined);
  assert.ok(ready === undefined || ready.status === 503, `readyz answered ${ready?.status} while draining`);
  release!();
  assert.is((await running).status, 200);
  await closed;
});

test('readyz is 503 while listen still registers, 200 once it resolved', async () => {
  const server = createServer({ protocol, logger: silent, http: {}, handlers: {} });
  open.push(server);
  let during: number | undefined;
  const registry = {
    async register(input: { port: number }) {
      // The port is bound and answering already, but listen has not resolved: not ready.
      during = (await fetch(`http://127.0.0.1:${input.port}/readyz`, { headers: { connection: 'close' } })).status;
      return { instance: input, deregister: () => Promise.resolve() };
    },
  } as never;
  const bound = await server.listen({ host: '127.0.0.1', port: 0, register: { registry, name: 'echo', version: '1.0.0' } });
  assert.is(during, 503);
  assert.is((await fetch(`http://127.0.0.1:${bound.http!.port}/readyz`)).status, 200);
});

test('a body over maxMessageBytes is refused 429 RESOURCE_EXHAUSTED', async () => {
  const { base } = await start({ maxMessageBytes: 1024 });
  const res = await fetch(`${base}/avrpc.echo.Echo/fail`, { method: 'POST', body: JSON.stringify({ reason: 'x'.repeat(5000) }) });
  assert.is(res.status, 429);
  assert.is(((await res.json()) as { code: string }).code, 'RESOURCE_EXHAUSTED');
});

test('HTTP bodies count against maxBufferedBytes: one over the budget is refused 429, and nothing stays held', async () => {
  const { base, server } = await start({ maxBufferedBytes: 4096, maxMessageBytes: 1 << 20 });
  const res = await fetch(`${base}/avrpc.echo.Echo/fail`, { method: 'POST', body: JSON.stringify({ reason: 'x'.repeat(100_000) }) });
  assert.is(res.status, 429);
  assert.match(((await res.json()) as { message: string }).message, /maxBufferedBytes/);
  assert.is(server.bufferedBytes, 0);
});

test('http: { port } serves HTTP on its own port; the avrpc port then takes no HTTP', async () => {
  const { port, http, base } = await start({ http: { port: 0 } });
  assert.is.not(http, port);
  assert.is((await fetch(`${base}/healthz`)).status, 200);
  const reply = await new Promise<Buffer>((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => s.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n'));
    const got: Buffer[] = [];
    s.on('data', (b: Buffer) => got.push(b));
    s.on('close', () => resolve(Buffer.concat(got)));
    s.on('error', () => undefined);
  });
  assert.not.ok(reply.toString('latin1').startsWith('HTTP/1.1'));
});

test('curl calls the gateway', async () => {
  const { base } = await start();
  const { stdout } = await run('curl', [
    '-sS',
    '-X',
    'POST',
    '-H',
    'avrpc-md-tenant: red',
    '--data',
    echoBody,
    `${base}/avrpc.echo.Echo/echo`,
  ]);
  assert.ok(stdout.includes('"name":"n"'), stdout);
  const health = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${base}/readyz`]);
  assert.is(health.stdout, '200');
});

test.run();
