/**
 * executeCall: the one path HTTP and gRPC calls run by, with authorize, interceptors, observers,
 * deadlines, declared errors and drain as avrpc calls have them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, type Protocol, type RpcObserver, type ServerOptions } from '../../src/index.js';
import { CallContext } from '../../src/server/call-context.js';
import { EncodedRequest, GatewayCalls, executeCall, runCall, type CallOutcome } from '../../src/server/call-executor.js';
import type { ServerShared } from '../../src/server/server-shared.js';
import { item, loadEcho } from '../helpers/echo-fixture.js';
import { fakeShared } from './fakes.js';

const peer = { address: '127.0.0.1', port: 1234 };
let protocol: Protocol;

function shared(options: Partial<ServerOptions>): ServerShared {
  return { ...fakeShared(protocol, options), gateway: new GatewayCalls() };
}

function call(s: ServerShared, name: string, request: unknown, deadline = Infinity, metadata: Record<string, string> = {}) {
  const msg = protocol.messages.find((m) => m.name === name)!;
  return executeCall(s, msg, request, new CallContext(name, metadata, deadline, peer));
}

test.before(async () => {
  protocol = await loadEcho();
});

test('a handler value is the outcome, through the interceptors, with the observer told', async () => {
  const seen: string[] = [];
  const observer: RpcObserver = {
    callStarted: (name) => seen.push(`start ${name}`),
    callEnded: (name, code) => seen.push(`end ${name} ${code}`),
  };
  const s = shared({
    handlers: { echo: (req: { item: unknown }) => req.item },
    interceptors: [async (req, ctx, next) => ({ ...((await next(req)) as object), name: `via ${ctx.metadata.who}` })],
    observer,
  });
  const out = await call(s, 'echo', { item: item(1) }, Infinity, { who: 'md' });
  assert.ok(out.ok);
  if (out.ok) assert.equal((out.value as { name: string }).name, 'via md');
  assert.equal(seen, ['start echo', `end echo ${Code.OK}`]);
});

test('a declared error keeps its value and type; an RpcError its code; anything else is INTERNAL', async () => {
  const s = shared({
    handlers: {
      fail: (req: { reason: string }) => {
        if (req.reason === 'declared') throw { reason: 'no' };
        if (req.reason === 'code') throw new RpcError(Code.NOT_FOUND, 'gone');
        throw new Error('boom');
      },
    },
    logger: { error() {}, warn() {}, info() {}, debug() {} } as never,
  });
  const declared = await call(s, 'fail', { reason: 'declared' });
  assert.ok(!declared.ok);
  if (!declared.ok) {
    assert.equal(declared.error.code, Code.UNKNOWN);
    assert.equal(declared.error.details, { reason: 'no' });
    assert.is(declared.error.errorType, 'avrpc.echo.EchoError');
  }
  const coded = await call(s, 'fail', { reason: 'code' });
  assert.equal(coded.ok ? undefined : [coded.error.code, coded.error.message], [Code.NOT_FOUND, 'gone']);
  const internal = await call(s, 'fail', { reason: 'x' });
  assert.equal(internal.ok ? undefined : [internal.error.code, internal.error.message], [Code.INTERNAL, 'boom']);
});

test('no handler is UNIMPLEMENTED; authorize refusing is PERMISSION_DENIED; an invalid response INTERNAL', async () => {
  const s = shared({
    handlers: { echo: () => ({ id: 'not a long' }), notify: () => undefined },
    authorize: (_p, name) => name !== 'notify',
    logger: { error() {}, warn() {}, info() {}, debug() {} } as never,
  });
  const none = await call(s, 'fail', { reason: 'r' });
  assert.is(none.ok ? undefined : none.error.code, Code.UNIMPLEMENTED);
  const denied = await call(s, 'notify', { item: item(1) });
  assert.is(denied.ok ? undefined : denied.error.code, Code.PERMISSION_DENIED);
  const invalid = await call(s, 'echo', { item: item(1) });
  assert.is(invalid.ok ? undefined : invalid.error.code, Code.INTERNAL);
});

test('the deadline ends the call DEADLINE_EXCEEDED and aborts the handler signal', async () => {
  let aborted: unknown;
  const s = shared({
    handlers: {
      echo: (_req: unknown, ctx) =>
        new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve((aborted = ctx.signal.reason)))),
    },
  });
  const out = await call(s, 'echo', { item: item(1) }, Date.now() + 20);
  assert.is(out.ok ? undefined : out.error.code, Code.DEADLINE_EXCEEDED);
  assert.is((aborted as RpcError).code, Code.DEADLINE_EXCEEDED);
});

test('a draining server refuses new calls UNAVAILABLE and its drain waits for those running', async () => {
  let release!: () => void;
  const s = shared({ handlers: { echo: (req: { item: unknown }) => new Promise((r) => (release = () => r(req.item))) } });
  const running = call(s, 'echo', { item: item(1) });
  await new Promise((r) => setImmediate(r));
  let drained = false;
  const drain = s.gateway!.drain().then(() => (drained = true));
  const refused = await call(s, 'echo', { item: item(2) });
  assert.is(refused.ok ? undefined : refused.error.code, Code.UNAVAILABLE);
  await new Promise((r) => setImmediate(r));
  assert.is(drained, false);
  release();
  assert.ok((await running).ok);
  await drain;
  assert.is(drained, true);
});

test('maxConcurrentCalls bounds the calls running at once', async () => {
  let release!: () => void;
  const s = shared({
    maxConcurrentCalls: 1,
    handlers: { echo: (req: { item: unknown }) => new Promise((r) => (release = () => r(req.item))) },
  });
  const first = call(s, 'echo', { item: item(1) });
  const second = await call(s, 'echo', { item: item(2) });
  assert.is(second.ok ? undefined : second.error.code, Code.RESOURCE_EXHAUSTED);
  await new Promise((r) => setImmediate(r));
  release();
  assert.ok((await first).ok);
});

test('runCall: a synchronous handler answers before runCall returns; a throw is the outcome an async one gives', async () => {
  const s = shared({
    handlers: {
      echo: (req: { item: unknown }) => req.item,
      fail: (req: { reason: string }) => {
        if (req.reason === 'sync') throw new RpcError(Code.NOT_FOUND, 'sync');
        return Promise.reject(new RpcError(Code.NOT_FOUND, 'async'));
      },
    },
  });
  const msg = (name: string) => protocol.messages.find((m) => m.name === name)!;
  const ctx = (name: string) => new CallContext(name, {}, Infinity, peer);
  let got: CallOutcome | undefined;
  runCall(s, msg('echo'), { item: item(3) }, ctx('echo'), (o) => (got = o));
  assert.ok(got?.ok);
  assert.is(s.gateway!.running, 0);
  const outcomes: CallOutcome[] = [];
  runCall(s, msg('fail'), { reason: 'sync' }, ctx('fail'), (o) => outcomes.push(o));
  await new Promise<void>((resolve) => runCall(s, msg('fail'), { reason: 'async' }, ctx('fail'), (o) => (outcomes.push(o), resolve())));
  assert.equal(
    outcomes.map((o) => (o.ok ? 'ok' : `${o.error.code} ${o.error.message}`)),
    [`${Code.NOT_FOUND} sync`, `${Code.NOT_FOUND} async`],
  );
});

test('runCall: the transport cancelling ends the call at once (once), its handler still pending', async () => {
  const s = shared({ handlers: { echo: () => new Promise(() => undefined) } });
  const msg = protocol.messages.find((m) => m.name === 'echo')!;
  const ctx = new CallContext('echo', {}, Infinity, peer);
  const outcomes: CallOutcome[] = [];
  runCall(s, msg, { item: item(1) }, ctx, (o) => outcomes.push(o));
  assert.is(s.gateway!.running, 1);
  ctx.cancel(new RpcError(Code.CANCELLED, 'client went away'));
  ctx.cancel(new RpcError(Code.CANCELLED, 'again'));
  assert.equal(
    outcomes.map((o) => (o.ok ? 'ok' : o.error.code)),
    [Code.CANCELLED],
  );
  assert.is(s.gateway!.running, 0);
});

test('runCall: bytes that do not decode are INVALID_ARGUMENT, the handler not called', async () => {
  let called = false;
  const s = shared({ handlers: { echo: () => ((called = true), undefined) } });
  const msg = protocol.messages.find((m) => m.name === 'echo')!;
  const out = await executeCall(s, msg, new EncodedRequest(Buffer.from([0xff])), new CallContext('echo', {}, Infinity, peer));
  assert.is(out.ok ? undefined : out.error.code, Code.INVALID_ARGUMENT);
  assert.is(called, false);
  assert.is(s.gateway!.running, 0);
});

test.run();
