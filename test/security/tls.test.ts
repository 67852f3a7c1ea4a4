import { connect as tlsConnect } from 'node:tls';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, type CallContext, type Client, type ClientOptions, type Protocol } from '../../src/index.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { RawPeer, frameCode, frameMessage, helloBytes, until } from '../helpers/raw-peer.js';
import { failure, securityFixture } from '../helpers/security-fixture.js';
import { FrameType } from '../../src/framing/frame.js';

/** Issue 5, encryption: TLS and mTLS on real loopback sockets with certificates made at test time. */
const test = suite('security: TLS');
let protocol: Protocol;
const fixture = securityFixture(test, (p) => {
  protocol = p;
});
let certs: TestCerts;
const item = { id: 1, name: 'tls', tags: [], score: 0, blob: Buffer.alloc(0) };

test.before(async () => {
  certs = await makeTestCerts();
});
test.after(async () => {
  await certs.cleanup();
});

async function tlsServer(mtls: boolean, seen?: CallContext[]): Promise<number> {
  const { port } = await fixture.serve({
    handlers: {
      echo: (req: { item: unknown }, ctx: CallContext) => {
        seen?.push(ctx);
        return req.item;
      },
    },
    tls: { cert: certs.serverCert, key: certs.serverKey, ...(mtls ? { ca: certs.ca, requestCert: true } : {}) },
  });
  return port;
}

function client(port: number, options: Partial<ClientOptions> = {}): Client {
  return fixture.client(port, { waitForReadyMs: 1500, backoff: { initialMs: 20, maxMs: 50 }, ...options });
}

test('a call over TLS works, by IP and by name', async () => {
  const port = await tlsServer(false);
  const byIp = client(port, { tls: { ca: certs.ca } });
  assert.equal((await byIp.call('echo', { item })).name, 'tls');
  const byName = client(port, { tls: { ca: certs.ca, servername: 'localhost' } });
  assert.equal((await byName.call('echo', { item })).name, 'tls');
});

test('a server certificate from an untrusted CA is refused: UNAVAILABLE naming the certificate problem', async () => {
  const port = await tlsServer(false);
  const err = await failure(client(port, { tls: { ca: certs.otherCa } }).call('echo', { item }));
  assert.is(err.code, Code.UNAVAILABLE);
  assert.match(err.message, /certificate|CERT/);
});

test('a server certificate for another name is refused', async () => {
  const port = await tlsServer(false);
  const err = await failure(client(port, { tls: { ca: certs.ca, servername: 'not-this-host.test' } }).call('echo', { item }));
  assert.is(err.code, Code.UNAVAILABLE);
  assert.match(err.message, /not-this-host|altnames|ERR_TLS_CERT/);
});

test('mTLS: the verified client certificate identity is in ctx.peer', async () => {
  const seen: CallContext[] = [];
  const port = await tlsServer(true, seen);
  const c = client(port, { tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } });
  await c.call('echo', { item });
  const peer = seen[0]!.peer;
  assert.is(peer.certificate?.commonName, 'client-1');
  assert.match(peer.certificate?.subjectAltName ?? '', 'URI:spiffe://avrpc.test/client-1');
  assert.match(peer.certificate?.fingerprint256 ?? '', /^[0-9A-F:]{95}$/);
  assert.is(
    (peer.principal as { commonName?: string } | undefined)?.commonName,
    'client-1',
    'without authenticate, the certificate is the principal',
  );
});

test('mTLS with authenticate: the hook sees the verified certificate and can combine it with a token', async () => {
  const seen: CallContext[] = [];
  const { port } = await fixture.serve({
    handlers: {
      echo: (req: { item: unknown }, ctx: CallContext) => {
        seen.push(ctx);
        return req.item;
      },
    },
    tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requestCert: true },
    authenticate: (hs, peer) => {
      if (peer.certificate?.commonName !== 'client-1' || hs.token !== 'ok') throw new Error('certificate and token must match');
      return { id: peer.certificate.commonName, roles: ['svc'] };
    },
  });
  const tls = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey };
  await client(port, { tls, credentials: 'ok' }).call('echo', { item });
  assert.equal(seen[0]!.peer.principal, { id: 'client-1', roles: ['svc'] });
  const err = await failure(client(port, { tls, credentials: 'wrong' }).call('echo', { item }));
  assert.is(err.code, Code.UNAUTHENTICATED);
});

