/**
 * The gRPC bridge under the server's `tls` option: the same certificate and client CAs as the avrpc
 * port; a plaintext client cannot call, a client trusting the CA can, and with `requestCert` (mTLS)
 * a client without a certificate is refused.
 */
import * as grpc from '@grpc/grpc-js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type CallContext, type Protocol, type Server, type ServerOptions } from '../../src/index.js';
import { makeTestCerts, type TestCerts } from '../helpers/certs.js';
import { item, loadEcho } from '../helpers/echo-fixture.js';
import { assertOneHandshakeAtATime, avroClient, silent, unary, within } from './grpc-client.js';

const test = suite('grpc bridge tls');

let protocol: Protocol;
let certs: TestCerts;
const servers: Server[] = [];

test.before(async () => {
  protocol = await loadEcho();
  certs = await makeTestCerts();
});

test.after(async () => {
  await Promise.all(servers.map((s) => s.close({ graceMs: 100 })));
  await certs.cleanup();
});

async function start(requestCert: boolean, options: Partial<ServerOptions> = {}): Promise<number> {
  const server = createServer({
    ...options,
    protocol,
    handlers: {
      echo: (r: { item: { id: number } }, ctx: CallContext) => ({ ...r.item, name: ctx.peer.certificate?.commonName ?? 'anonymous' }),
    },
    tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requestCert },
    grpc: { port: 0 },
  });
  servers.push(server);
  return (await server.listen({ host: '127.0.0.1', port: 0 })).grpc!.port;
}

/** The test server certificate's name (it is issued for localhost). */
const override = { 'grpc.ssl_target_name_override': 'localhost' };

test('TLS: a client trusting the CA calls; a plaintext client cannot', async () => {
  const port = await start(false);
  const tls = avroClient(protocol, port, grpc.credentials.createSsl(Buffer.from(certs.ca)), override);
  const plain = avroClient(protocol, port);
  try {
    const r = await unary(tls, 'echo', { item: item(2) });
    assert.is(r.error, undefined, String(r.error));
    assert.is((r.value as { name: string }).name, 'anonymous');
    assert.is(
      (await unary(plain, 'echo', { item: item(2) }, new grpc.Metadata(), { deadline: Date.now() + 5000 })).error?.code,
      grpc.status.UNAVAILABLE,
    );
  } finally {
    tls.close();
    plain.close();
  }
});

test('mTLS: a client certificate is required', async () => {
  const port = await start(true);
  const withCert = avroClient(
    protocol,
    port,
    grpc.credentials.createSsl(Buffer.from(certs.ca), Buffer.from(certs.clientKey), Buffer.from(certs.clientCert)),
    override,
  );
  const without = avroClient(protocol, port, grpc.credentials.createSsl(Buffer.from(certs.ca)), override);
  try {
    const r = await unary(withCert, 'echo', { item: item(3) });
    assert.is(r.error, undefined, String(r.error));
    assert.is((r.value as { name: string }).name, 'client-1', 'the verified certificate reaches ctx.peer');
    assert.is(
      (await unary(without, 'echo', { item: item(3) }, new grpc.Metadata(), { deadline: Date.now() + 5000 })).error?.code,
      grpc.status.UNAVAILABLE,
    );
  } finally {
    withCert.close();
    without.close();
  }
});

test('a TLS handshake never started is closed after handshakeTimeoutMs, as on the avrpc port', async () => {
  const port = await start(false, { handshakeTimeoutMs: 200 });
  const { closed } = await silent(port);
  assert.ok(await within(closed, 10_000), 'the silent connection was closed');
});

test('TLS handshakes count against maxHandshakingPerAddress; a finished one frees its slot', async () => {
  const port = await start(false, { maxHandshakingPerAddress: 1 });
  await assertOneHandshakeAtATime(port);
  // Handshakes one after the other: each completed one gave its slot back.
  const clients = [0, 1].map(() =>
    avroClient(protocol, port, grpc.credentials.createSsl(Buffer.from(certs.ca)), { ...override, 'grpc.use_local_subchannel_pool': 1 }),
  );
  try {
    for (const c of clients) {
      const r = await unary(c, 'echo', { item: item(4) });
      assert.is(r.error, undefined, String(r.error));
    }
  } finally {
    for (const c of clients) c.close();
  }
});

test.run();
