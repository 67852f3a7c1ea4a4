import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Code,
  RpcError,
  createHmacAuth,
  parseProtocol,
  type Authenticator,
  type CallContext,
  type Client,
  type ClientOptions,
  type Protocol,
  type Server,
} from '../../src/index.js';
import { createHash } from 'node:crypto';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { FrameType, PREFACE } from '../../src/framing/frame.js';
import { helloType, writeHandshake } from '../../src/framing/handshake.js';
import { RawPeer, frameCode, frameMessage, helloBytes, requestBytes, until } from '../helpers/raw-peer.js';
import { failure, securityFixture } from '../helpers/security-fixture.js';
import { SocketReader } from '../helpers/socket-reader.js';
import { securityVectors } from '../helpers/spec-vectors.js';

/** Issue 5, authentication in the handshake: client credentials, server `authenticate`, HMAC tokens. */
const test = suite('security: authentication');
let protocol: Protocol;
const fixture = securityFixture(test, (p) => {
  protocol = p;
});
const item = { id: 7, name: 'auth', tags: [], score: 0, blob: Buffer.alloc(0) };
const SECRET = 'a shared secret of at least 32 bytes!';

function serve(
  authenticate: Authenticator,
  seen: CallContext[] = [],
  extra: { idleTimeoutMs?: number } = {},
): Promise<{ port: number; server: Server }> {
  return fixture.serve({
    authenticate,
    ...extra,
    handlers: {
      echo: (req: { item: unknown }, ctx: CallContext) => {
        seen.push(ctx);
        return req.item;
      },
    },
  });
}

function client(port: number, credentials: ClientOptions['credentials']): Client {
  // fragmentBytes 0: a plain version 1 client, whose HELLO carries only the token (SPEC.md section 11 vector).
  return fixture.client(port, { credentials, waitForReadyMs: 3000, backoff: { initialMs: 20, maxMs: 50 }, fragmentBytes: 0 });
}

test('a static token reaches authenticate, and its principal reaches ctx.peer', async () => {
  const tokens: Array<string | undefined> = [];
  const seen: CallContext[] = [];
  const { port } = await serve((hs) => {
    tokens.push(hs.token);
    if (hs.token !== 's3cret') throw new Error('bad token');
    return { id: 'alice' };
  }, seen);
  await client(port, 's3cret').call('echo', { item });
  assert.equal(tokens, ['s3cret']);
  assert.equal(seen[0]!.peer.principal, { id: 'alice' });
});

test('an async credentials function is called again for every new connection (rotating tokens)', async () => {
  let issued = 0;
  const tokens: Array<string | undefined> = [];
  const { port } = await serve(
    (hs) => {
      tokens.push(hs.token);
      return hs.token;
    },
    [],
    { idleTimeoutMs: 50 },
  );
  const c = client(port, async () => `token-${++issued}`);
  await c.call('echo', { item });
  // The server closes the idle connection; the client reconnects, and must fetch a fresh token.
  await until(() => tokens.length >= 2, 'a second connection authenticated');
  await c.call('echo', { item });
  // At most one further connection may be between credentials() and the server's authenticate.
  assert.ok(issued - tokens.length <= 1 && tokens.length >= 2, 'one credentials() call per connection');
  assert.equal(
    tokens,
    tokens.map((_, i) => `token-${i + 1}`),
    'each connection sent the token fetched for it',
  );
});

test('authenticate throwing refuses the client with UNAUTHENTICATED, without waiting for a retry', async () => {
  const seen: CallContext[] = [];
  const { port } = await serve(() => {
    throw new Error('who are you?');
  }, seen);
  const err = await failure(client(port, 'nope').call('echo', { item }));
  assert.is(err.code, Code.UNAUTHENTICATED);
  assert.match(err.message, 'who are you?');
  assert.is(seen.length, 0);
});

test('a refused handshake gets an ERROR frame with id 0 and code UNAUTHENTICATED, then the connection closes', async () => {
  const { port } = await serve(async () => {
    throw new RpcError(Code.UNAUTHENTICATED, 'token expired');
  });
  const raw = await RawPeer.connect(port);
  const f = await raw.handshake(protocol);
  assert.is(f.type, FrameType.ERROR);
  assert.is(f.id, 0);
  assert.is(frameCode(f), Code.UNAUTHENTICATED);
  assert.is(frameMessage(f), 'token expired');
  assert.equal(await raw.rest(), [], 'nothing after the ERROR but the close');
});

