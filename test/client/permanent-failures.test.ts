/**
 * Issue 14: a failure that will not go away (TLS misconfiguration, a peer that is not avrpc) waited
 * out `waitForReadyMs` and reported DEADLINE_EXCEEDED to a call with a shorter deadline. Now, once
 * every endpoint fails that way, waiting calls fail at once with UNAVAILABLE naming the real cause
 * (`cause` set). `waitForReadyMs` is 60 s and each call allows 20 s: the old behaviour ends in
 * DEADLINE_EXCEEDED after 20 s, which the assertions refuse. Transient failures still wait.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import type { ClientOptions } from '../../src/client/client-options.js';
import { Code } from '../../src/errors/code.js';
import type { RpcError } from '../../src/errors/rpc-error.js';
import { createServer, type Server } from '../../src/server/server.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { item, loadEcho, rawServer, rejection, type Item, type RawServer } from '../helpers/echo-fixture.js';
import { freePort } from '../helpers/pool-fixture.js';
import type { Protocol } from '../../src/codec/protocol.js';

const test = suite('connections failing for good');
let protocol: Protocol;
let certs: TestCerts;
const clients: Client[] = [];
const servers: Server[] = [];
const raws: RawServer[] = [];

test.before(async () => {
  protocol = await loadEcho();
  certs = await makeTestCerts();
});

test.after(async () => {
  await certs.cleanup();
});

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 100 })));
  await Promise.all(raws.splice(0).map((r) => r.close()));
});

async function echoServer(tls: boolean, port = 0): Promise<string> {
  const server = createServer({
    protocol,
    handlers: { echo: (req: { item: Item }) => req.item },
    ...(tls ? { tls: { cert: certs.serverCert, key: certs.serverKey } } : {}),
  });
  servers.push(server);
  const bound = await server.listen({ host: '127.0.0.1', port });
  return `127.0.0.1:${bound.port}`;
}

function client(endpoints: string[], options: Partial<ClientOptions> = {}): Client {
  const c = createClient({ protocol, endpoints, waitForReadyMs: 60_000, ...options });
  clients.push(c);
  return c;
}

/** The call's error: UNAVAILABLE (never DEADLINE_EXCEEDED, the old outcome after its 20 s) matching `why`, with a cause. */
async function failsForGood(c: Client, why: RegExp): Promise<RpcError> {
  const err = await rejection(c.call('echo', { item: item(1) }, { timeoutMs: 20_000 }));
  assert.is.not(err.code, Code.DEADLINE_EXCEEDED, err.message);
  assert.is(err.code, Code.UNAVAILABLE, `${err.codeName}: ${err.message}`);
  assert.match(err.message, why);
  assert.not.match(err.message, /no usable connection within/, 'not after waitForReadyMs');
  assert.ok(err.cause !== undefined, 'cause set');
  return err;
}

test('a TLS server, a client without its CA: UNAVAILABLE at once, naming the untrusted certificate', async () => {
  const endpoint = await echoServer(true);
  const c = client([endpoint], { tls: { ca: certs.otherCa } });
  const err = await failsForGood(
    c,
    /TLS handshake with 127\.0\.0\.1:\d+ failed: the server's certificate is not signed by a CA this client trusts \(tls\.ca\) \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
  );
  assert.is((err.cause as { code?: string }).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'the Node error is the cause');
  // Later calls fail at once too, while the endpoint keeps failing.
  await failsForGood(c, /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
});

test('a certificate for another name: UNAVAILABLE at once, naming the name check', async () => {
  const endpoint = await echoServer(true);
  await failsForGood(
    client([endpoint], { tls: { ca: certs.ca, servername: 'other.test' } }),
    /not for this name \(tls\.servername\).*other\.test/,
  );
});

test('a TLS client against a plaintext port: UNAVAILABLE at once', async () => {
  const endpoint = await echoServer(false);
  await failsForGood(client([endpoint], { tls: { ca: certs.ca } }), /does not speak TLS \(a plaintext port\?\).*WRONG_VERSION_NUMBER/);
});

test('a plaintext client against a TLS port, waiting for ready: UNAVAILABLE after a few attempts closed in the handshake', async () => {
  const endpoint = await echoServer(true);
  await failsForGood(
    client([endpoint], { waitForReady: true }),
    /closed the connection during the handshake.*TLS server spoken to in plaintext.*\(3 attempts in a row\)/,
  );
});

test('a plaintext client against a TLS port, failing fast: UNAVAILABLE at the first attempt closed in the handshake', async () => {
  const endpoint = await echoServer(true);
  const err = await failsForGood(
    client([endpoint]),
    /is down: .*closed the connection during the handshake.*TLS server spoken to in plaintext/,
  );
  assert.not.match(err.message, /attempts in a row/);
});

test('an HTTP server: UNAVAILABLE at once, quoting its status line', async () => {
  const http = await rawServer((socket) => {
    socket.resume();
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  raws.push(http);
  await failsForGood(
    client([http.endpoint]),
    /127\.0\.0\.1:\d+ is not an avrpc v1 server: it answered in HTTP \("HTTP\/1\.1 400 Bad Request"\)/,
  );
});

test('garbage instead of WELCOME: UNAVAILABLE at once, not an avrpc server', async () => {
  const garbage = await rawServer((socket) => {
    socket.resume();
    socket.write(Buffer.from('000000040e0000000000deadbeef', 'hex')); // frame type 0x0e, unknown
  });
  raws.push(garbage);
  await failsForGood(client([garbage.endpoint]), /is not an avrpc v1 server: .*first bytes 000000040e/);
});

test('one endpoint failing for good beside a good one: every call is served by the good one', async () => {
  const bad = await echoServer(true);
  const good = await echoServer(false);
  const c = client([bad, good]);
  for (let i = 0; i < 20; i++) assert.is((await c.call<Item>('echo', { item: item(i) }, { timeoutMs: 20_000 })).id, i);
});

test('with waitForReady, transient failures wait: nothing listening at first, the call succeeds once the server starts', async () => {
  const port = await freePort();
  const c = client([`127.0.0.1:${port}`], { backoff: { initialMs: 20, maxMs: 50 }, waitForReady: true });
  const pending = c.call<Item>('echo', { item: item(5) }, { timeoutMs: 20_000 });
  await new Promise((r) => setTimeout(r, 300)); // several ECONNREFUSED attempts
  await echoServer(false, port);
  assert.is((await pending).id, 5);
});

test('an endpoint fixed after failing for good is used again (reconnects go on, with backoff)', async () => {
  const http = await rawServer((socket) => {
    socket.resume();
    socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
  });
  const c = client([http.endpoint], { backoff: { initialMs: 20, maxMs: 50 } });
  await failsForGood(c, /answered in HTTP/);
  // The HTTP server goes away and avrpc comes up on its port.
  await http.close();
  await echoServer(false, http.port);
  let served: Item | undefined;
  for (let i = 0; i < 100 && served === undefined; i++) {
    served = await c.call<Item>('echo', { item: item(6) }, { timeoutMs: 20_000 }).catch(async () => {
      await new Promise((r) => setTimeout(r, 20));
      return undefined;
    });
  }
  assert.is(served?.id, 6);
});

test.run();
