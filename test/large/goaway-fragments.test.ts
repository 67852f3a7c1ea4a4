import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, type ConnectionView, type RpcError, type Server } from '../../src/index.js';
import { readErrorHead, readGoaway } from '../../src/framing/bodies.js';
import { FRAGMENTS_META_KEY } from '../../src/framing/extensions.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { rawFrame } from '../helpers/raw-client.js';
import { RawPeer, requestBytes, type RawFrame } from '../helpers/raw-peer.js';
import { largeProtocol, pattern } from '../helpers/large.js';

/**
 * A server that drains (close, idle, client GOAWAY) while requests are still arriving in fragments
 * (SPEC.md section 6): requests partly received when GOAWAY goes out are accepted (`lastId` covers
 * them) and run once whole; ones begun after it are answered UNAVAILABLE; the connection stays open
 * until none is left. Before, the server closed as soon as no call ran, dropping them, and since small
 * calls had overtaken them (GOAWAY's lastId above their ids) the client could not retry them.
 */
const test = suite('GOAWAY while requests arrive in fragments');

/** `upload` counting runs, `ping` answering at once. */
function uploadServer(options: { fragmentWindowBytes?: number; maxPartialMessages?: number } = {}): { server: Server; uploads: number[] } {
  const uploads: number[] = [];
  const server = createServer({
    protocol: largeProtocol,
    fragmentBytes: 1024,
    ...options,
    handlers: {
      upload: (req: { data: Buffer }) => {
        uploads.push(req.data.length);
        return req.data.length;
      },
      ping: (req: { s: string }) => req.s,
      echo: (req: { data: Buffer }) => req.data,
      download: () => Buffer.alloc(0),
      drop: () => undefined,
    },
  });
  return { server, uploads };
}

/** The REQUEST of `upload` as fragments: the first frame (MORE, total) and one CONTINUATION per further part. */
function uploadFragments(id: number, size: number, parts: number): Buffer[] {
  const whole = requestBytes(largeProtocol, id, 'upload', { data: pattern(size, id) });
  const flags = whole[5]!;
  const m = whole.subarray(10);
  const step = Math.ceil(m.length / parts);
  const frames: Buffer[] = [];
  for (let at = 0; at < m.length; at += step) {
    const part = m.subarray(at, Math.min(at + step, m.length));
    const last = at + step >= m.length;
    if (at === 0) {
      const total = Buffer.alloc(4);
      total.writeUInt32BE(m.length);
      frames.push(rawFrame(FrameType.REQUEST, flags | Flag.MORE, id, Buffer.concat([total, part])));
    } else {
      frames.push(rawFrame(FrameType.CONTINUATION, last ? 0 : Flag.MORE, id, part));
    }
  }
  return frames;
}

/** A call's value, or its error's code and message (a rejection is never left unhandled while the test awaits others). */
/** Handshakes offering fragments (P = 4, W = 1 MiB); returns the server's answer. */
function offerFragments(peer: RawPeer): Promise<RawFrame> {
  const fragments = Buffer.alloc(8);
  fragments.writeUInt32BE(4, 0);
  fragments.writeUInt32BE(1 << 20, 4);
  return peer.handshake(largeProtocol, { [FRAGMENTS_META_KEY]: fragments });
}

function settle(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (value) => value,
    (err: unknown) => ({ code: (err as RpcError).code, message: (err as Error).message }),
  );
}

/** The next frame that is not a WINDOW (the server acknowledges fragment bytes as it reads them). */
async function next(peer: RawPeer): Promise<RawFrame> {
  for (;;) {
    const f = await peer.frame();
    if (f.type !== FrameType.WINDOW) return f;
  }
}

test('raw wire: a request partly received at GOAWAY is covered by lastId, runs, and is answered before the close', async () => {
  const { server, uploads } = uploadServer();
  const { port } = await server.listen();
  const peer = await RawPeer.connect(port);
  try {
    assert.is((await offerFragments(peer)).type, FrameType.WELCOME);
    // Id 3 starts uploading; id 2, sent after it, overtakes it and completes.
    const big = uploadFragments(3, 5000, 2);
    peer.socket.write(big[0]!);
    peer.socket.write(requestBytes(largeProtocol, 2, 'ping', { s: 'hi' }));
    const pong = await next(peer);
    assert.equal([pong.type, pong.id], [FrameType.RESPONSE, 2]);
    const closed = server.close({ graceMs: 10_000 });
    const goaway = await next(peer);
    assert.is(goaway.type, FrameType.GOAWAY);
    assert.is(readGoaway(goaway.body).lastId, 3, 'lastId covers the partly received request');
    // A request begun after GOAWAY keeps the connection open too, and gets UNAVAILABLE (it did not run).
    const late = uploadFragments(5, 3000, 2);
    peer.socket.write(late[0]!);
    peer.socket.write(big[1]!);
    const answer = await next(peer);
    assert.equal([answer.type, answer.id], [FrameType.RESPONSE, 3]);
    assert.equal(uploads, [5000]);
    peer.socket.write(late[1]!);
    const refused = await next(peer);
    assert.equal([refused.type, refused.id], [FrameType.ERROR, 5]);
    assert.is(readErrorHead(refused.flags, refused.body).code, Code.UNAVAILABLE);
    assert.equal(
      (await peer.rest()).filter((f) => f.type !== FrameType.WINDOW),
      [],
      'then the server closes',
    );
    await closed;
    assert.equal(uploads, [5000]);
  } finally {
    peer.destroy();
    await server.close();
  }
});

