import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, type Protocol } from '../../src/index.js';
import { readGoaway } from '../../src/framing/bodies.js';
import { FrameType } from '../../src/framing/frame.js';
import { deferred, item, loadEcho, rejection, startServer, until, type Item, type Started } from '../helpers/echo-fixture.js';
import { RawClient, errorOf, requestFrame } from '../helpers/raw-client.js';
import { fakeServer } from '../helpers/fake-server.js';
import { RawPeer, requestBytes } from '../helpers/raw-peer.js';
import { offer } from '../../src/framing/extensions.js';
import type { Logger } from '../../src/observability/observer.js';

/** server.close({ graceMs }): GOAWAY, in-flight calls finish, new calls refused, sockets closed by the deadline. */
const test = suite('graceful close');
let protocol: Protocol;

test.before(async () => {
  protocol = await loadEcho();
});

/** A server whose `echo` holds items with id >= 0 until `release()`; negative ids answer at once. */
async function holdingServer(): Promise<{ started: Started; held: Array<{ id: number; signal: AbortSignal }>; release: () => void }> {
  const held: Array<{ id: number; signal: AbortSignal }> = [];
  const gate = deferred();
  const started = await startServer({
    protocol,
    handlers: {
      echo: async (req: { item: Item }, ctx) => {
        if (req.item.id < 0) return req.item;
        held.push({ id: req.item.id, signal: ctx.signal });
        await gate.promise;
        return req.item;
      },
    },
  });
  return { started, held, release: gate.resolve };
}

test('in-flight calls finish with their values; calls made after close started are refused UNAVAILABLE', async () => {
  const { started, held, release } = await holdingServer();
  const client = createClient({ protocol, endpoints: [started.endpoint], waitForReadyMs: 1000, backoff: { initialMs: 20 } });
  try {
    const inFlight = [1, 2, 3, 4, 5].map((i) => client.call<Item>('echo', { item: item(i) }));
    await until(() => held.length === 5, 'five calls to be running');
    const closed = started.server.close({ graceMs: 10_000 });
    await until(() => client.stats()[0]!.ready === 0, 'the client to take the GOAWAY');
    const refused = await rejection(client.call('echo', { item: item(-1) }));
    assert.is(refused.code, Code.UNAVAILABLE);
    assert.is(held.length, 5, 'the refused call never reached a handler');
    release();
    const values = await Promise.all(inFlight);
    assert.equal(
      values.map((v) => v.id),
      [1, 2, 3, 4, 5],
    );
    assert.ok(values.every((v) => v.name === `item-${v.id}`));
    await closed;
    assert.is(started.server.connections, 0);
    assert.ok(
      held.every((h) => !h.signal.aborted),
      'no running handler was cancelled',
    );
  } finally {
    release();
    await client.close();
    await started.server.close();
  }
});

test('on the wire: GOAWAY names the last accepted id, later requests get ERROR UNAVAILABLE, then the socket closes', async () => {
  const { started, held, release } = await holdingServer();
  const raw = await RawClient.connect(started.port);
  try {
    raw.write(requestFrame(protocol, 1, 'echo', { item: item(1) }));
    raw.write(requestFrame(protocol, 7, 'echo', { item: item(7) }));
    await until(() => held.length === 2, 'both calls to be running');
    const closed = started.server.close({ graceMs: 10_000 });
    const goaway = await raw.frame();
    assert.is(goaway.type, FrameType.GOAWAY);
    assert.equal({ ...readGoaway(goaway.body), message: '' }, { lastId: 7, code: Code.OK, message: '' });
    raw.write(requestFrame(protocol, 8, 'echo', { item: item(8) }));
    const refused = await raw.frame();
    assert.is(refused.id, 8);
    assert.is(errorOf(refused).code, Code.UNAVAILABLE);
    release();
    const answers = [await raw.frame(), await raw.frame()];
    assert.equal(answers.map((f) => [f.type, f.id]).sort(), [
      [FrameType.RESPONSE, 1],
      [FrameType.RESPONSE, 7],
    ]);
    await new Promise((r) => (raw.socket.closed ? r(undefined) : raw.socket.once('close', r)));
    await closed;
    assert.is(started.server.connections, 0);
  } finally {
    release();
    await raw.close();
  }
});

