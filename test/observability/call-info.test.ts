import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createServer, parseProtocol, type CallInfo, type RpcObserver } from '../../src/index.js';
import { combineObservers } from '../../src/observability/observer.js';

/** The `info` argument of the observer hooks, on both sides of real loopback calls. */
const test = suite('observer hooks receive the call context (CallInfo)');
const protocol = parseProtocol(`@namespace("obs.info") protocol Info {
  string echo(string s);
  string crash();
  string hang();
  void note(string s) oneway;
  @stream("server") string count(int n);
}`);

/** What an observer saw of each call: the info objects at start and end, in order. */
interface Seen {
  started: CallInfo[];
  ended: Array<{ message: string; code: Code; ms: number; info: CallInfo }>;
  elements: Array<{ direction: string; info: CallInfo }>;
  /** Snapshot of the info's end fields as they were when `callStarted` ran. */
  atStart: Array<{ code: Code | undefined; durationMs: number }>;
}

function recorder(): { seen: Seen; observer: RpcObserver } {
  const seen: Seen = { started: [], ended: [], elements: [], atStart: [] };
  return {
    seen,
    observer: {
      callStarted(_message, info) {
        seen.started.push(info);
        seen.atStart.push({ code: info.code, durationMs: info.durationMs });
      },
      callEnded(message, code, ms, info) {
        seen.ended.push({ message, code, ms, info });
      },
      streamElement(_message, direction, info) {
        seen.elements.push({ direction, info });
      },
    },
  };
}

/** Waits (bounded) until the server reported `n` ended calls: its hook runs after its answer went out. */
async function endedCount(seen: Seen, n: number): Promise<void> {
  for (let i = 0; i < 500 && seen.ended.length < n; i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(seen.ended.length >= n, `server ended ${seen.ended.length} of ${n} calls`);
}

async function setup(extra: { authenticate?: Parameters<typeof createServer>[0]['authenticate'] } = {}) {
  const server = recorder();
  const client = recorder();
  const root = new TypeError('root cause');
  const s = createServer({
    protocol,
    ...extra,
    handlers: {
      echo: ({ s: text }: { s: string }) => text,
      crash: () => {
        throw new Error('crashed', { cause: root });
      },
      hang: (_req: unknown, ctx: { signal: AbortSignal }) =>
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')))),
      note: () => undefined,
      count: async function* ({ n }: { n: number }) {
        for (let i = 0; i < n; i++) yield `#${i}`;
      },
    },
    observer: server.observer,
  });
  const { port } = await s.listen({ host: '127.0.0.1', port: 0 });
  const c = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], observer: client.observer, credentials: 'tok' });
  return { server, client, s, c, port, root };
}

test('a unary call: the same object at start and end, both sides agree on sizes; peer, metadata, deadline', async () => {
  const { server, client, s, c, port } = await setup({ authenticate: ({ token }) => ({ user: token }) });
  try {
    const text = 'x'.repeat(1000);
    const before = Date.now();
    assert.is(await c.call('echo', { s: text }, { metadata: { tenant: 'blue' }, timeoutMs: 10_000 }), text);
    await endedCount(server.seen, 1);
    const [sv] = server.seen.ended;
    const [cl] = client.seen.ended;
    assert.ok(sv !== undefined && cl !== undefined);
    // One object per call and side, filled in at the end.
    assert.is(server.seen.started[0], sv.info);
    assert.is(client.seen.started[0], cl.info);
    assert.equal(server.seen.atStart[0], { code: undefined, durationMs: 0 });
    for (const [side, e] of [
      ['server', sv],
      ['client', cl],
    ] as const) {
      const i = e.info;
      assert.is(i.side, side);
      assert.is(i.service, 'obs.info.Info');
      assert.is(i.message, 'echo');
      assert.is(i.kind, 'unary');
      assert.equal({ ...i.metadata }, { tenant: 'blue' });
      assert.is(i.code, Code.OK);
      assert.is(e.code, Code.OK);
      assert.is(i.durationMs, e.ms);
      assert.ok(i.durationMs > 0);
      assert.is(i.error, undefined);
      assert.is(i.attempts, 1);
      // Epoch ms from the monotonic clock (performance.timeOrigin + now): within clock skew of Date.now().
      assert.ok(i.startTime >= before - 50 && i.startTime <= Date.now() + 50, `${side} startTime`);
      // About 10 s from now (the wire carries the remaining ms: a little less on the server).
      assert.ok(i.deadline > before + 9_000 && i.deadline <= Date.now() + 10_000, `${side} deadline ${i.deadline - before}`);
      // The string and the head: more than the payload, not much more.
      assert.ok(i.requestBytes > 1000 && i.requestBytes < 1100, `${side} requestBytes ${i.requestBytes}`);
      assert.ok(i.responseBytes > 1000 && i.responseBytes < 1100, `${side} responseBytes ${i.responseBytes}`);
    }
    // The same REQUEST and RESPONSE bodies, measured on each side.
    assert.is(sv.info.requestBytes, cl.info.requestBytes);
    assert.is(sv.info.responseBytes, cl.info.responseBytes);
    assert.is(cl.info.peer, `127.0.0.1:${port}`);
    assert.match(sv.info.peer, /^127\.0\.0\.1:\d+$/);
    assert.is.not(sv.info.peer, cl.info.peer);
    assert.equal(sv.info.principal, { user: 'tok' });
    assert.is(cl.info.principal, undefined);
  } finally {
    await c.close();
    await s.close({ graceMs: 100 });
  }
});

