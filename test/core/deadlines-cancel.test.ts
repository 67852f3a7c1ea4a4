import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { Code, RpcError, createClient, createServer, type CallContext, type Protocol } from '../../src/index.js';
import { FrameType } from '../../src/framing/frame.js';
import { connect } from 'node:net';
import { deferred, item, loadEcho, rawServer, rejection, startServer, until, type Item, type Started } from '../helpers/echo-fixture.js';
import { RawClient, requestFrame } from '../helpers/raw-client.js';

/** Deadlines and cancellation, seen from both ends of a real socket. */
const test = suite('deadlines and cancellation');
let protocol: Protocol;

test.before(async () => {
  protocol = await loadEcho();
});

/** A server whose `echo` handler waits for its signal to abort and reports the abort reason. */
async function abortWatchingServer(): Promise<{
  started: Started;
  entered: Array<{ id: number; ctx: CallContext }>;
  aborted: Array<Promise<RpcError>>;
}> {
  const entered: Array<{ id: number; ctx: CallContext }> = [];
  const aborted: Array<Promise<RpcError>> = [];
  const started = await startServer({
    protocol,
    handlers: {
      echo: (req: { item: Item }, ctx) => {
        if (req.item.id < 0) return req.item; // a plain call, answered at once
        entered.push({ id: req.item.id, ctx });
        const signal = ctx.signal;
        const seen = new Promise<RpcError>((resolve) =>
          signal.addEventListener('abort', () => resolve(signal.reason as RpcError), { once: true }),
        );
        aborted.push(seen);
        return seen.then(() => req.item);
      },
    },
  });
  return { started, entered, aborted };
}

