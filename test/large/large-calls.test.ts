import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createServer } from '../../src/index.js';
import { largeProtocol, pattern, startPair, until, type Pair } from '../helpers/large.js';

/** Large messages on real sockets: fragments, interleaving, limits mid-stream, cancellation. */
const test = suite('large messages');
const MiB = 1024 * 1024;

async function failure(p: Promise<unknown>): Promise<RpcError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(err, RpcError);
  return err as RpcError;
}

test('multi-MB echo round trip both ways, through peers that accept 1 MiB frames at most', async () => {
  // Neither side accepts an 8 MB frame: the call can only pass in fragments.
  const pair = await startPair({ maxFrameBytes: MiB }, { maxFrameBytes: MiB });
  try {
    const data = pattern(8 * MiB + 3, 1);
    const out = (await pair.client.call('echo', { data })) as Buffer;
    assert.ok(out.equals(data));
    const many = await Promise.all([1, 2, 3].map((i) => pair.client.call('echo', { data: pattern(3 * MiB + i, i) })));
    many.forEach((b, i) => assert.ok((b as Buffer).equals(pattern(3 * MiB + i + 1, i + 1)), `call ${i}`));
    assert.is(pair.serverCounters.connections, 1);
  } finally {
    await pair.close();
  }
});

test('without fragments an 8 MB message exceeds a 1 MiB maxFrameBytes (the control case)', async () => {
  const pair = await startPair({ maxFrameBytes: MiB, fragmentBytes: 0 }, { maxFrameBytes: MiB });
  try {
    const err = await failure(pair.client.call('echo', { data: pattern(8 * MiB) }));
    assert.is(err.code, Code.RESOURCE_EXHAUSTED);
  } finally {
    await pair.close();
  }
});

async function orderOf(pair: Pair, large: () => Promise<unknown>, startSmall: () => Promise<void>): Promise<string[]> {
  const order: string[] = [];
  const big = large().then(() => order.push('large'));
  await startSmall();
  const small = pair.client.call('ping', { s: 'hi' }).then(() => order.push('small'));
  await Promise.all([big, small]);
  return order;
}

test('interleaving: a small call started after a large upload+download completes first, on the same socket', async () => {
  const pair = await startPair();
  try {
    const data = pattern(32 * MiB);
    // Started in the same tick, after the large call.
    assert.equal(
      await orderOf(
        pair,
        () => pair.client.call('echo', { data }),
        async () => {},
      ),
      ['small', 'large'],
    );
    // Started once the server has received part of the large request.
    const before = pair.serverCounters.bytesIn;
    assert.equal(
      await orderOf(
        pair,
        () => pair.client.call('echo', { data }),
        () => until(() => pair.serverCounters.bytesIn > before + MiB),
      ),
      ['small', 'large'],
    );
    assert.is(pair.serverCounters.connections, 1);
  } finally {
    await pair.close();
  }
});

test('interleaving: a small call started while a large response streams in completes first', async () => {
  const pair = await startPair();
  try {
    const before = pair.clientCounters.bytesIn;
    const order = await orderOf(
      pair,
      () => pair.client.call('download', { size: 32 * MiB }),
      () => until(() => pair.clientCounters.bytesIn > before + MiB),
    );
    assert.equal(order, ['small', 'large']);
    assert.is(pair.serverCounters.connections, 1);
  } finally {
    await pair.close();
  }
});

test('with fragments off, the same small call completes after the large one (head-of-line blocking)', async () => {
  const pair = await startPair({ fragmentBytes: 0 }, { fragmentBytes: 0 });
  try {
    assert.equal(
      await orderOf(
        pair,
        () => pair.client.call('echo', { data: pattern(8 * MiB) }),
        async () => {},
      ),
      ['large', 'small'],
    );
  } finally {
    await pair.close();
  }
});

test('a server maxMessageBytes it advertised: the client refuses a larger upload before sending a byte of it', async () => {
  // A client that does not know the limits (SPEC.md section 11.4) is refused by the server at the first
  // fragment, from the total it declares: test/large/reassembly.test.ts and test/security/call-limits.test.ts.
  const pair = await startPair({ maxMessageBytes: MiB });
  try {
    const total = 48 * MiB;
    const err = await failure(pair.client.call('upload', { data: pattern(total) }));
    assert.is(err.code, Code.RESOURCE_EXHAUSTED);
    assert.not.ok(err.isRemote);
    assert.is(err.mayHaveRun, false);
    assert.is(pair.uploads, 0);
    // The same connection still serves calls; everything sent before the refusal arrived first.
    assert.is(await pair.client.call('ping', { s: 'still here' }), 'still here');
    assert.is(await pair.client.call('upload', { data: pattern(MiB - 16) }), MiB - 16);
    assert.ok(pair.serverCounters.bytesIn < total / 2, `server received ${pair.serverCounters.bytesIn} of ${total} bytes`);
    assert.is(pair.serverCounters.connections, 1);
  } finally {
    await pair.close();
  }
});