test('mTLS: a client without a certificate is refused with UNAUTHENTICATED and no handler runs', async () => {
  const seen: CallContext[] = [];
  const port = await tlsServer(true, seen);
  const err = await failure(client(port, { tls: { ca: certs.ca } }).call('echo', { item }));
  // The server's "certificate required" alert: a refusal of our credentials, which no retry fixes.
  assert.is(err.code, Code.UNAUTHENTICATED);
  assert.match(err.message, /^TLS certificate refused by the peer \(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED/);
  assert.is(seen.length, 0);
});

// Node's TLS server checks a client certificate's chain after the handshake and closes without an
// alert, so the client cannot tell this refusal from a dropped connection: UNAVAILABLE.
test('mTLS: a client certificate from another CA is refused', async () => {
  const seen: CallContext[] = [];
  const port = await tlsServer(true, seen);
  const err = await failure(
    client(port, { tls: { ca: certs.ca, cert: certs.strangerCert, key: certs.strangerKey } }).call('echo', { item }),
  );
  assert.is(err.code, Code.UNAVAILABLE);
  assert.is(seen.length, 0);
});

test('a plaintext client against a TLS port fails with UNAVAILABLE and says why', async () => {
  const port = await tlsServer(false);
  const err = await failure(client(port).call('echo', { item }));
  assert.is(err.code, Code.UNAVAILABLE);
  assert.match(err.message, /TLS server spoken to in plaintext/);
});

test('a raw plaintext avrpc handshake against a TLS port gets no avrpc frame, only a close', async () => {
  const port = await tlsServer(false);
  const raw = await RawPeer.connect(port);
  const got: Buffer[] = [];
  raw.socket.on('data', (d: Buffer) => got.push(d));
  raw.socket.write(helloBytes(protocol));
  await raw.closed;
  const bytes = Buffer.concat(got);
  // Whatever came back (a TLS alert, or nothing) is not an avrpc frame header the client could misread.
  assert.ok(bytes.length === 0 || bytes[0] === 0x15, `unexpected bytes ${bytes.toString('hex')}`);
});

test('a TLS client against a plaintext port fails with UNAVAILABLE naming the TLS failure', async () => {
  const { port } = await fixture.serve();
  const err = await failure(client(port, { tls: { ca: certs.ca } }).call('echo', { item }));
  assert.is(err.code, Code.UNAVAILABLE);
  assert.match(err.message, /SSL|TLS|wrong version|packet length/i);
});

test('a socket that never starts its TLS handshake is closed after handshakeTimeoutMs', async () => {
  const { port } = await fixture.serve({ handlers: {}, handshakeTimeoutMs: 50, tls: { cert: certs.serverCert, key: certs.serverKey } });
  const raw = await fixture.peer(port);
  await raw.closed;
});

test('maxConnections counts TLS handshakes in progress: a socket beyond them is closed before any TLS work', async () => {
  // Found by the security audit: the count was checked only once a TLS handshake completed, so any number
  // of sockets could sit in their handshake (each up to handshakeTimeoutMs) on a server "at" its limit.
  const { server, port } = await fixture.serve({
    maxConnections: 2,
    handshakeTimeoutMs: 60_000,
    tls: { cert: certs.serverCert, key: certs.serverKey },
  });
  const a = await fixture.peer(port);
  await fixture.peer(port);
  // Both sit in their TLS handshake (they never send a ClientHello), so they are no ServerConnection yet.
  assert.is(server.connections, 0);
  const third = await fixture.peer(port);
  let bytes = 0;
  third.socket.on('data', (d: Buffer) => {
    bytes += d.length;
  });
  let closed = false;
  void third.closed.then(() => {
    closed = true;
  });
  await until(() => closed, 'the socket beyond maxConnections closed');
  assert.is(bytes, 0, 'closed without a TLS byte');
  // A slot freed is usable by a real TLS client.
  a.destroy();
  await a.closed;
  const c = client(port, { tls: { ca: certs.ca } });
  assert.equal((await c.call('echo', { item })).name, 'tls');
});

test('TLS wraps the whole stream: the preface and HELLO go inside TLS, and a plaintext server sees a TLS record', async () => {
  // The raw TLS peer speaks the SPEC bytes inside TLS and gets a WELCOME back.
  const port = await tlsServer(false);
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: certs.ca });
  await once(socket, 'secureConnect');
  socket.write(helloBytes(protocol));
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.is(chunk[4], FrameType.WELCOME);
  socket.destroy();
  await once(socket, 'close');
  // And the reverse: a plaintext server reads a TLS ClientHello, which is not the preface.
  const raw = await fixture.peer((await fixture.serve({ handlers: {} })).port);
  raw.socket.write(Buffer.from('160301', 'hex'));
  const goaway = await raw.frame();
  assert.is(goaway.type, FrameType.GOAWAY);
  assert.is(frameCode(goaway), Code.INTERNAL);
  assert.match(frameMessage(goaway), /preface/);
  await raw.closed;
});

test.run();