test('client: a fragmented upload overtaken by small calls finishes and succeeds during server.close()', async () => {
  // A 1 KiB window: the upload advances one fragment per round trip, so it is still arriving at close.
  const { server, uploads } = uploadServer({ fragmentWindowBytes: 1024 });
  const { port } = await server.listen();
  const client = createClient({ protocol: largeProtocol, endpoints: [`127.0.0.1:${port}`], fragmentBytes: 1024, maxAttempts: 1 });
  try {
    await client.call('ping', { s: 'connect' });
    const data = pattern(1_500_000, 9);
    const big = settle(client.call('upload', { data }));
    // Written after the upload's first fragment: once answered, that fragment has reached the server.
    await client.call('ping', { s: 'a' });
    await client.call('ping', { s: 'b' });
    assert.equal(uploads, [], 'precondition: the upload is still arriving');
    await server.close({ graceMs: 20_000 });
    assert.is(await big, data.length);
    assert.equal(uploads, [data.length], 'ran once');
  } finally {
    await client.close();
    await server.close();
  }
});

test('client: a non-idempotent upload not yet begun at GOAWAY is retried on another server and runs once', async () => {
  // P = 1: the client opens one fragmented message at a time, so the second upload waits unopened.
  const first = uploadServer({ fragmentWindowBytes: 1024, maxPartialMessages: 1 });
  const second = uploadServer();
  const a = await first.server.listen();
  const b = await second.server.listen();
  const firstKey = `127.0.0.1:${a.port}`;
  const client = createClient({
    protocol: largeProtocol,
    endpoints: [firstKey, `127.0.0.1:${b.port}`],
    fragmentBytes: 1024,
    maxAttempts: 3,
    // Everything on the first server while it is usable.
    balancer: (c: readonly ConnectionView[]) => c.find((v) => v.endpointKey === firstKey) ?? c[0]!,
  });
  try {
    await client.call('ping', { s: 'connect' });
    const x = pattern(1_000_000, 1);
    const y = pattern(1_000_001, 2);
    const open = settle(client.call('upload', { data: x }));
    const waiting = settle(client.call('upload', { data: y }));
    await client.call('ping', { s: 'a' });
    await client.call('ping', { s: 'b' });
    assert.equal(first.uploads, [], 'precondition: the first upload is still arriving');
    await first.server.close({ graceMs: 20_000 });
    assert.is(await open, x.length);
    assert.is(await waiting, y.length);
    assert.equal(first.uploads, [x.length]);
    assert.equal(second.uploads, [y.length]);
  } finally {
    await client.close();
    await first.server.close();
    await second.server.close();
  }
});

test('an upload progressing slowly across idle periods is not dropped', async () => {
  const uploads: number[] = [];
  const server = createServer({
    protocol: largeProtocol,
    idleTimeoutMs: 30,
    handlers: {
      upload: (req: { data: Buffer }) => {
        uploads.push(req.data.length);
        return req.data.length;
      },
      ping: (req: { s: string }) => req.s,
      echo: (req: { data: Buffer }) => req.data,
      download: () => Buffer.alloc(0),
      drop: () => undefined,
    },
  });
  const { port } = await server.listen();
  const peer = await RawPeer.connect(port);
  try {
    assert.is((await offerFragments(peer)).type, FrameType.WELCOME);
    // No whole request for many idle periods, only fragments: the connection is not idle (and were it
    // drained, the upload would be accepted and still answered).
    for (const f of uploadFragments(1, 4000, 20)) {
      peer.socket.write(f);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    let answer = await next(peer);
    if (answer.type === FrameType.GOAWAY) answer = await next(peer);
    assert.equal([answer.type, answer.id], [FrameType.RESPONSE, 1]);
    assert.equal(uploads, [4000]);
  } finally {
    peer.destroy();
    await server.close();
  }
});

test.run();
