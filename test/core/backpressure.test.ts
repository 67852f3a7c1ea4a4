import type { Socket } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, type Protocol } from '../../src/index.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { item, loadEcho, rejection, startServer, until, type Item } from '../helpers/echo-fixture.js';
import { fakeServer } from '../helpers/fake-server.js';
import { RawClient, rawFrame, requestFrame } from '../helpers/raw-client.js';
import { readGoaway } from '../../src/framing/bodies.js';

/**
 * Outgoing data under backpressure and write batching. Asserts byte and write counts, never time:
 * the client hands the socket no more than the kernel can hold while the server does not read,
 * keeps the rest until 'drain', loses nothing, and sends a tick's calls in one write.
 */
const test = suite('backpressure and batching');
let protocol: Protocol;

test.before(async () => {
  protocol = await loadEcho();
});

const MiB = 1024 * 1024;
const BLOB = 64 * 1024;

/** A fake echo server that stops reading after the handshake until `resume()`; echoes each REQUEST. */
async function pausedEchoServer() {
  let socket: Socket | undefined;
  let requests = 0;
  const fake = await fakeServer({
    onReady: (s) => {
      socket = s;
      s.pause();
    },
    onFrame: (s, type, _flags, id, body) => {
      if (type !== FrameType.REQUEST) return;
      requests++;
      // An echo request record is { item }, encoded exactly as the Item response: drop the u16 index.
      const head = Buffer.alloc(10);
      head.writeUInt32BE(body.length - 2, 0);
      head[4] = FrameType.RESPONSE;
      head.writeUInt32BE(id, 6);
      s.write(Buffer.concat([head, body.subarray(2)]));
    },
  });
  return { fake, requests: () => requests, resume: () => socket?.resume(), ready: () => socket !== undefined };
}

test('a server that stops reading: the client stops writing to the socket, queues, and delivers everything after drain', async () => {
  const server = await pausedEchoServer();
  let written = 0;
  const client = createClient({
    protocol,
    endpoints: [server.fake.endpoint],
    maxQueuedBytes: 256 * MiB,
    observer: {
      bytesSent: (n) => {
        written += n;
      },
    },
  });
  try {
    const blob = Buffer.alloc(BLOB, 7);
    const calls: Array<Promise<Item>> = [];
    // One call per event-loop turn, so every call is its own flush: a client that ignored write()'s
    // return value would hand all of it to the socket.
    const N = 480; // 30 MiB
    for (let i = 0; i < N; i++) {
      calls.push(client.call<Item>('echo', { item: { ...item(i), blob } }));
      await new Promise((r) => setImmediate(r));
    }
    const issued = N * BLOB;
    assert.ok(written < issued / 2, `${written} of ${issued} bytes went to the socket while the server did not read`);
    assert.is(server.requests(), 0);
    server.resume();
    const results = await Promise.all(calls);
    results.forEach((r, i) => {
      assert.is(r.id, i);
      assert.is(r.blob.length, BLOB);
    });
    assert.is(server.requests(), N);
    assert.ok(written >= issued, 'everything was written in the end');
  } finally {
    await client.close();
    await server.fake.close();
  }
});

test('a request Buffer sent by reference is written before its call settles, even when aborted while the server does not read', async () => {
  const server = await pausedEchoServer();
  let written = 0;
  const client = createClient({
    protocol,
    endpoints: [server.fake.endpoint],
    observer: {
      bytesSent: (n) => {
        written += n;
      },
    },
  });
  try {
    const blob = Buffer.alloc(8 * MiB, 5); // spliced into the write, not copied (framing/splices.ts)
    const controller = new AbortController();
    let settled = false;
    const call = client.call<Item>('echo', { item: { ...item(1), blob } }, { signal: controller.signal }).finally(() => {
      settled = true;
    });
    const failure = rejection(call);
    await until(() => written >= blob.length, 'the REQUEST was handed to the socket');
    controller.abort();
    await new Promise((r) => setTimeout(r, 200));
    assert.not.ok(settled, "the socket still holds the caller's Buffer: the call must not settle yet");
    server.resume();
    assert.is((await failure).code, Code.CANCELLED);
  } finally {
    await client.close();
    await server.fake.close();
  }
});