test('no call is dispatched before authentication: a request pipelined behind HELLO is a protocol error', async () => {
  const seen: CallContext[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let asked = 0;
  const { port } = await serve(async () => {
    asked++;
    await gate;
    return 'late';
  }, seen);
  const raw = await RawPeer.connect(port);
  raw.socket.write(Buffer.concat([helloBytes(protocol), requestBytes(protocol, 1, 'echo', { item })]));
  const frames = await raw.rest();
  release();
  assert.is(asked, 1);
  assert.is(seen.length, 0, 'the handler never ran');
  assert.ok(frames.length >= 1);
  const last = frames[frames.length - 1]!;
  assert.is(last.type, FrameType.GOAWAY);
  assert.is(frameCode(last), Code.INTERNAL);
  assert.ok(frames.every((f) => f.type !== FrameType.RESPONSE));
});

test('authentication comes first: a refused peer never makes the server parse the protocol text it sent', async () => {
  const { port } = await serve((hs) => {
    if (hs.token !== 'ok') throw new Error('refused');
    return 'p';
  });
  const junk = '{"protocol": "not really", "types": [';
  const hello = (token: string) => {
    const enc = new FrameEncoder();
    enc.bytes(PREFACE);
    enc.frame(
      FrameType.HELLO,
      0,
      0,
      {
        fingerprint: createHash('md5').update(junk).digest(),
        protocol: junk,
        knownServerFingerprint: null,
        meta: { 'avrpc.token': Buffer.from(token) },
      },
      writeHandshake(helloType),
    );
    return Buffer.concat(enc.take());
  };
  const refused = await RawPeer.connect(port);
  refused.socket.write(hello('bad'));
  const [r] = await refused.rest();
  assert.equal([r!.type, frameCode(r!)], [FrameType.ERROR, Code.UNAUTHENTICATED]);
  // The same HELLO from an authenticated peer does get parsed, and is a protocol error.
  const accepted = await RawPeer.connect(port);
  accepted.socket.write(hello('ok'));
  const [a] = await accepted.rest();
  assert.equal([a!.type, frameCode(a!)], [FrameType.GOAWAY, Code.INTERNAL]);
});

test('authenticate runs once per connection, also across a NEED_PROTOCOL exchange', async () => {
  let asked = 0;
  const seen: CallContext[] = [];
  const { port } = await serve(() => {
    asked++;
    return { id: 'n' };
  }, seen);
  // A client whose protocol the server does not know yet (an added message): it gets NEED_PROTOCOL first.
  const newer = parseProtocol(protocol.text.replace('"messages":{', '"messages":{"ping":{"request":[],"response":"null"},'));
  const c = fixture.client(port, { protocol: newer, credentials: 't' });
  assert.is((await c.call('echo', { item })).name, 'auth');
  assert.is(asked, 1);
  assert.equal(seen[0]!.peer.principal, { id: 'n' });
});

test('a credentials function that fails fails the call with UNAUTHENTICATED on the client', async () => {
  const { port } = await serve(() => 'anyone');
  const err = await failure(
    client(port, async () => {
      throw new Error('vault unreachable');
    }).call('echo', { item }),
  );
  assert.is(err.code, Code.UNAUTHENTICATED);
  assert.match(err.message, 'vault unreachable');
});

test('HMAC tokens: a valid token authenticates with its id and roles', async () => {
  const auth = createHmacAuth({ secret: SECRET });
  const seen: CallContext[] = [];
  const { port } = await serve(auth.authenticate, seen);
  await client(port, auth.issue('alice', ['admin'])).call('echo', { item });
  const p = seen[0]!.peer.principal as { id: string; roles: string[] };
  assert.is(p.id, 'alice');
  assert.equal(p.roles, ['admin']);
});

test('HMAC tokens: wrong secret, expired, tampered, malformed and missing are all UNAUTHENTICATED, with one message', async () => {
  let now = 1_000_000;
  const auth = createHmacAuth({ secret: SECRET, ttlMs: 1000, now: () => now });
  const other = createHmacAuth({ secret: 'another secret, also long enough!!', now: () => now });
  const seen: CallContext[] = [];
  const { port } = await serve(auth.authenticate, seen);
  const valid = auth.issue('bob');
  const [payload, mac] = valid.split('.') as [string, string];
  const forged = Buffer.from(JSON.stringify({ sub: 'root', roles: ['admin'], exp: now + 1e9 })).toString('base64url');
  const cases: Array<[string, string | undefined]> = [
    ['wrong secret', other.issue('bob')],
    ['tampered payload', `${forged}.${mac}`],
    ['tampered mac', `${payload}.${mac.slice(0, -2)}AA`],
    ['malformed', 'not-a-token'],
    ['missing', undefined],
  ];
  for (const [name, token] of cases) {
    const err = await failure(client(port, token).call('echo', { item }));
    assert.is(err.code, Code.UNAUTHENTICATED, name);
    assert.is(err.message, 'invalid token', name);
  }
  assert.is(auth.verify(valid).id, 'bob');
  now += 1000;
  const err = await failure(client(port, valid).call('echo', { item }));
  assert.is(err.code, Code.UNAUTHENTICATED);
  assert.is(err.message, 'invalid token');
  assert.is(seen.length, 0);
});

test('createHmacAuth refuses a short secret, naming the option', () => {
  try {
    createHmacAuth({ secret: 'short' });
    assert.unreachable('should throw');
  } catch (err) {
    assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
    assert.match((err as Error).message, 'createHmacAuth: options.secret');
  }
});

test('SPEC.md section 11 vectors: a real client sends the token HELLO, and a real server answers a refusal with the ERROR vector', async () => {
  const v = securityVectors();
  // Client side: a raw server records what a real client with credentials 'secret' sends.
  const sockets: Socket[] = [];
  const rawServer = createNetServer((s) => {
    sockets.push(s);
  });
  rawServer.listen(0, '127.0.0.1');
  await once(rawServer, 'listening');
  const c = client((rawServer.address() as AddressInfo).port, 'secret');
  const pending = c.call('echo', { item }).catch(() => undefined);
  await until(() => sockets.length > 0, 'client connected');
  const got = new SocketReader(sockets[0]!).read(v.tokenHello.length);
  try {
    await got;
  } finally {
    for (const s of sockets) s.destroy();
    rawServer.close();
    await once(rawServer, 'close');
    await c.close();
    await pending;
  }
  assert.is((await got).toString('hex'), v.tokenHello.toString('hex'));
  // Server side: a real server that refuses 'secret' answers exactly the ERROR vector.
  const { port } = await serve((hs) => {
    throw new Error(hs.token === 'secret' ? 'bad token' : 'no');
  });
  const raw = await RawPeer.connect(port);
  raw.socket.write(v.tokenHello);
  const answer = await raw.reader.read(v.refusal.length);
  assert.is(answer.toString('hex'), v.refusal.toString('hex'));
  await raw.closed;
});

test.run();
