import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect as netConnect } from 'node:net';
import { once } from 'node:events';
import {
  Code,
  RpcError,
  createClient,
  createServer,
  parseProtocol,
  type Client,
  type ClientOptions,
  type Logger,
  type Server,
  type ServerOptions,
} from '../../src/index.js';
import { FrameType } from '../../src/framing/frame.js';
import { loadEcho, until, item, type RawServer } from '../helpers/echo-fixture.js';
import { fakeServer } from '../helpers/fake-server.js';
import { freePort } from '../helpers/pool-fixture.js';
import { makeTestCerts } from '../helpers/certs.js';

const test = suite('logger: what is logged at which level, and nothing per successful call');
const protocol = parseProtocol(`protocol Log {
  string hello(string name);
  void note(string text) oneway;
  string missing();
  string boom();
  string bad();
}`);

interface Entry {
  level: keyof Logger;
  msg: string;
  obj: Record<string, unknown>;
}

/** A pino-shaped logger that keeps what it is given (the policy under test is what avrpc sends it). */
function recorder(): { logger: Logger; entries: Entry[] } {
  const entries: Entry[] = [];
  const at =
    (level: keyof Logger) =>
    (obj: object, msg?: string): void => {
      entries.push({ level, msg: msg ?? '', obj: obj as Record<string, unknown> });
    };
  return { entries, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}
const summary = (entries: readonly Entry[]): string[] => entries.map((e) => `${e.level} ${e.msg}`);

const opened: Array<Client | Server | RawServer> = [];
async function serve(options: Partial<ServerOptions> = {}): Promise<string> {
  const server = createServer({
    protocol,
    handlers: {
      hello: (req: { name: string }) => `hi ${req.name}`,
      note: () => undefined,
      missing: () => {
        throw new RpcError(Code.NOT_FOUND, 'no such thing');
      },
      boom: () => {
        throw new TypeError('kaput');
      },
      bad: () => 42 as unknown as string,
    },
    ...options,
  });
  opened.push(server);
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return `127.0.0.1:${port}`;
}
function connect(options: Partial<ClientOptions> & { endpoints: string[] }): Client {
  const client = createClient({ protocol, maxAttempts: 1, ...options });
  opened.push(client);
  return client;
}
test.after.each(async () => {
  for (const c of opened.splice(0).reverse()) {
    if ('call' in c) await c.close();
    else if ('sockets' in c) await c.close();
    else await c.close({ graceMs: 100 });
  }
});

test('successful calls, one-way calls and expected errors log nothing, at any level', async () => {
  const s = recorder();
  const c = recorder();
  const endpoint = await serve({ logger: s.logger });
  const client = connect({ endpoints: [endpoint], logger: c.logger, connectionsPerEndpoint: 2 });
  for (let i = 0; i < 50; i++) assert.is(await client.call('hello', { name: `n${i}` }), `hi n${i}`);
  await Promise.all(Array.from({ length: 50 }, (_, i) => client.call('note', { text: `t${i}` })));
  // A handler's own RpcError is an answer, not a failure of the server.
  assert.is(await client.call('missing', {}).catch((e: RpcError) => e.code), Code.NOT_FOUND);
  assert.is(await client.call('hello', { name: 'x' }), 'hi x');
  assert.equal(summary(s.entries), []);
  assert.equal(summary(c.entries), []);
  // Orderly closes are debug-level only.
  await client.close();
  assert.equal(summary(c.entries), ['debug connection closed', 'debug connection closed']);
  await until(() => s.entries.length === 2, 'the server saw both sockets close');
  assert.equal(summary(s.entries), ['debug connection closed', 'debug connection closed']);
});

test('handler failures are logged at error with the error, the message and the peer', async () => {
  const s = recorder();
  const endpoint = await serve({ logger: s.logger });
  const client = connect({ endpoints: [endpoint] });
  assert.is(await client.call('boom', {}).catch((e: RpcError) => e.code), Code.INTERNAL);
  assert.is(await client.call('bad', {}).catch((e: RpcError) => e.code), Code.INTERNAL);
  assert.equal(summary(s.entries), ['error handler failed', 'error handler returned an invalid response']);
  const [boom, bad] = s.entries;
  assert.instance(boom!.obj.err, TypeError);
  assert.is(boom!.obj.message, 'boom');
  assert.is((boom!.obj.peer as { address: string }).address, '127.0.0.1');
  assert.instance(bad!.obj.err, RpcError);
  assert.is((bad!.obj.err as RpcError).code, Code.INTERNAL);
  assert.is(bad!.obj.message, 'bad');
});

test('server: a peer sending garbage is a protocol error logged at warn, with its code', async () => {
  const s = recorder();
  const endpoint = await serve({ logger: s.logger });
  const socket = netConnect(Number(endpoint.split(':')[1]), '127.0.0.1');
  socket.on('error', () => undefined);
  socket.resume();
  socket.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await once(socket, 'close');
  await until(() => s.entries.length > 0, 'the server logged the bad peer');
  assert.is(s.entries.length, 1);
  const [e] = s.entries;
  assert.is(e!.level, 'warn');
  assert.match(e!.msg, /^connection closed: /);
  assert.instance(e!.obj.err, RpcError);
  assert.is(e!.obj.code, (e!.obj.err as RpcError).codeName);
  assert.is.not(e!.obj.code, 'UNAVAILABLE');
});

test('server: a plaintext client at a TLS server is logged at warn, and its socket closed', async () => {
  const certs = await makeTestCerts();
  try {
    const s = recorder();
    const endpoint = await serve({ logger: s.logger, tls: { cert: certs.serverCert, key: certs.serverKey } });
    const socket = netConnect(Number(endpoint.split(':')[1]), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.resume();
    socket.write(Buffer.from('AVRP\x01\x00 not a TLS hello'));
    await once(socket, 'close');
    await until(() => s.entries.length > 0, 'the server logged the failed handshake');
    assert.equal(summary(s.entries), ['warn TLS handshake failed']);
    assert.instance(s.entries[0]!.obj.err, RpcError);
    assert.is((s.entries[0]!.obj.peer as { address: string }).address, '127.0.0.1');
  } finally {
    await certs.cleanup();
  }
});

test('refused credentials: warn on the server, error on the client', async () => {
  const s = recorder();
  const c = recorder();
  const endpoint = await serve({
    logger: s.logger,
    authenticate: () => {
      throw new RpcError(Code.UNAUTHENTICATED, 'who are you');
    },
  });
  const client = connect({ endpoints: [endpoint], logger: c.logger, credentials: 'wrong' });
  assert.is(await client.call('hello', { name: 'x' }).catch((e: RpcError) => e.code), Code.UNAUTHENTICATED);
  assert.equal(summary(c.entries).slice(0, 1), ['error server refused our credentials']);
  assert.is(c.entries[0]!.obj.endpoint, endpoint);
  await until(() => s.entries.length > 0, 'the server logged the refusal');
  assert.equal(summary(s.entries).slice(0, 1), ['warn client refused at handshake']);
  assert.is(s.entries[0]!.obj.code, 'UNAUTHENTICATED');
});

test('client: an endpoint that refuses connections is logged at warn', async () => {
  const c = recorder();
  const endpoint = `127.0.0.1:${await freePort()}`;
  const client = connect({ endpoints: [endpoint], logger: c.logger, waitForReadyMs: 300 });
  assert.is(await client.call('hello', { name: 'x' }).catch((e: RpcError) => e.code), Code.UNAVAILABLE);
  assert.ok(c.entries.length >= 1);
  for (const e of c.entries) {
    assert.is(`${e.level} ${e.msg}`, 'warn connect failed');
    assert.is(e.obj.endpoint, endpoint);
    assert.is(e.obj.code, 'UNAVAILABLE');
  }
});

test('client: a working connection lost is info; a server speaking garbage is warn', async () => {
  const echo = await loadEcho();
  const resetting = await fakeServer({
    onFrame: (socket, type) => {
      if (type === FrameType.REQUEST) socket.destroy();
    },
  });
  opened.push(resetting);
  const lost = recorder();
  const a = createClient({ protocol: echo, endpoints: [resetting.endpoint], logger: lost.logger, maxAttempts: 1 });
  opened.push(a);
  assert.is(await a.call('echo', { item: item(1) }).catch((e: RpcError) => e.code), Code.UNAVAILABLE);
  assert.equal(summary(lost.entries).slice(0, 1), ['info connection lost']);
  assert.is(lost.entries[0]!.obj.endpoint, resetting.endpoint);

  // A frame of a type no server sends (header: length 0, type, flags, id).
  const unknownFrame = Buffer.alloc(10);
  unknownFrame[4] = 0x63;
  const garbling = await fakeServer({
    onFrame: (socket, type) => {
      if (type === FrameType.REQUEST) socket.write(unknownFrame);
    },
  });
  opened.push(garbling);
  const garbled = recorder();
  const b = createClient({ protocol: echo, endpoints: [garbling.endpoint], logger: garbled.logger, maxAttempts: 1 });
  opened.push(b);
  assert.is(await b.call('echo', { item: item(1) }).catch((e: RpcError) => e.code), Code.INTERNAL);
  assert.equal(summary(garbled.entries).slice(0, 1), ['warn connection closed: INTERNAL']);
  assert.match((garbled.entries[0]!.obj.err as RpcError).message, /unexpected frame type 99/);
});

test.run();