test('failures: the server sees what the handler threw (with its cause), the client its RpcError', async () => {
  const { server, client, s, c, root } = await setup();
  try {
    const err = await c.call('crash', {}).catch((e: RpcError) => e);
    assert.instance(err, RpcError);
    await endedCount(server.seen, 1);
    const sv = server.seen.ended[0]!.info;
    const cl = client.seen.ended[0]!.info;
    assert.is(sv.code, Code.INTERNAL);
    assert.instance(sv.error, Error);
    assert.is((sv.error as Error).message, 'crashed');
    assert.is((sv.error as Error).cause, root);
    assert.is(cl.code, Code.INTERNAL);
    assert.is(cl.error, err);
    assert.ok(sv.responseBytes > 0 && sv.responseBytes === cl.responseBytes, `ERROR body ${sv.responseBytes} / ${cl.responseBytes}`);

    // A deadline: the client DEADLINE_EXCEEDED; the server sent no answer.
    const late = await c.call('hang', {}, { timeoutMs: 50 }).catch((e: RpcError) => e);
    assert.is((late as RpcError).code, Code.DEADLINE_EXCEEDED);
    await endedCount(server.seen, 2);
    const svLate = server.seen.ended[1]!.info;
    // Its own deadline, or the client's CANCEL for it, whichever came first.
    assert.ok(svLate.code === Code.DEADLINE_EXCEEDED || svLate.code === Code.CANCELLED, `server code ${svLate.code}`);
    assert.instance(svLate.error, RpcError);
    assert.is((svLate.error as RpcError).code, svLate.code);
    assert.is(svLate.responseBytes, 0);
    assert.is(client.seen.ended[1]!.info.responseBytes, 0);
    assert.is(client.seen.ended[1]!.info.error, late);
  } finally {
    await c.close();
    await s.close({ graceMs: 100 });
  }
});

test('a call refused before it was sent: no peer, no bytes, no attempt', async () => {
  const { client, s, c } = await setup();
  try {
    const err = await c.call('echo', { s: 'x' }, { timeoutMs: 0 }).catch((e: RpcError) => e);
    const e = client.seen.ended[0]!;
    assert.is(e.code, Code.DEADLINE_EXCEEDED);
    assert.is(e.info.error, err);
    assert.is(e.info.peer, '');
    assert.is(e.info.requestBytes, 0);
    assert.is(e.info.attempts, 0);
    assert.is(client.seen.started[0], e.info);
  } finally {
    await c.close();
    await s.close({ graceMs: 100 });
  }
});

test('one-way and stream calls: their kind, and a stream counts its elements on both sides', async () => {
  const { server, client, s, c } = await setup();
  try {
    await c.call('note', { s: 'hi' });
    const got: string[] = [];
    for await (const item of c.serverStream('count', { n: 5 })) got.push(item as string);
    assert.equal(got, ['#0', '#1', '#2', '#3', '#4']);
    await endedCount(server.seen, 2);
    const byMessage = (seen: Seen, m: string) => seen.ended.find((e) => e.message === m)!.info;
    assert.is(byMessage(server.seen, 'note').kind, 'oneWay');
    assert.is(byMessage(client.seen, 'note').kind, 'oneWay');
    assert.is(byMessage(server.seen, 'note').responseBytes, 0);
    for (const seen of [server.seen, client.seen]) {
      const i = byMessage(seen, 'count');
      assert.is(i.kind, 'server');
      assert.is(i.code, Code.OK);
      assert.is(i.responseElements, 5, `${i.side} responseElements`);
      assert.is(i.requestElements, 0);
      assert.ok(i.requestBytes > 0);
      // The END: sizes agree across the sides.
      assert.is(i.responseBytes, byMessage(server.seen, 'count').responseBytes);
      assert.is(i.requestBytes, byMessage(server.seen, 'count').requestBytes);
      // streamElement got the call's own info, its count already including the element.
      const elements = seen.elements.filter((x) => x.info === i);
      assert.is(elements.length, 5);
      assert.ok(elements.every((x) => x.direction === (i.side === 'server' ? 'sent' : 'received')));
    }
  } finally {
    await c.close();
    await s.close({ graceMs: 100 });
  }
});