test('a server that never reads: past maxQueuedBytes the connection is dropped and its calls fail RESOURCE_EXHAUSTED', async () => {
  const server = await pausedEchoServer();
  let written = 0;
  const maxQueuedBytes = MiB;
  const client = createClient({
    protocol,
    endpoints: [server.fake.endpoint],
    maxQueuedBytes,
    observer: {
      bytesSent: (n) => {
        written += n;
      },
    },
  });
  try {
    const blob = Buffer.alloc(BLOB, 1);
    const outcomes: Array<Promise<unknown>> = [];
    let failed = false;
    for (let i = 0; i < 2000 && !failed; i++) {
      outcomes.push(
        client.call('echo', { item: { ...item(i), blob } }).then(
          () => 'resolved',
          (e: unknown) => {
            failed = true;
            return e;
          },
        ),
      );
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(failed, 'the client gave up on the connection');
    const issuedBytes = outcomes.length * BLOB;
    // What was issued is what the socket took plus what was queued, and the queue stayed within its bound.
    assert.ok(issuedBytes <= written + maxQueuedBytes + 2 * (BLOB + 100), `${issuedBytes} issued, ${written} written`);
    const results = await Promise.all(outcomes);
    for (const r of results) {
      assert.ok(r !== 'resolved', 'no call was answered');
      assert.is((r as { code?: number }).code, Code.RESOURCE_EXHAUSTED, String(r));
    }
    assert.is(server.requests(), 0);
  } finally {
    await client.close();
    await server.fake.close();
  }
});

test('calls issued in one tick leave in one socket write, and the server answers them in as few', async () => {
  let clientWrites = 0;
  let serverWrites = 0;
  let serverReads = 0;
  const started = await startServer({
    protocol,
    handlers: { echo: (req: { item: Item }) => req.item },
    observer: {
      bytesSent: () => {
        serverWrites++;
      },
      bytesReceived: () => {
        serverReads++;
      },
    },
  });
  const client = createClient({
    protocol,
    endpoints: [started.endpoint],
    observer: {
      bytesSent: () => {
        clientWrites++;
      },
    },
  });
  try {
    await client.call('echo', { item: item(-1) });
    const before = { clientWrites, serverWrites, serverReads };
    const N = 1000;
    const calls = Array.from({ length: N }, (_, i) => client.call<Item>('echo', { item: item(i) }));
    const results = await Promise.all(calls);
    results.forEach((r, i) => assert.is(r.id, i));
    const c = clientWrites - before.clientWrites;
    const sw = serverWrites - before.serverWrites;
    const sr = serverReads - before.serverReads;
    // One batch; a second write only when the batch outgrew the current encoder arena.
    assert.ok(c >= 1 && c <= 2, `${c} client writes for ${N} calls`);
    assert.ok(sw <= 2 * sr && sw <= 20, `${sw} server writes for ${N} answers (${sr} reads)`);
  } finally {
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('a client that does not read its answers: the server stops reading requests, then serves them all', async () => {
  let handled = 0;
  const started = await startServer({
    protocol,
    handlers: {
      echo: (req: { item: Item }) => {
        handled++;
        return req.item;
      },
    },
  });
  const raw = await RawClient.connect(started.port);
  try {
    raw.socket.pause();
    const N = 480; // 30 MiB of requests, and as much in answers
    const blob = Buffer.alloc(BLOB, 3);
    for (let i = 1; i <= N; i++) raw.write(requestFrame(protocol, i, 'echo', { item: { ...item(i), blob } }));
    // Wait until the server makes no progress for a while: it is blocked on us, not busy.
    let last = -1;
    while (handled !== last) {
      last = handled;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(handled < N / 2, `the server ran ${handled} of ${N} calls for a client that reads nothing`);
    raw.socket.resume();
    const ids = new Set<number>();
    for (let i = 0; i < N; i++) {
      const f = await raw.frame();
      assert.is(f.type, FrameType.RESPONSE);
      ids.add(f.id);
    }
    assert.is(ids.size, N);
    assert.is(handled, N);
  } finally {
    await raw.close();
    await started.server.close({ graceMs: 1000 });
  }
});

/** A fake echo server whose sockets stop reading after the handshake; it records one-way REQUESTs and GOAWAYs. */
async function pausedOneWayServer() {
  const sockets: Socket[] = [];
  const oneWay: number[] = [];
  const goaways: Buffer[] = [];
  const fake = await fakeServer({
    onReady: (s) => {
      sockets.push(s);
      s.pause();
    },
    onFrame: (s, type, flags, id, body) => {
      if (type === FrameType.GOAWAY) goaways.push(Buffer.from(body));
      if (type !== FrameType.REQUEST) return;
      if ((flags & Flag.ONE_WAY) !== 0) return void oneWay.push(id);
      const head = Buffer.alloc(10);
      head.writeUInt32BE(body.length - 2, 0);
      head[4] = FrameType.RESPONSE;
      head.writeUInt32BE(id, 6);
      s.write(Buffer.concat([head, body.subarray(2)]));
    },
  });
  return { fake, sockets, oneWay, goaways };
}

/** A client whose socket is blocked: an 8 MiB request went to a server that does not read. */
async function blockedClient(endpoint: string) {
  let written = 0;
  const client = createClient({
    protocol,
    endpoints: [endpoint],
    maxAttempts: 1,
    maxQueuedBytes: 256 * MiB,
    observer: {
      bytesSent: (n) => {
        written += n;
      },
    },
  });
  const big = client.call<Item>('echo', { item: { ...item(1), blob: Buffer.alloc(8 * MiB, 1) } });
  void big.catch(() => undefined); // a test that fails before awaiting it must not crash on its rejection
  await until(() => written >= 8 * MiB, 'the large request to be handed to the socket');
  return { client, big };
}

/** Lets a few event-loop turns pass (flushes happen on the next tick). */
async function someTurns(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 5));
}

test('a one-way call resolves once its REQUEST is written: not while the socket is blocked, then once it drains', async () => {
  const server = await pausedOneWayServer();
  const { client, big } = await blockedClient(server.fake.endpoint);
  try {
    let resolved = false;
    const note = client.call('notify', { item: item(2) }).then(() => {
      resolved = true;
    });
    await someTurns();
    assert.is(resolved, false, 'not resolved while its REQUEST waits behind a blocked socket');
    server.sockets[0]!.resume();
    await note;
    assert.is((await big).blob.length, 8 * MiB);
    await until(() => server.oneWay.length === 1, 'the one-way REQUEST to arrive');
    assert.is(await client.call('notify', { item: item(3) }), undefined, 'with the socket free, a one-way call resolves');
  } finally {
    await server.fake.close(); // first: a client still blocked on it would wait for its calls
    await client.close();
  }
});

test('a one-way call whose REQUEST was never written rejects UNAVAILABLE when the connection dies', async () => {
  const server = await pausedOneWayServer();
  const { client, big } = await blockedClient(server.fake.endpoint);
  try {
    const note = rejection(client.call('notify', { item: item(2) }));
    void note.catch(() => undefined); // awaited below; the old client resolved it at once
    const lost = rejection(big);
    await someTurns();
    server.sockets[0]!.destroy();
    assert.is((await note).code, Code.UNAVAILABLE);
    assert.is((await lost).code, Code.UNAVAILABLE);
    assert.equal(server.oneWay, []);
  } finally {
    await server.fake.close(); // first: a client still blocked on it would wait for its calls
    await client.close();
  }
});

test('a protocol error while the socket is blocked: the GOAWAY still goes out, after what was queued', async () => {
  const server = await pausedOneWayServer();
  const { client, big } = await blockedClient(server.fake.endpoint);
  try {
    const lost = rejection(big);
    server.sockets[0]!.write(rawFrame(0x7f, 0, 0, null)); // no such frame type
    await someTurns();
    server.sockets[0]!.resume();
    assert.is((await lost).code, Code.INTERNAL);
    await until(() => server.goaways.length === 1, 'the GOAWAY to arrive');
    const goaway = readGoaway(server.goaways[0]!);
    assert.is(goaway.code, Code.INTERNAL);
    assert.match(goaway.message, 'unexpected frame type 127');
  } finally {
    await server.fake.close();
    await client.close();
  }
});

test('an invalid option value is refused with its path', async () => {
  try {
    createClient({ protocol, endpoints: ['127.0.0.1:1'], maxQueuedBytes: 1 });
    assert.unreachable('should throw');
  } catch (err) {
    assert.is((err as { code?: number }).code, Code.INVALID_ARGUMENT);
    assert.match((err as Error).message, /maxQueuedBytes/);
  }
});

test.run();