test('a handler that never returns: its call fails and the socket is closed at the grace deadline', async () => {
  const aborted = deferred<RpcError>();
  let entered = 0;
  const started = await startServer({
    protocol,
    handlers: {
      echo: (_req: { item: Item }, ctx) => {
        entered++;
        ctx.signal.addEventListener('abort', () => aborted.resolve(ctx.signal.reason as RpcError));
        return new Promise(() => undefined); // never settles
      },
    },
  });
  const client = createClient({ protocol, endpoints: [started.endpoint], maxAttempts: 1 });
  try {
    const stuck = client.call('echo', { item: item(1) });
    void stuck.catch(() => undefined);
    await until(() => entered === 1, 'the handler to be running');
    await started.server.close({ graceMs: 100 });
    assert.is(started.server.connections, 0, 'every socket is closed when close() resolves');
    const err = await rejection(stuck);
    assert.is(err.code, Code.UNAVAILABLE);
    assert.is((await aborted.promise).code, Code.CANCELLED, 'the handler was told');
  } finally {
    await client.close();
  }
});

test('with a second endpoint, calls go transparently to it while the first one drains', async () => {
  const a = await holdingServer();
  const bSeen: number[] = [];
  const b = await startServer({
    protocol,
    handlers: {
      echo: (req: { item: Item }) => {
        bSeen.push(req.item.id);
        return req.item;
      },
    },
  });
  const client = createClient({ protocol, endpoints: [a.started.endpoint, b.endpoint], balancer: 'roundRobin' });
  try {
    // Warm both sockets up, then keep one call running on A so that it drains rather than closes.
    for (let i = -1; i > -5; i--) await client.call('echo', { item: item(i) });
    // Round robin: of two calls, one lands on A (held there) and one on B (answered).
    const slow = [client.call<Item>('echo', { item: item(1000) }), client.call<Item>('echo', { item: item(1001) })];
    await until(() => a.held.length === 1, 'a call to run on A');
    bSeen.length = 0;
    const closed = a.started.server.close({ graceMs: 10_000 });
    // Calls issued in the same turn as close() may reach A after its GOAWAY: A refuses them
    // UNAVAILABLE (never run), and the client sends them again to B.
    const burst = Array.from({ length: 40 }, (_, i) => client.call<Item>('echo', { item: item(i) }));
    const values = await Promise.all(burst);
    assert.equal(
      values.map((v) => v.id),
      Array.from({ length: 40 }, (_, i) => i),
    );
    for (let i = 0; i < 40; i++) assert.ok(bSeen.includes(i), `call ${i} was served by B`);
    assert.is(a.held.length, 1, 'A ran nothing new');
    a.release();
    assert.equal(
      (await Promise.all(slow)).map((v) => v.id),
      [1000, 1001],
    );
    await closed;
  } finally {
    a.release();
    await client.close();
    await a.started.server.close();
    await b.server.close({ graceMs: 1000 });
  }
});

