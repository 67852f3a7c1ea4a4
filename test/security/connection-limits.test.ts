import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createServer, loadProtocol, type Client, type Protocol, type Server, type ServerOptions } from '../../src/index.js';
import { FrameType, PREFACE } from '../../src/framing/frame.js';
import { RawPeer, frameCode, frameMessage, helloBytes, requestBytes, until } from '../helpers/raw-peer.js';
import { repoPath } from '../helpers/repo.js';
import { SocketReader } from '../helpers/socket-reader.js';
import { namedVectors, vectorItem } from '../helpers/spec-vectors.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { writeGoaway } from '../../src/framing/bodies.js';

/** Issue 5, limits per connection: maxConnections, handshake timeout, idle timeout. */
const test = suite('security: connection limits');
let protocol: Protocol;
const item = { id: 5, name: 'limits', tags: [], score: 0, blob: Buffer.alloc(0) };
const open: Array<Server | Client> = [];
const peers: RawPeer[] = [];

test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});
test.after.each(async () => {
  for (const p of peers.splice(0)) p.destroy();
  for (const x of open.splice(0).reverse()) await x.close({ graceMs: 100 });
});

async function serve(options: Partial<ServerOptions>): Promise<{ server: Server; port: number }> {
  const server = createServer({ protocol, handlers: { echo: (req: { item: unknown }) => req.item }, ...options });
  open.push(server);
  return { server, port: (await server.listen()).port };
}

async function peer(port: number): Promise<RawPeer> {
  const p = await RawPeer.connect(port);
  peers.push(p);
  return p;
}

test('maxConnections: the connection beyond the limit gets GOAWAY RESOURCE_EXHAUSTED and is closed; the others work', async () => {
  const { server, port } = await serve({ maxConnections: 2 });
  const a = await peer(port);
  const b = await peer(port);
  assert.is((await a.handshake(protocol)).type, FrameType.WELCOME);
  assert.is((await b.handshake(protocol)).type, FrameType.WELCOME);
  const c = await peer(port);
  const refused = await c.frame();
  assert.is(refused.type, FrameType.GOAWAY);
  assert.is(frameCode(refused), Code.RESOURCE_EXHAUSTED);
  assert.match(frameMessage(refused), 'maxConnections (2)');
  await c.closed;
  assert.is(server.connections, 2);
  a.socket.write(requestBytes(protocol, 1, 'echo', { item }));
  assert.is((await a.frame()).type, FrameType.RESPONSE);
  // A slot freed is a slot usable again.
  b.destroy();
  await until(() => server.connections === 1, 'server noticed the closed connection');
  assert.is((await (await peer(port)).handshake(protocol)).type, FrameType.WELCOME);
});

test('maxConnections: a real client over the limit fails with RESOURCE_EXHAUSTED, not a hang', async () => {
  const { port } = await serve({ maxConnections: 1 });
  const first = await peer(port);
  await first.handshake(protocol);
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], backoff: { initialMs: 50, maxMs: 100 } });
  open.push(client);
  const err = await client.call('echo', { item }).then(() => undefined, (e: unknown) => e);
  assert.instance(err, RpcError);
  assert.is((err as RpcError).code, Code.RESOURCE_EXHAUSTED);
});

test('handshake timeout: a socket that connects and never speaks is closed', async () => {
  const { server, port } = await serve({ handshakeTimeoutMs: 50 });
  const silent = await peer(port);
  await silent.closed;
  assert.equal(await silent.rest(), [], 'closed without a frame');
  await until(() => server.connections === 0, 'connection forgotten');
});

test('handshake timeout: a client stuck half-way through its HELLO is closed too', async () => {
  const { server, port } = await serve({ handshakeTimeoutMs: 50 });
  const slow = await peer(port);
  const hello = helloBytes(protocol);
  slow.socket.write(hello.subarray(0, PREFACE.length + 12));
  await slow.closed;
  await until(() => server.connections === 0, 'connection forgotten');
});