test('maxMessageBytes on the client: a too-large response fails RESOURCE_EXHAUSTED and the server stops sending it', async () => {
  const pair = await startPair({}, { maxMessageBytes: MiB });
  try {
    const total = 48 * MiB;
    const err = await failure(pair.client.call('download', { size: total }));
    assert.is(err.code, Code.RESOURCE_EXHAUSTED);
    assert.is(await pair.client.call('ping', { s: 'ok' }), 'ok');
    assert.ok(pair.clientCounters.bytesIn < total / 2, `client received ${pair.clientCounters.bytesIn} of ${total} bytes`);
    assert.is(pair.serverCounters.connections, 1);
  } finally {
    await pair.close();
  }
});

test('a cancelled large upload stops sending its fragments', async () => {
  const pair = await startPair();
  try {
    const total = 48 * MiB;
    const abort = new AbortController();
    const call = failure(pair.client.call('upload', { data: pattern(total) }, { signal: abort.signal }));
    await until(() => pair.serverCounters.bytesIn > MiB);
    abort.abort();
    assert.is((await call).code, Code.CANCELLED);
    // Everything the client wrote before its CANCEL arrives before this answer.
    assert.is(await pair.client.call('ping', { s: 'after' }), 'after');
    assert.ok(pair.serverCounters.bytesIn < total / 2, `server received ${pair.serverCounters.bytesIn} of ${total} bytes`);
    assert.is(pair.uploads, 0);
  } finally {
    await pair.close();
  }
});

test('a deadline passing mid-upload stops sending too', async () => {
  const pair = await startPair();
  try {
    const total = 48 * MiB;
    // The hold keeps the client busy long enough for a 1 ms deadline to pass before the upload ends.
    const err = await failure(pair.client.call('upload', { data: pattern(total) }, { timeoutMs: 1 }));
    assert.is(err.code, Code.DEADLINE_EXCEEDED);
    assert.is(await pair.client.call('ping', { s: 'after' }), 'after');
    assert.ok(pair.serverCounters.bytesIn < total / 2, `server received ${pair.serverCounters.bytesIn} of ${total} bytes`);
  } finally {
    await pair.close();
  }
});

test('a server whose call was cancelled stops sending the large response', async () => {
  const pair = await startPair();
  try {
    const total = 48 * MiB;
    const abort = new AbortController();
    const call = failure(pair.client.call('download', { size: total }, { signal: abort.signal }));
    await until(() => pair.clientCounters.bytesIn > MiB);
    abort.abort();
    assert.is((await call).code, Code.CANCELLED);
    assert.is(await pair.client.call('ping', { s: 'after' }), 'after');
    // The server saw the CANCEL before answering the ping; what it sent since is bounded by one turn.
    assert.ok(pair.serverCounters.bytesOut < total / 2, `server sent ${pair.serverCounters.bytesOut} of ${total} bytes`);
  } finally {
    await pair.close();
  }
});

test('a large one-way message resolves once queued, still arrives whole, and closing the client waits for it', async () => {
  const pair = await startPair();
  try {
    await pair.client.call('drop', { data: pattern(12 * MiB) });
    assert.is(await pair.client.call('ping', { s: 'behind' }), 'behind');
    await until(() => pair.dropped.length === 1);
    assert.equal(pair.dropped, [12 * MiB]);
    await pair.client.call('drop', { data: pattern(6 * MiB) });
    await pair.client.close();
    await until(() => pair.dropped.length === 2);
    assert.equal(pair.dropped, [12 * MiB, 6 * MiB]);
  } finally {
    await pair.close();
  }
});

test('fragment options are validated with their path', () => {
  const bad: Array<[() => unknown, string]> = [
    [() => createClient({ protocol: largeProtocol, endpoints: ['127.0.0.1:1'], fragmentBytes: 4 }), 'options.fragmentBytes'],
    [() => createClient({ protocol: largeProtocol, endpoints: ['127.0.0.1:1'], fragmentWindowBytes: 10 }), 'options.fragmentWindowBytes'],
    [() => createServer({ protocol: largeProtocol, handlers: {}, maxPartialMessages: 0 }), 'options.maxPartialMessages'],
    [() => createServer({ protocol: largeProtocol, handlers: {}, compressAboveBytes: -1 }), 'options.compressAboveBytes'],
    [() => createServer({ protocol: largeProtocol, handlers: {}, maxMessageBytes: -1 }), 'options.maxMessageBytes'],
  ];
  for (const [make, path] of bad) {
    let err: unknown;
    try {
      make();
    } catch (e) {
      err = e;
    }
    assert.instance(err, RpcError, path);
    assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
    assert.ok((err as RpcError).message.includes(path), (err as RpcError).message);
  }
});

test('a server shutting down gracefully finishes streaming a large response first', async () => {
  const pair = await startPair();
  try {
    const total = 24 * MiB;
    const download = pair.client.call('download', { size: total });
    await until(() => pair.clientCounters.bytesIn > MiB);
    const closing = pair.server.close({ graceMs: 10_000 });
    const out = (await download) as Buffer;
    assert.is(out.length, total);
    await closing;
  } finally {
    await pair.close();
  }
});

test.run();
