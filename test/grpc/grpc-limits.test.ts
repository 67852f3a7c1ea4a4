/**
 * The gRPC bridge within the server's limits: its connections count against `maxConnections` with
 * avrpc's, and `authenticate` runs once per connection and token (kept as an avrpc connection keeps
 * its principal), not on every call. Real grpc-js clients, each on its own connection.
 */
import * as grpc from '@grpc/grpc-js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, type Client, type Protocol, type Server, type ServerOptions } from '../../src/index.js';
import { item, loadEcho, rejection } from '../helpers/echo-fixture.js';
import { assertOneHandshakeAtATime, avroClient, silent, unary, within } from './grpc-client.js';

const test = suite('grpc bridge limits');

let protocol: Protocol;
const servers: Server[] = [];
const clients: grpc.Client[] = [];
const avrpcClients: Client[] = [];

/** A grpc-js client with a connection of its own (no subchannel shared with the other clients). */
function ownClient(port: number): grpc.Client {
  const c = avroClient(protocol, port, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  clients.push(c);
  return c;
}

async function start(options: Partial<ServerOptions> = {}): Promise<{ port: number; grpcPort: number }> {
  const server = createServer({ protocol, handlers: { echo: (r: { item: unknown }) => r.item }, grpc: { port: 0 }, ...options });
  servers.push(server);
  const bound = await server.listen({ host: '127.0.0.1', port: 0 });
  return { port: bound.port, grpcPort: bound.grpc!.port };
}

const bearer = (token: string): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
};

test.before(async () => {
  protocol = await loadEcho();
});

test.after.each(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(avrpcClients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 100 })));
});

test('gRPC connections count against maxConnections with avrpc connections', async () => {
  const { port, grpcPort } = await start({ maxConnections: 1 });
  const first = ownClient(grpcPort);
  assert.is((await unary(first, 'echo', { item: item(1) })).error, undefined);
  // The one slot is taken by the first gRPC connection: a second is closed at accept...
  const second = await unary(ownClient(grpcPort), 'echo', { item: item(2) }, new grpc.Metadata(), { deadline: Date.now() + 5000 });
  assert.is(second.error?.code, grpc.status.UNAVAILABLE, String(second.error));
  // ...and so is an avrpc connection.
  const avrpc = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], maxAttempts: 1, timeoutMs: 5000 });
  avrpcClients.push(avrpc);
  const refused = await rejection(avrpc.call('echo', { item: item(3) }));
  assert.ok(refused.code === Code.RESOURCE_EXHAUSTED || refused.code === Code.UNAVAILABLE, refused.message);
  // The first connection still serves.
  assert.is((await unary(first, 'echo', { item: item(4) })).error, undefined);
});

test('authenticate runs once per connection and token, not per call; failures are asked again', async () => {
  const asked: string[] = [];
  const { grpcPort } = await start({
    authenticate: ({ token }) => {
      asked.push(token ?? '');
      if (token === 'bad') throw new Error('no');
      if (token === 'old') return { id: 'old', expiresAt: Date.now() - 1 };
      return { id: token };
    },
    handlers: { echo: (_r: unknown, ctx) => ({ ...item(1), name: String((ctx.peer.principal as { id: string }).id) }) },
  });
  const one = ownClient(grpcPort);
  for (let i = 0; i < 3; i++) assert.is(((await unary(one, 'echo', { item: item(1) }, bearer('a'))).value as { name: string }).name, 'a');
  assert.equal(asked, ['a']);
  // Another token on the same connection (a proxy multiplexing users) is its own principal.
  assert.is(((await unary(one, 'echo', { item: item(1) }, bearer('b'))).value as { name: string }).name, 'b');
  assert.is(((await unary(one, 'echo', { item: item(1) }, bearer('a'))).value as { name: string }).name, 'a');
  assert.equal(asked, ['a', 'b']);
  // Another connection asks afresh.
  await unary(ownClient(grpcPort), 'echo', { item: item(1) }, bearer('a'));
  assert.equal(asked, ['a', 'b', 'a']);
  for (let i = 0; i < 2; i++)
    assert.is((await unary(one, 'echo', { item: item(1) }, bearer('bad'))).error?.code, grpc.status.UNAUTHENTICATED);
  assert.equal(asked.slice(3), ['bad', 'bad']);
  // A principal already expired is refused, and not kept.
  for (let i = 0; i < 2; i++)
    assert.is((await unary(one, 'echo', { item: item(1) }, bearer('old'))).error?.code, grpc.status.UNAUTHENTICATED);
  assert.equal(asked.slice(5), ['old', 'old']);
});

test('a cleartext connection that sends nothing is closed after handshakeTimeoutMs; handshakes count per address', async () => {
  const { grpcPort } = await start({ handshakeTimeoutMs: 200 });
  const { closed } = await silent(grpcPort);
  assert.ok(await within(closed, 10_000), 'the silent connection was closed');
  const { grpcPort: capped } = await start({ maxHandshakingPerAddress: 1 });
  await assertOneHandshakeAtATime(capped);
  // One client after the other: each connection's preface gave its slot back.
  for (let i = 0; i < 2; i++) {
    const r = await unary(ownClient(capped), 'echo', { item: item(i) });
    assert.is(r.error, undefined, String(r.error));
  }
});

test.run();