test('handshake timeout: an authenticate hook that never answers does not hold the connection forever', async () => {
  const { server, port } = await serve({ handshakeTimeoutMs: 50, authenticate: () => new Promise(() => {}) });
  const p = await peer(port);
  p.socket.write(helloBytes(protocol));
  await p.closed;
  await until(() => server.connections === 0, 'connection forgotten');
});

test('idle timeout: a connection without calls gets GOAWAY OK and is closed; a running call keeps it open', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const { server, port } = await serve({
    idleTimeoutMs: 30,
    handlers: { echo: async (req: { item: unknown }) => { await gate; return req.item; } },
  });
  const p = await peer(port);
  await p.handshake(protocol);
  let received = 0;
  p.socket.on('data', (d: Buffer) => { received += d.length; });
  p.socket.write(requestBytes(protocol, 1, 'echo', { item }));
  // Several idle periods pass while the call runs: the connection must stay (nothing may arrive).
  await new Promise((r) => setTimeout(r, 200));
  assert.is(received, 0);
  release();
  const frames = await p.rest();
  assert.equal(frames.map((f) => f.type), [FrameType.RESPONSE, FrameType.GOAWAY]);
  assert.is(frameCode(frames[1]!), Code.OK);
  assert.match(frameMessage(frames[1]!), 'idle for 30 ms');
  await until(() => server.connections === 0, 'connection forgotten');
});

test('idle timeout: a real client reconnects transparently after the server closed its idle connection', async () => {
  const { port } = await serve({ idleTimeoutMs: 30 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  open.push(client);
  await client.call('echo', { item });
  await new Promise((r) => setTimeout(r, 150));
  assert.is((await client.call('echo', { item })).name, 'limits');
});

test('idle timeout race: a request that crosses the server\'s idle GOAWAY is retried, not failed', async () => {
  // The server decides the connection is idle and sends GOAWAY OK (lastId 0) just as the client sends a
  // request; the server has ended its side and cannot answer it. lastId says it never ran.
  const v = namedVectors();
  const seen: number[] = [];
  const sockets: Socket[] = [];
  let connections = 0;
  const fake = createNetServer((s) => {
    sockets.push(s);
    const n = ++connections;
    const reader = new SocketReader(s);
    void (async () => {
      await reader.read(PREFACE.length);
      await reader.frame(); // HELLO (on a reconnect it names the server fingerprint it learned)
      s.write(v.welcome);
      const req = await reader.frame();
      const id = req.readUInt32BE(6);
      seen.push(id);
      if (n === 1) {
        const enc = new FrameEncoder();
        enc.frame(FrameType.GOAWAY, 0, 0, { lastId: 0, code: Code.OK, message: 'idle for 30 ms' }, writeGoaway);
        s.end(Buffer.concat(enc.take()));
      } else {
        const answer = Buffer.from(v.response1);
        answer.writeUInt32BE(id, 6);
        s.write(answer);
      }
    })().catch(() => s.destroy());
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${(fake.address() as AddressInfo).port}`], backoff: { initialMs: 10, maxMs: 20 } });
  try {
    const r = await client.call('echo', { item: vectorItem });
    assert.is(r.name, vectorItem.name);
    assert.is(seen.length, 2, 'sent once, crossed the GOAWAY, sent again');
  } finally {
    await client.close();
    for (const s of sockets) s.destroy();
    fake.close();
    await once(fake, 'close');
  }
});

test('limit options are validated, naming the option', () => {
  for (const [key, value] of [['maxConnections', 0], ['handshakeTimeoutMs', -1], ['idleTimeoutMs', 1.5], ['maxQueuedBytes', 10]] as const) {
    try {
      createServer({ protocol, handlers: {}, [key]: value });
      assert.unreachable(`${key} = ${value} should throw`);
    } catch (err) {
      assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
      assert.match((err as Error).message, `createServer: options.${key}`);
    }
  }
});

test.run();
