/**
 * The gateway's reach to browsers and over TLS: CORS (`http: { cors }`) seen as a browser's fetch
 * sees it (an `Origin`, a preflight first), and HTTPS on the avrpc port of a server with `tls`
 * (curl with --cacert, undici with the CA), avrpc over TLS still answering on that port.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { writeFile, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, fetch as undiciFetch } from 'undici';
import { createClient, createServer, type Protocol, type Server, type ServerOptions } from '../../src/index.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { item, loadEcho } from '../helpers/echo-fixture.js';

const run = promisify(execFile);
let protocol: Protocol;
let certs: TestCerts;
const open: Server[] = [];
const silent = { error() {}, warn() {}, info() {}, debug() {} } as never;
const echoBody = '{"item":{"id":7,"name":"n","tags":["a"],"score":1.5,"blob":"\\u0000\\u00ff"}}';
const app = 'https://app.example.com';

async function start(options: Partial<ServerOptions>): Promise<{ port: number; base: string }> {
  const server = createServer({
    protocol,
    logger: silent,
    handlers: {
      echo: (req: { item: unknown }, ctx) => {
        ctx.responseTrailer.seen = ctx.metadata.tenant ?? '-';
        return req.item;
      },
    },
    ...options,
  });
  open.push(server);
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  return { port: bound.port, base: `http://127.0.0.1:${bound.http!.port}` };
}

test.before(async () => {
  protocol = await loadEcho();
  certs = await makeTestCerts();
});

test.after.each(async () => {
  for (const s of open.splice(0)) await s.close({ graceMs: 1000 });
});

test.after(async () => {
  await certs.cleanup();
});

test('CORS: a preflight from an allowed origin gets 204 with what it may send; the call then carries allow-origin and exposes metadata', async () => {
  const { base } = await start({ http: { cors: { origins: [app], maxAgeSeconds: 60 } } });
  const url = `${base}/avrpc.echo.Echo/echo`;
  // What a browser sends before a cross-origin POST with a JSON body and a custom header.
  const pre = await fetch(url, {
    method: 'OPTIONS',
    headers: { origin: app, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, avrpc-md-tenant' },
  });
  assert.is(pre.status, 204);
  assert.is(pre.headers.get('access-control-allow-origin'), app);
  assert.is(pre.headers.get('access-control-allow-methods'), 'GET, HEAD, POST');
  assert.is(pre.headers.get('access-control-allow-headers'), 'content-type, avrpc-md-tenant');
  assert.is(pre.headers.get('access-control-max-age'), '60');
  assert.match(pre.headers.get('vary') ?? '', /origin/);
  const res = await fetch(url, {
    method: 'POST',
    body: echoBody,
    headers: { origin: app, 'content-type': 'application/json', 'avrpc-md-tenant': 'blue' },
  });
  assert.is(res.status, 200);
  assert.is(res.headers.get('access-control-allow-origin'), app);
  assert.is(res.headers.get('access-control-expose-headers'), 'avrpc-md-seen');
  assert.is(res.headers.get('avrpc-md-seen'), 'blue');
  assert.is(res.headers.get('vary'), 'origin');
  assert.is(((await res.json()) as { name: string }).name, 'n');
  // Errors carry the headers too: the page can read the error body.
  const missing = await fetch(`${base}/avrpc.echo.Echo/nothing`, { method: 'POST', body: '{}', headers: { origin: app } });
  assert.is(missing.status, 404);
  assert.is(missing.headers.get('access-control-allow-origin'), app);
  await missing.text();
});

test('CORS: another origin, a method or a header not taken: preflight 403, answers without allow-origin', async () => {
  const { base } = await start({ http: { cors: { origins: [app] } } });
  const url = `${base}/avrpc.echo.Echo/echo`;
  const preflight = (origin: string, method: string, headers = 'content-type'): Promise<Response> =>
    fetch(url, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
    });
  for (const res of [
    await preflight('https://evil.example.com', 'POST'),
    await preflight(app, 'DELETE'),
    await preflight(app, 'POST', 'x-other'),
  ]) {
    assert.is(res.status, 403);
    assert.is(res.headers.get('access-control-allow-origin'), null);
    await res.text();
  }
  const res = await fetch(url, { method: 'POST', body: echoBody, headers: { origin: 'https://evil.example.com' } });
  assert.is(res.headers.get('access-control-allow-origin'), null);
  await res.text();
});

test("CORS: origins '*' answers '*'; with credentials it names the origin; off by default (OPTIONS is 405)", async () => {
  const any = await start({ http: { cors: { origins: '*' } } });
  const a = await fetch(`${any.base}/healthz`, { headers: { origin: 'https://x.example' } });
  assert.is(a.headers.get('access-control-allow-origin'), '*');
  assert.is(a.headers.get('vary'), null);
  await a.text();
  const cred = await start({ http: { cors: { origins: '*', allowCredentials: true } } });
  const c = await fetch(`${cred.base}/healthz`, { headers: { origin: 'https://x.example' } });
  assert.is(c.headers.get('access-control-allow-origin'), 'https://x.example');
  assert.is(c.headers.get('access-control-allow-credentials'), 'true');
  await c.text();
  const off = await start({ http: {} });
  const o = await fetch(`${off.base}/avrpc.echo.Echo/echo`, {
    method: 'OPTIONS',
    headers: { origin: app, 'access-control-request-method': 'POST' },
  });
  assert.is(o.status, 405);
  assert.is(o.headers.get('access-control-allow-origin'), null);
  await o.text();
  assert.throws(() => createServer({ protocol, handlers: {}, http: { cors: { origins: 'https://a' as never } } }), /origins/);
});

test('HTTPS on the avrpc port of a server with tls: curl --cacert and undici call it, avrpc over TLS still answers', async () => {
  const { port } = await start({ http: {}, tls: { cert: certs.serverCert, key: certs.serverKey } });
  const base = `https://127.0.0.1:${port}`;
  const dir = await mkdtemp(join(tmpdir(), 'avrpc-https-'));
  try {
    const ca = join(dir, 'ca.pem');
    await writeFile(ca, certs.ca);
    const { stdout } = await run('curl', ['-sS', '--cacert', ca, '-X', 'POST', '--data', echoBody, `${base}/avrpc.echo.Echo/echo`]);
    assert.ok(stdout.includes('"name":"n"'), stdout);
    const health = await run('curl', ['-sS', '--cacert', ca, '-o', '/dev/null', '-w', '%{http_code}', `${base}/readyz`]);
    assert.is(health.stdout, '200');
    // Without the CA: the handshake fails (the server is not reachable over plain trust).
    const untrusted = await run('curl', ['-sS', '-o', '/dev/null', `${base}/healthz`]).then(
      () => 'ok',
      (err: { code?: number }) => err.code,
    );
    assert.is.not(untrusted, 'ok');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const agent = new Agent({ connect: { ca: certs.ca } });
  try {
    const res = await undiciFetch(`${base}/avrpc.echo.Echo/echo`, { method: 'POST', body: echoBody, dispatcher: agent });
    assert.is(res.status, 200);
    assert.is(((await res.json()) as { name: string }).name, 'n');
  } finally {
    await agent.close();
  }
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], tls: { ca: certs.ca } });
  try {
    assert.is(((await client.call('echo', { item: item(4) })) as { name: string }).name, 'item-4');
  } finally {
    await client.close();
  }
});

test('plain HTTP to the TLS port is refused (the port speaks TLS first)', async () => {
  const { port } = await start({ http: {}, tls: { cert: certs.serverCert, key: certs.serverKey } });
  const res = await fetch(`http://127.0.0.1:${port}/healthz`).then(
    (r) => r.status,
    () => 'refused',
  );
  assert.is(res, 'refused');
});

test.run();
