/**
 * The session that serves calls (src/server/server-session.ts) over a fake writer: admission wired to
 * the calls it runs, GOAWAY's admitted ids, expiry, cancellation and authorization from the head.
 * Handlers are plain functions and promises the test settles; no socket, no timer.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProtocol, type CallContext, type Protocol, type ServerOptions } from '../../src/index.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { draining } from '../../src/server/request-admission.js';
import { ServerSession } from '../../src/server/server-session.js';
import { requestBytes } from '../helpers/raw-peer.js';
import { repoPath } from '../helpers/repo.js';
import { FakeWriter, fakeShared } from './fakes.js';

const test = suite('server session');
let protocol: Protocol;
test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});
const item = { id: 1, name: 'x', tags: [], score: 0, blob: Buffer.alloc(0) };
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A session for our own protocol, its `echo` handler `echo`; counts its `settled` calls. */
function setup(echo: (req: { item: unknown }, ctx: CallContext) => unknown, options: Partial<ServerOptions> = {}) {
  const shared = fakeShared(protocol, { handlers: { echo }, ...options });
  const writer = new FakeWriter();
  const settled = { count: 0 };
  const codec = shared.cache.codec(protocol);
  const session = new ServerSession(
    shared,
    writer,
    {
      remote: protocol,
      codec,
      principal: undefined,
      negotiated: { peerPartialMessages: 0, peerWindowBytes: 0, compression: false, peerStreamWindow: 0 },
      unadmitted: undefined,
    },
    { address: '127.0.0.1', port: 1 },
    () => settled.count++,
  );
  return { session, writer, settled };
}

/** A REQUEST frame's flags and body. */
function request(id: number, timeoutMs = -1): [number, number, Buffer] {
  const frame = requestBytes(protocol, id, 'echo', { item }, undefined, timeoutMs);
  return [frame[5]!, id, frame.subarray(10)];
}

/** A handler whose calls wait until the test releases them. */
function pending() {
  const waiting: Array<() => void> = [];
  return {
    handler: (req: { item: unknown }) => new Promise((resolve) => waiting.push(() => resolve(req.item))),
    release: () => waiting.splice(0).forEach((r) => r()),
  };
}

test('a request runs its handler; the answer is a RESPONSE, and the session reports it settled', () => {
  const { session, writer, settled } = setup((req) => req.item);
  session.onRequest(...request(1));
  assert.equal(
    writer.frames.map((f) => [f.type, f.id]),
    [[FrameType.RESPONSE, 1]],
  );
  assert.is(session.inFlight, 0);
  assert.is(settled.count, 1);
  assert.is(session.completedCalls, 1);
});

test('an id reused while its call runs is a protocol error; a free one runs', async () => {
  const p = pending();
  const { session, writer } = setup(p.handler);
  session.onRequest(...request(7));
  session.onRequest(...request(8));
  assert.is(writer.failed, undefined);
  session.onRequest(...request(7));
  assert.is(writer.failed?.message, 'protocol error: request id 7 already in use');
  p.release();
  await tick();
});

test('maxConcurrentCalls counts cancelled calls until their handler settles', async () => {
  const p = pending();
  const { session, writer } = setup(p.handler, { maxConcurrentCalls: 1 });
  session.onRequest(...request(1));
  assert.not.ok(session.cancel(1), 'no deadline: a reset, not a timeout');
  session.onRequest(...request(2));
  assert.equal(writer.errors(), [
    { id: 2, flags: Flag.REFUSED, code: Code.RESOURCE_EXHAUSTED, message: 'too many concurrent calls (max 1)' },
  ]);
  p.release();
  await tick();
  assert.is(session.inFlight, 0);
  assert.equal(
    writer.frames.map((f) => f.type),
    [FrameType.ERROR],
    'the cancelled call is not answered',
  );
  session.onRequest(...request(3));
  assert.is(session.inFlight, 1);
  p.release();
  await tick();
});