test('requests in flight when a server closes an idle connection are retried, not lost', async () => {
  // A server that, like a real one draining an idle connection, sends GOAWAY naming the last request it
  // took (none) and closes without answering a request that crossed the GOAWAY on the wire.
  let crossed = 0;
  const closing = await fakeServer({
    onFrame: (socket, type, _flags, id) => {
      if (type !== FrameType.REQUEST) return;
      crossed++;
      const goaway = Buffer.from([0, 0, 0, 6, FrameType.GOAWAY, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      goaway.writeUInt32BE(id - 1, 10);
      socket.end(goaway);
    },
  });
  const good = await startServer({ protocol, handlers: { echo: (req: { item: Item }) => req.item } });
  const client = createClient({ protocol, endpoints: [closing.endpoint, good.endpoint], balancer: 'roundRobin' });
  try {
    for (let i = 0; i < 6; i++) assert.is((await client.call<Item>('echo', { item: item(i) })).id, i);
    assert.ok(crossed >= 1, 'some calls were first sent to the closing server');
  } finally {
    await client.close();
    await closing.close();
    await good.server.close({ graceMs: 1000 });
  }
});

test('an answer queued behind a large one while the socket is blocked still goes out when close ends the socket', async () => {
  // Call 1 answers 10 MB (one frame: the client takes no fragments), which blocks the server's socket;
  // call 2 finishes right after, while blocked, and is the last call of a draining connection.
  const big = 'x'.repeat(10_000_000);
  const gate = deferred();
  const secondGate = deferred();
  let running = 0;
  const started = await startServer({
    protocol,
    handlers: {
      echo: async (req: { item: Item }) => {
        running++;
        if (req.item.id === 2) {
          await secondGate.promise;
          return req.item;
        }
        await gate.promise;
        // After this turn's writes, i.e. once the large answer went to the (blocked) socket.
        setImmediate(secondGate.resolve);
        return { ...req.item, name: big };
      },
    },
  });
  const client = createClient({ protocol, endpoints: [started.endpoint], fragmentBytes: 0, maxAttempts: 1 });
  try {
    const calls = [client.call<Item>('echo', { item: item(1) }), client.call<Item>('echo', { item: item(2) })];
    await until(() => running === 2, 'both calls to be running');
    const closed = started.server.close({ graceMs: 10_000 });
    gate.resolve();
    const [first, second] = await Promise.all(calls);
    assert.is(first!.name.length, big.length);
    assert.equal([second!.id, second!.name], [2, 'item-2']);
    await closed;
  } finally {
    gate.resolve();
    secondGate.resolve();
    await client.close();
    await started.server.close();
  }
});

test('a peer that takes no more bytes cannot hold a closing server until its grace deadline', async () => {
  // The peer reads but never acknowledges fragments, so a large answer stalls once the window is spent.
  // Why each connection closed: an error's message, or an orderly close's reason (logged without an error).
  const closeErrors: string[] = [];
  const log = (entry: object): void => {
    const { err, reason } = entry as { err?: RpcError; reason?: string };
    const why = err?.message ?? reason;
    if (why !== undefined) closeErrors.push(why);
  };
  const logger: Logger = { debug: log, info: log, warn: log, error: log };
  const gate = deferred();
  let running = 0;
  const started = await startServer({
    protocol,
    logger,
    handlers: {
      echo: async (req: { item: Item }) => {
        running++;
        await gate.promise;
        return { ...req.item, name: 'y'.repeat(4_000_000) };
      },
    },
  });
  const peer = await RawPeer.connect(started.port);
  try {
    const welcome = await peer.handshake(
      protocol,
      offer({ maxPartialMessages: 4, windowBytes: 256 * 1024, compression: false, streamWindow: 0 }),
    );
    assert.is(welcome.type, FrameType.WELCOME);
    peer.socket.write(requestBytes(protocol, 1, 'echo', { item: item(1) }));
    await until(() => running === 1, 'the call to be running');
    const closed = started.server.close({ graceMs: 30_000 });
    gate.resolve();
    await closed;
    assert.is(closeErrors.length, 1);
    assert.match(closeErrors[0]!, /read nothing/, 'dropped for not reading, not at the grace deadline');
  } finally {
    gate.resolve();
    peer.destroy();
    await started.server.close();
  }
});

test('close() with no connections resolves, and a second close() returns the same promise', async () => {
  const started = await startServer({ protocol, handlers: {} });
  const first = started.server.close({ graceMs: 50 });
  assert.is(started.server.close(), first);
  await first;
});

test.run();
