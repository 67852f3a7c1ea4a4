import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createHmacAuth, type Authenticator, type Protocol } from '../../src/index.js';
import { FrameType, Flag } from '../../src/framing/frame.js';
import { frameCode, frameMessage, requestBytes, until } from '../helpers/raw-peer.js';
import { failure, securityFixture } from '../helpers/security-fixture.js';

/**
 * Issue 14: a principal's expiry ends the authorization of its connection. Calls after it are refused
 * UNAUTHENTICATED (REFUSED, no handler runs), GOAWAY UNAUTHENTICATED follows, and the connection closes
 * once the calls running end. Token lifetimes are real (300 ms) and waited for: no timing asserts.
 */
const test = suite('security: token expiry');
let protocol: Protocol;
const fixture = securityFixture(test, (p) => {
  protocol = p;
});
const item = { id: 5, name: 'expiry', tags: [], score: 0, blob: Buffer.alloc(0) };
const auth = createHmacAuth({ secret: 'token expiry tests use a long secret' });
let handled = 0;
let gate: Promise<void> = Promise.resolve();

test.before.each(() => {
  handled = 0;
  gate = Promise.resolve();
});

async function serve(authenticate: Authenticator = auth.authenticate) {
  return fixture.serve({
    authenticate,
    handlers: {
      echo: async (req: { item: unknown }) => {
        handled++;
        await gate;
        return req.item;
      },
    },
  });
}

test('after expiry a request is refused UNAUTHENTICATED with REFUSED, the running call still ends, then the server closes', async () => {
  const { port } = await serve();
  const token = auth.issue('alice', [], 300);
  const raw = await fixture.peer(port);
  const welcome = await raw.handshake(protocol, { 'avrpc.token': Buffer.from(token) });
  assert.is(welcome.type, FrameType.WELCOME);
  raw.socket.write(requestBytes(protocol, 1, 'echo', { item }));
  const first = await raw.frame();
  assert.equal([first.type, first.id], [FrameType.RESPONSE, 1], 'a call before expiry is answered');
  // A call still running when the token expires.
  let release!: () => void;
  gate = new Promise((r) => {
    release = r;
  });
  raw.socket.write(requestBytes(protocol, 3, 'echo', { item }));
  await until(() => handled === 2, 'the second call runs');
  // The token expires: the server says so with GOAWAY (and not only when the connection ends).
  const goaway = await raw.frame(5000);
  assert.is(goaway.type, FrameType.GOAWAY);
  assert.is(frameCode(goaway), Code.UNAUTHENTICATED);
  assert.match(frameMessage(goaway), 'expired');
  raw.socket.write(requestBytes(protocol, 5, 'echo', { item }));
  const refused = await raw.frame();
  assert.equal([refused.type, refused.id], [FrameType.ERROR, 5]);
  assert.is(frameCode(refused), Code.UNAUTHENTICATED);
  assert.ok((refused.flags & Flag.REFUSED) !== 0, 'flagged REFUSED: no handler ran');
  assert.is(handled, 2, 'the handler did not run for the call after expiry');
  release();
  const rest = await raw.rest();
  assert.equal(
    rest.map((f) => [f.type, f.id]),
    [[FrameType.RESPONSE, 3]],
    'the running call ends normally, then the connection closes',
  );
});

test('a client with a static token: calls before expiry succeed, after it UNAUTHENTICATED, and no handler runs', async () => {
  const { port, server } = await serve();
  const token = auth.issue('bob', [], 300);
  const c = fixture.client(port, { credentials: token, backoff: { initialMs: 20, maxMs: 50 } });
  for (let i = 0; i < 3; i++) assert.is((await c.call('echo', { item })).name, 'expiry');
  assert.is(handled, 3);
  // The server ends the connection by itself once the token has expired (no call is running).
  await until(() => server.connections === 0, 'the server closed the expired connection', 5000);
  for (let i = 0; i < 3; i++) {
    const err = await failure(c.call('echo', { item }));
    assert.is(err.code, Code.UNAUTHENTICATED);
  }
  assert.is(handled, 3, 'no handler ran after expiry');
});

test('a client with rotating credentials under load loses no call as its tokens expire: it reconnects with fresh ones', async () => {
  let opened = 0;
  const { port } = await fixture.serve({
    authenticate: auth.authenticate,
    observer: {
      connectionOpened: () => {
        opened++;
      },
    },
    handlers: {
      echo: (req: { item: unknown }) => {
        handled++;
        return req.item;
      },
    },
  });
  let issued = 0;
  const c = fixture.client(port, {
    credentials: () => {
      issued++;
      return auth.issue('carol', [], 300);
    },
  });
  const failures: number[] = [];
  let ok = 0;
  // 8 calls in flight until three connections have been opened (two expiries), bounded by the hang guard.
  const started = Date.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (opened < 3 && Date.now() - started < 10_000) {
        await c.call('echo', { item }).then(
          () => {
            ok++;
          },
          (e: { code: number }) => {
            failures.push(e.code);
          },
        );
      }
    }),
  );
  assert.ok(opened >= 3, 'the server ended each expired connection');
  assert.equal(failures, [], 'calls that crossed a GOAWAY UNAUTHENTICATED were retried on the new connection');
  assert.is(handled, ok);
  assert.ok(issued >= 3, 'a new token for each new connection');
});

test('a principal already expired is refused at the handshake; one expiring beyond 2^31 ms is not cut off early', async () => {
  const { port: past } = await serve(() => ({ id: 'dave', roles: [], expiresAt: Date.now() - 1 }));
  const err = await failure(fixture.client(past, { credentials: 'x' }).call('echo', { item }));
  assert.is(err.code, Code.UNAUTHENTICATED);
  assert.is(handled, 0);
  // Node fires a setTimeout longer than 2^31-1 ms after 1 ms: the expiry must wait in steps.
  const { port: far, server } = await serve(() => ({ id: 'erin', roles: [], expiresAt: Date.now() + 2 ** 31 + 60_000 }));
  const c = fixture.client(far, { credentials: 'x' });
  await c.call('echo', { item });
  await new Promise((r) => setTimeout(r, 50));
  assert.is((await c.call('echo', { item })).name, 'expiry');
  assert.is(server.connections, 1, 'still the first connection');
});

test.run();