test("a CANCEL near the deadline of its call reads as the client's timeout", async () => {
  const p = pending();
  const { session } = setup(p.handler);
  session.onRequest(...request(1, 10));
  assert.ok(session.cancel(1));
  p.release();
  await tick();
});

test('after GOAWAY: its last id covers the ids still arriving, which run; others are refused UNAVAILABLE', () => {
  const { session, writer } = setup((req) => req.item);
  session.onRequest(...request(3));
  assert.is(session.stopAccepting([9, 5]), 9);
  assert.not.ok(session.accepting);
  session.onRequest(...request(5));
  session.onRequest(...request(6));
  assert.equal(
    writer.frames.map((f) => [f.type, f.id]),
    [
      [FrameType.RESPONSE, 3],
      [FrameType.RESPONSE, 5],
      [FrameType.ERROR, 6],
    ],
  );
  assert.equal(writer.errors(), [{ id: 6, flags: Flag.REFUSED, code: Code.UNAVAILABLE, message: 'server is shutting down' }]);
});

test('a session built draining (GOAWAY during the handshake) runs nothing', () => {
  const shared = fakeShared(protocol, { handlers: { echo: (req: { item: unknown }) => req.item } });
  const writer = new FakeWriter();
  const codec = shared.cache.codec(protocol);
  const result = {
    remote: protocol,
    codec,
    principal: undefined,
    negotiated: { peerPartialMessages: 0, peerWindowBytes: 0, compression: false, peerStreamWindow: 0 },
    unadmitted: undefined,
  };
  const session = new ServerSession(shared, writer, result, { address: '', port: 0 }, () => {}, draining(undefined));
  session.onRequest(...request(1));
  assert.equal(
    writer.errors().map((e) => e.code),
    [Code.UNAVAILABLE],
  );
});

test('expired credentials: requests are refused UNAUTHENTICATED, admitted ones included', () => {
  const { session, writer } = setup((req) => req.item);
  session.onRequest(...request(2));
  session.stopAccepting([4]);
  assert.is(session.expire(), 2, 'the last id run, for its GOAWAY');
  session.onRequest(...request(4));
  assert.equal(writer.errors(), [{ id: 4, flags: Flag.REFUSED, code: Code.UNAUTHENTICATED, message: 'credentials expired' }]);
});

test('authorize refusing a request from its head: REFUSED PERMISSION_DENIED at once, its rest dropped', () => {
  let asked = 0;
  const { session, writer } = setup((req) => req.item, {
    authorize: () => {
      asked++;
      return false;
    },
  });
  const [flags, id, body] = request(5);
  assert.is(session.checkHead(flags, id, body.subarray(0, 4)), false);
  assert.equal(writer.errors(), [{ id: 5, flags: Flag.REFUSED, code: Code.PERMISSION_DENIED, message: 'not allowed to call echo' }]);
  assert.is(asked, 1);
});

test('a head allowed is not asked about again when the request is whole', () => {
  let asked = 0;
  const { session, writer } = setup((req) => req.item, {
    authorize: () => {
      asked++;
      return asked === 1;
    },
  });
  const [flags, id, body] = request(5);
  assert.ok(session.checkHead(flags, id, body.subarray(0, 4)));
  session.onRequest(flags, id, body);
  assert.is(asked, 1);
  assert.equal(
    writer.frames.map((f) => f.type),
    [FrameType.RESPONSE],
  );
});

test('close cancels the calls still running, with the reason as the cause', () => {
  const signals: AbortSignal[] = [];
  const { session } = setup((_req, ctx) => {
    signals.push(ctx.signal);
    return new Promise(() => {});
  });
  session.onRequest(...request(1));
  assert.is(session.inFlight, 1);
  session.close(new RpcError(Code.UNAVAILABLE, 'gone'));
  assert.is(session.inFlight, 0);
  assert.ok(signals[0]!.aborted);
  assert.match((signals[0]!.reason as RpcError).message, 'connection closed: gone');
});

test.run();