test('a call past its deadline rejects DEADLINE_EXCEEDED and the handler signal aborts', async () => {
  const { started, entered, aborted } = await abortWatchingServer();
  const client = createClient({ protocol, endpoints: [started.endpoint] });
  try {
    await client.call('echo', { item: item(-1) }); // connected, so the deadline is spent on the call itself
    const err = await rejection(client.call('echo', { item: item(1) }, { timeoutMs: 50 }));
    assert.is(err.code, Code.DEADLINE_EXCEEDED);
    assert.is(err.isRemote, false);
    assert.is(entered.length, 1, 'the request reached the handler');
    assert.ok(Number.isFinite(entered[0]!.ctx.deadline), 'the handler saw a deadline');
    // The client's CANCEL or the server's own deadline timer, whichever comes first, aborts the handler.
    const reason = await aborted[0]!;
    assert.instance(reason, RpcError);
    assert.ok(reason.code === Code.DEADLINE_EXCEEDED || reason.code === Code.CANCELLED, `reason ${reason.codeName}`);
    // The connection stays usable.
    assert.is((await client.call<Item>('echo', { item: item(-1) })).id, -1);
  } finally {
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('the server aborts ctx.signal with DEADLINE_EXCEEDED on its own when no CANCEL comes, and frees the id', async () => {
  const { started, entered, aborted } = await abortWatchingServer();
  const raw = await RawClient.connect(started.port);
  try {
    // A peer that sends a deadline and then never cancels: only the server's own timer can abort.
    raw.write(requestFrame(protocol, 1, 'echo', { item: item(1) }, { timeoutMs: 30 }));
    await until(() => aborted.length === 1, 'the request to reach the handler');
    const reason = await aborted[0]!;
    assert.is(reason.code, Code.DEADLINE_EXCEEDED);
    assert.ok(entered[0]!.ctx.signal.aborted);
    // After the deadline the id is free again: reusing it is legal and answered.
    raw.write(requestFrame(protocol, 1, 'echo', { item: item(-1) }));
    const f = await raw.frame();
    assert.equal([f.type, f.id], [FrameType.RESPONSE, 1], 'the reused id is answered, not a protocol error');
  } finally {
    await raw.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('aborting the AbortSignal sends CANCEL: the handler sees CANCELLED, the call rejects CANCELLED', async () => {
  const { started, entered, aborted } = await abortWatchingServer();
  const client = createClient({ protocol, endpoints: [started.endpoint] });
  try {
    await client.call('echo', { item: item(-1) }); // connected
    const controller = new AbortController();
    const call = client.call('echo', { item: item(7) }, { signal: controller.signal });
    await until(() => entered.length === 1, 'the request to reach the handler');
    controller.abort();
    const err = await rejection(call);
    assert.is(err.code, Code.CANCELLED);
    // Only a CANCEL frame can tell the server: the socket is still open and no deadline was set.
    const reason = await aborted[0]!;
    assert.is(reason.code, Code.CANCELLED);
    assert.match(reason.message, /cancelled by the client/, 'a CANCEL frame, not a closed connection');
    assert.is(entered[0]!.ctx.deadline, Infinity);
    assert.is(started.server.connections, 1);
    assert.is((await client.call<Item>('echo', { item: item(-1) })).id, -1, 'the socket still works');
  } finally {
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('an already-aborted signal rejects CANCELLED without sending anything', async () => {
  const seen: number[] = [];
  const started = await startServer({
    protocol,
    handlers: {
      echo: (req: { item: Item }) => {
        seen.push(req.item.id);
        return req.item;
      },
    },
  });
  const client = createClient({ protocol, endpoints: [started.endpoint] });
  try {
    const err = await rejection(client.call('echo', { item: item(1) }, { signal: AbortSignal.abort() }));
    assert.is(err.code, Code.CANCELLED);
    assert.is(started.server.connections, 0, 'not even a connection was opened');
    await client.call('echo', { item: item(2) });
    assert.equal(seen, [2], 'the server only ever saw the second call');
  } finally {
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('timeoutMs 0 rejects DEADLINE_EXCEEDED without sending', async () => {
  const seen: number[] = [];
  const started = await startServer({
    protocol,
    handlers: {
      echo: (req: { item: Item }) => {
        seen.push(req.item.id);
        return req.item;
      },
    },
  });
  const client = createClient({ protocol, endpoints: [started.endpoint] });
  try {
    await client.call('echo', { item: item(1) });
    const err = await rejection(client.call('echo', { item: item(2) }, { timeoutMs: 0 }));
    assert.is(err.code, Code.DEADLINE_EXCEEDED);
    await client.call('echo', { item: item(3) });
    assert.equal(seen, [1, 3]);
  } finally {
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('cancelling a call still waiting for its connection rejects CANCELLED and never reaches the server', async () => {
  const seen: number[] = [];
  const gate = deferred();
  const started = await startServer({
    protocol,
    handlers: {
      echo: (req: { item: Item }) => {
        seen.push(req.item.id);
        return req.item;
      },
    },
    // Hold the handshake, so that calls queue on the client.
    authenticate: async () => {
      await gate.promise;
      return 'anyone';
    },
  });
  const client = createClient({ protocol, endpoints: [started.endpoint] });
  try {
    const controller = new AbortController();
    const doomed = client.call('echo', { item: item(1) }, { signal: controller.signal });
    const kept = client.call<Item>('echo', { item: item(2) });
    controller.abort();
    const err = await rejection(doomed);
    assert.is(err.code, Code.CANCELLED);
    gate.resolve();
    assert.is((await kept).id, 2);
    assert.equal(seen, [2]);
  } finally {
    gate.resolve();
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('an abort after the answer arrived changes nothing', async () => {
  const started = await startServer({ protocol, handlers: { echo: (req: { item: Item }) => req.item } });
  const client = createClient({ protocol, endpoints: [started.endpoint] });
  try {
    const controller = new AbortController();
    const r = await client.call<Item>('echo', { item: item(5) }, { signal: controller.signal, timeoutMs: 5000 });
    controller.abort();
    assert.is(r.id, 5);
    assert.is((await client.call<Item>('echo', { item: item(6) })).id, 6);
  } finally {
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('timeoutMs Infinity means no deadline, and one longer than a timer or the wire field can hold works', async () => {
  // Node fires a timer of 2^31 ms or more after 1 ms, and the wire field is a u32: the handler's short
  // wait would have outlived such a deadline, or the request would not have encoded.
  const seen: Array<{ id: number; deadline: number; aborted: boolean }> = [];
  const started = await startServer({
    protocol,
    handlers: {
      echo: async (req: { item: Item }, ctx) => {
        const signal = ctx.signal; // arms the server's deadline timer, if any
        await sleep(30);
        seen.push({ id: req.item.id, deadline: ctx.deadline - Date.now(), aborted: signal.aborted });
        return req.item;
      },
    },
  });
  const client = createClient({ protocol, endpoints: [started.endpoint] });
  const byDefault = createClient({ protocol, endpoints: [started.endpoint], timeoutMs: Infinity });
  try {
    assert.is((await client.call<Item>('echo', { item: item(1) }, { timeoutMs: Infinity })).id, 1);
    assert.is((await client.call<Item>('echo', { item: item(2) }, { timeoutMs: 3e9 })).id, 2);
    assert.is((await client.call<Item>('echo', { item: item(3) }, { timeoutMs: 5e9 })).id, 3);
    assert.is((await byDefault.call<Item>('echo', { item: item(4) })).id, 4);
    assert.equal(
      seen.map((s) => [s.id, s.aborted]),
      [
        [1, false],
        [2, false],
        [3, false],
        [4, false],
      ],
    );
    assert.is(seen[0]!.deadline, Infinity, 'Infinity sends no deadline');
    assert.ok(seen[1]!.deadline > 2e9 && seen[1]!.deadline <= 3e9, `3e9 ms arrives as a deadline (${seen[1]!.deadline} ms left)`);
    assert.is(seen[2]!.deadline, Infinity, 'beyond the u32 field: sent as no deadline');
    assert.is(seen[3]!.deadline, Infinity);
  } finally {
    await client.close();
    await byDefault.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('a call sent once a slow handshake is done carries the time it has left, not its whole timeout', async () => {
  // The client reads the clock once as a call is made and reuses that reading when the call goes out
  // at once; a call that waits for its connection must read it again when it is sent.
  const left: number[] = [];
  const started = await startServer({
    protocol,
    handlers: {
      echo: (req: { item: Item }, ctx) => {
        left.push(ctx.deadline - Date.now());
        return req.item;
      },
    },
  });
  const HOLD_MS = 500;
  // A loopback proxy that holds the client's first bytes (its HELLO) for HOLD_MS.
  const proxy = await rawServer((socket) => {
    const upstream = connect(started.port, '127.0.0.1');
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.pipe(socket);
    socket.pause();
    setTimeout(() => socket.pipe(upstream), HOLD_MS);
  });
  const client = createClient({ protocol, endpoints: [proxy.endpoint] });
  try {
    const timeoutMs = 5000;
    assert.is((await client.call<Item>('echo', { item: item(1) }, { timeoutMs })).id, 1);
    assert.ok(left[0]! <= timeoutMs - HOLD_MS / 2, `sent after the handshake with ${left[0]} ms left of ${timeoutMs}`);
    assert.ok(left[0]! > 0, 'still within its deadline');
  } finally {
    await client.close();
    await proxy.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('a timer option beyond 2^31-1 ms is refused INVALID_ARGUMENT naming its path', async () => {
  const tooLong = 2 ** 31;
  const refused = (make: () => unknown): RpcError => {
    try {
      make();
    } catch (err) {
      assert.instance(err, RpcError);
      return err as RpcError;
    }
    throw new Error('expected INVALID_ARGUMENT');
  };
  const endpoints = ['127.0.0.1:1'];
  for (const option of ['connectTimeoutMs', 'keepaliveMs', 'keepaliveTimeoutMs', 'waitForReadyMs']) {
    const err = refused(() => createClient({ protocol, endpoints, [option]: tooLong }));
    assert.is(err.code, Code.INVALID_ARGUMENT);
    assert.match(err.message, `options.${option} `);
  }
  for (const option of ['handshakeTimeoutMs', 'idleTimeoutMs', 'keepaliveMs']) {
    const err = refused(() => createServer({ protocol, handlers: {}, [option]: tooLong }));
    assert.is(err.code, Code.INVALID_ARGUMENT);
    assert.match(err.message, `options.${option} `);
  }
  const started = await startServer({ protocol, handlers: {} });
  const err = refused(() => started.server.close({ graceMs: tooLong }));
  assert.is(err.code, Code.INVALID_ARGUMENT);
  assert.match(err.message, 'options.graceMs ');
  await started.server.close({ graceMs: 2 ** 31 - 1 });
});

test.run();