test('a request refused before any handler runs ends as (refused), with the peer and the refusal', async () => {
  const server = recorder();
  // No handler for crash: its requests are refused UNIMPLEMENTED before anything runs.
  const s = createServer({ protocol, handlers: { echo: ({ s: text }: { s: string }) => text }, observer: server.observer });
  const { port } = await s.listen({ host: '127.0.0.1', port: 0 });
  const c = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    const err = await c.call('crash', {}).catch((e: RpcError) => e);
    assert.is((err as RpcError).code, Code.UNIMPLEMENTED);
    await endedCount(server.seen, 1);
    const e = server.seen.ended[0]!;
    assert.is(e.message, '(refused)');
    assert.is(e.info.message, '(refused)');
    assert.is(e.code, Code.UNIMPLEMENTED);
    assert.instance(e.info.error, RpcError);
    assert.is((e.info.error as RpcError).code, Code.UNIMPLEMENTED);
    assert.match(e.info.peer, /^127\.0\.0\.1:\d+$/);
    // Nothing started for it.
    assert.is(server.seen.started.length, 0);
  } finally {
    await c.close();
    await s.close({ graceMs: 100 });
  }
});

test('observers written for the shorter hooks (message; message, code, ms) still work', async () => {
  const seen: string[] = [];
  // Typed as such observers were written: assignable to RpcObserver as they are.
  const old: RpcObserver = {
    callStarted(message: string) {
      seen.push(`start ${message}`);
    },
    callEnded(message: string, code: Code, durationMs: number) {
      seen.push(`end ${message} ${code} ${durationMs > 0}`);
    },
  };
  const s = createServer({ protocol, handlers: { echo: ({ s: text }: { s: string }) => text }, observer: old });
  const { port } = await s.listen({ host: '127.0.0.1', port: 0 });
  const c = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], observer: old });
  try {
    assert.is(await c.call('echo', { s: 'a' }), 'a');
    for (let i = 0; i < 500 && seen.length < 4; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(seen.sort(), ['end echo 0 true', 'end echo 0 true', 'start echo', 'start echo']);
  } finally {
    await c.close();
    await s.close({ graceMs: 100 });
  }
});

test('a hedged call: one CallInfo, both attempts counted, the peer of the last one sent', async () => {
  const hedgeProtocol = parseProtocol(`protocol Hedge { @idempotent(true) string who(); }`);
  // The first call either server sees waits (until cancelled): its hedge, on the other server, answers.
  let first = true;
  const handlers = (name: string) => ({
    who: (_req: unknown, ctx: { signal: AbortSignal }) => {
      if (!first) return name;
      first = false;
      return new Promise<string>((resolve) => ctx.signal.addEventListener('abort', () => resolve('cancelled')));
    },
  });
  const a = createServer({ protocol: hedgeProtocol, handlers: handlers('a') });
  const b = createServer({ protocol: hedgeProtocol, handlers: handlers('b') });
  const ports = { a: (await a.listen({ host: '127.0.0.1', port: 0 })).port, b: (await b.listen({ host: '127.0.0.1', port: 0 })).port };
  const client = recorder();
  const c = createClient({
    protocol: hedgeProtocol,
    endpoints: [`127.0.0.1:${ports.a}`, `127.0.0.1:${ports.b}`],
    hedgeDelayMs: 20,
    observer: client.observer,
  });
  try {
    const answer = (await c.call('who', {})) as 'a' | 'b';
    const info = client.seen.ended[0]!.info;
    assert.is(client.seen.started.length, 1, 'one call for the observer');
    assert.is(client.seen.ended.length, 1);
    assert.is(info.attempts, 2);
    assert.is(info.code, Code.OK);
    assert.is(info.peer, `127.0.0.1:${ports[answer]}`);
    assert.ok(info.responseBytes > 0);
  } finally {
    await c.close();
    await a.close({ graceMs: 100 });
    await b.close({ graceMs: 100 });
  }
});

test('combineObservers: each observer sees every hook it has, with the same CallInfo', async () => {
  const a = recorder();
  const b = recorder();
  const onlyEnd: CallInfo[] = [];
  const s = createServer({ protocol, handlers: { echo: ({ s: text }: { s: string }) => text } });
  const { port } = await s.listen({ host: '127.0.0.1', port: 0 });
  let attached = 0;
  let detached = 0;
  const pools: RpcObserver = {
    poolAttached: () => {
      attached++;
      return () => void detached++;
    },
  };
  const observer = combineObservers(a.observer, b.observer, { callEnded: (_m, _c, _ms, info) => void onlyEnd.push(info) }, pools, pools);
  assert.is(observer.connectionOpened, undefined, 'a hook none has stays absent');
  const c = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], observer });
  try {
    assert.is(await c.call('echo', { s: 'a' }), 'a');
    assert.is(a.seen.ended.length, 1);
    assert.is(b.seen.ended.length, 1);
    assert.is(a.seen.ended[0]!.info, b.seen.ended[0]!.info);
    assert.is(onlyEnd[0], a.seen.ended[0]!.info);
    assert.is(attached, 2);
  } finally {
    await c.close();
    await s.close({ graceMs: 100 });
  }
  assert.is(detached, 2);
});

test.run();
