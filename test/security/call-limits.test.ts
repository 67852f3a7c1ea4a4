import { createHook } from 'node:async_hooks';
import { connect } from 'node:net';
import { deflateRawSync } from 'node:zlib';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createServer, type Protocol } from '../../src/index.js';
import { Flag, FrameType, PREFACE } from '../../src/framing/frame.js';
import { RawPeer, frameCode, frameMessage, requestBytes, until } from '../helpers/raw-peer.js';
import { securityFixture, outcome } from '../helpers/security-fixture.js';

/** Issue 5, limits per call and per frame: maxConcurrentCalls, maxFrameBytes, maxMessageBytes, maxMetadataBytes. */
const test = suite('security: call and frame limits');
let protocol: Protocol;
const { serve, client, peer } = securityFixture(test, (p) => {
  protocol = p;
});
const item = { id: 9, name: 'call-limits', tags: [], score: 0, blob: Buffer.alloc(0) };

test('maxConcurrentCalls: the call beyond the limit gets RESOURCE_EXHAUSTED at once, not a place in a queue', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let started = 0;
  const { port } = await serve({
    maxConcurrentCalls: 2,
    handlers: {
      echo: async (req: { item: unknown }) => {
        started++;
        await gate;
        return req.item;
      },
    },
  });
  const c = client(port);
  const order: string[] = [];
  const calls = [0, 1, 2].map((i) =>
    outcome(c.call('echo', { item })).then((r) => {
      order.push(`${i}:${r}`);
      return r;
    }),
  );
  // The third is answered while the first two are still running (refused by the client itself, which
  // knows the server's advertised maxConcurrentCalls, before the first two even reach their handlers).
  try {
    assert.is(await calls[2], Code.RESOURCE_EXHAUSTED);
    await until(() => started === 2, 'the first two calls running');
    assert.is(started, 2);
  } finally {
    release();
  }
  assert.equal(await Promise.all(calls), ['OK', 'OK', Code.RESOURCE_EXHAUSTED]);
  assert.is(order[0], `2:${Code.RESOURCE_EXHAUSTED}`);
  // Slots freed are usable again.
  assert.is(await outcome(c.call('echo', { item })), 'OK');
});

test('maxFrameBytes: an oversized length prefix gets GOAWAY RESOURCE_EXHAUSTED and a close; other connections are unaffected', async () => {
  const { server, port } = await serve({ maxFrameBytes: 1024 });
  const good = client(port);
  assert.is(await outcome(good.call('echo', { item })), 'OK');
  const bad = await peer(port);
  await bad.handshake(protocol);
  const header = Buffer.alloc(10);
  header.writeUInt32BE(1025, 0);
  header[4] = FrameType.REQUEST;
  header.writeUInt32BE(1, 6);
  bad.socket.write(header);
  const frames = await bad.rest();
  assert.is(frames.length, 1);
  assert.is(frames[0]!.type, FrameType.GOAWAY);
  assert.is(frameCode(frames[0]!), Code.RESOURCE_EXHAUSTED);
  assert.match(frameMessage(frames[0]!), 'exceeds maxFrameBytes (1024)');
  assert.is(await outcome(good.call('echo', { item })), 'OK');
  await until(() => server.connections === 1, 'bad connection forgotten');
});

test('maxFrameBytes: even before the handshake, and a frame of exactly the limit is fine', async () => {
  const { port } = await serve({ maxFrameBytes: 1024 });
  const early = await peer(port);
  const header = Buffer.alloc(10);
  header.writeUInt32BE(0xffffffff, 0);
  header[4] = FrameType.HELLO;
  early.socket.write(Buffer.concat([PREFACE, header]));
  const [f] = await early.rest();
  assert.is(frameCode(f!), Code.RESOURCE_EXHAUSTED);
  // A 1024-byte request body passes the frame check (and then fails to decode, which is per call).
  const ok = await peer(port);
  await ok.handshake(protocol);
  const frame = Buffer.alloc(10 + 1024);
  frame.writeUInt32BE(1024, 0);
  frame[4] = FrameType.REQUEST;
  frame.writeUInt32BE(1, 6);
  ok.socket.write(frame);
  const answer = await ok.frame();
  assert.is(answer.type, FrameType.ERROR);
  assert.is(frameCode(answer), Code.INVALID_ARGUMENT);
});

test('a header claiming a huge body costs memory for the bytes received, not the bytes claimed', async () => {
  // Found while writing the fuzz test: the decoder used to allocate the claimed length up front, so
  // 40 sockets x 10 bytes pinned 40 x 16 MiB.
  let received = 0;
  const { server, port } = await serve({
    observer: {
      bytesReceived: (n: number) => {
        received += n;
      },
    },
  });
  const before = process.memoryUsage().arrayBuffers;
  const sockets = [];
  for (let i = 0; i < 40; i++) {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    const header = Buffer.alloc(10 + 100);
    header.writeUInt32BE(16 * 1024 * 1024, 0);
    header[4] = FrameType.HELLO;
    s.write(Buffer.concat([PREFACE, header]));
    sockets.push(s);
  }
  await until(() => server.connections === 40, 'all connected');
  // Measured once the server has read every byte sent (a settling sleep passed whether it had or not).
  await until(() => received === 40 * (PREFACE.length + 10 + 100), 'the server read every header and partial body');
  const grown = process.memoryUsage().arrayBuffers - before;
  for (const s of sockets) s.destroy();
  await Promise.all(sockets.map((s) => (s.destroyed ? undefined : once(s, 'close'))));
  assert.ok(grown < 64 * 1024 * 1024, `array buffers grew by ${grown} bytes for 40 x 110 bytes received`);
});

test('first fragments claiming maxMessageBytes cost memory for the bytes received, not the totals claimed', async () => {
  // Found while merging the fragments extension: the reassembler allocated each declared total up front,
  // so 10 connections x 4 first fragments of 16 bytes pinned 10 x 4 x 64 MiB. (64 MiB was the default
  // maxMessageBytes then; set explicitly since issue 14 lowered it to 16 MiB.)
  const { port } = await serve({ maxMessageBytes: 64 * 1024 * 1024 });
  const offer = Buffer.alloc(8);
  offer.writeUInt32BE(4, 0); // P: fragmented messages we accept at once
  offer.writeUInt32BE(256 * 1024, 4); // W
  const before = process.memoryUsage().arrayBuffers;
  const raws: RawPeer[] = [];
  for (let c = 0; c < 10; c++) {
    const p = await peer(port);
    raws.push(p);
    assert.is((await p.handshake(protocol, { 'avrpc.fragments': offer })).type, FrameType.WELCOME);
    for (let id = 1; id <= 4; id++) {
      const first = Buffer.alloc(10 + 6);
      first.writeUInt32BE(6, 0);
      first[4] = FrameType.REQUEST;
      first[5] = Flag.MORE;
      first.writeUInt32BE(id, 6);
      first.writeUInt32BE(64 * 1024 * 1024 - 1, 10); // total, just under maxMessageBytes
      p.socket.write(first);
    }
  }
  // A PING answered on each connection means the server has read the fragments sent before it, and
  // WINDOWs acknowledging all 4 x 6 fragment bytes that it took them into reassembly (a WINDOW for a read
  // holding the PING too comes after the PONG).
  for (const p of raws) p.socket.write(Buffer.from([0, 0, 0, 0, FrameType.PING, 0, 0, 0, 0, 9]));
  for (const p of raws) {
    let acknowledged = 0;
    let ponged = false;
    while (!ponged || acknowledged < 4 * 6) {
      const f = await p.frame();
      if (f.type === FrameType.WINDOW) acknowledged += f.body.readUInt32BE(0);
      else if (f.type === FrameType.PONG) ponged = true;
    }
    assert.is(acknowledged, 4 * 6);
  }
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 256 * 1024 * 1024, `array buffers grew by ${grown} bytes for 40 first fragments of 16 bytes`);
});

test('maxMessageBytes: a request payload over the limit is refused for that call only', async () => {
  const { port } = await serve({ maxMessageBytes: 100 });
  const c = client(port);
  const big = { ...item, blob: Buffer.alloc(200) };
  const err = await c.call('echo', { item: big }).then(
    () => undefined,
    (e: unknown) => e as RpcError,
  );
  assert.is(err?.code, Code.RESOURCE_EXHAUSTED);
  assert.match(err?.message ?? '', 'maxMessageBytes (100)');
  assert.is(await outcome(c.call('echo', { item })), 'OK', 'the connection stays usable');
});

test('maxMessageBytes may exceed maxFrameBytes (larger requests come in fragments), and is validated', () => {
  createServer({ protocol, handlers: {}, maxFrameBytes: 1024, maxMessageBytes: 2048 });
  try {
    createServer({ protocol, handlers: {}, maxMessageBytes: -1 });
    assert.unreachable('should throw');
  } catch (err) {
    assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
    assert.match((err as Error).message, 'createServer: options.maxMessageBytes');
  }
});

test('maxMetadataBytes: metadata over the limit is refused with RESOURCE_EXHAUSTED; the handler never runs', async () => {
  let ran = 0;
  const { port } = await serve({
    maxMetadataBytes: 64,
    handlers: {
      echo: (req: { item: unknown }) => {
        ran++;
        return req.item;
      },
    },
  });
  const c = client(port);
  const err = await c.call('echo', { item }, { metadata: { big: 'x'.repeat(100) } }).then(
    () => undefined,
    (e: unknown) => e as RpcError,
  );
  assert.is(err?.code, Code.RESOURCE_EXHAUSTED);
  assert.match(err?.message ?? '', 'maxMetadataBytes (64)');
  assert.is(ran, 0);
  assert.is(await outcome(c.call('echo', { item }, { metadata: { small: 'y' } })), 'OK');
  assert.is(ran, 1);
});

/** A REQUEST frame for echo with the METADATA flag whose body is the index then `mapBytes` as they are. */
function requestWithRawMetadata(id: number, mapBytes: Buffer): Buffer {
  const header = Buffer.alloc(10 + 2);
  header.writeUInt32BE(2 + mapBytes.length, 0);
  header[4] = FrameType.REQUEST;
  header[5] = Flag.METADATA;
  header.writeUInt32BE(id, 6);
  header.writeUInt16BE(protocol.message('echo')!.index, 10);
  return Buffer.concat([header, mapBytes]);
}

/** An Avro map<string> block of `n` entries, 4-byte keys and empty values (6 bytes each), without its end. */
function tinyEntries(n: number): Buffer {
  const count = n * 2; // zig-zag
  const head: number[] = [];
  for (let v = count; ; v = Math.floor(v / 128)) {
    if (v < 0x80) {
      head.push(v);
      break;
    }
    head.push((v & 0x7f) | 0x80);
  }
  const entries = Buffer.alloc(n * 6);
  for (let i = 0, p = 0; i < n; i++) {
    entries[p++] = 8; // key length 4
    entries.writeUInt32BE(i, p);
    p += 4;
    entries[p++] = 0; // empty value
  }
  return Buffer.concat([Buffer.from(head), entries]);
}

test('maxMetadataBytes: a map of many tiny entries is refused having read no more than the limit of it', async () => {
  // Found by the security audit: the limit was checked after decoding the whole map (a 15 MiB REQUEST of
  // 768k keys took 1.18 s). The map below is 1.2 MB of valid entries and then simply stops: had the server
  // read past the limit it would have found it truncated (INVALID_ARGUMENT, "cannot decode request").
  let ran = 0;
  const { port } = await serve({
    handlers: {
      echo: (req: { item: unknown }) => {
        ran++;
        return req.item;
      },
    },
  });
  const p = await peer(port);
  await p.handshake(protocol);
  p.socket.write(requestWithRawMetadata(1, tinyEntries(200_000)));
  const refused = await p.frame();
  assert.is(refused.type, FrameType.ERROR);
  assert.is(refused.id, 1);
  assert.is(frameCode(refused), Code.RESOURCE_EXHAUSTED);
  assert.match(frameMessage(refused), 'request metadata exceeds maxMetadataBytes (8192)');
  // A whole map of the same entries is refused the same way; the connection stays usable.
  p.socket.write(requestWithRawMetadata(2, Buffer.concat([tinyEntries(200_000), Buffer.from([0])])));
  assert.is(frameCode(await p.frame()), Code.RESOURCE_EXHAUSTED);
  p.socket.write(requestBytes(protocol, 3, 'echo', { item }, { small: 'y' }));
  assert.is((await p.frame()).type, FrameType.RESPONSE);
  assert.is(ran, 1);
});

test('maxMetadataBytes: a map of exactly the limit is read; one byte more is refused', async () => {
  const { port } = await serve({ maxMetadataBytes: 50 });
  const p = await peer(port);
  await p.handshake(protocol);
  // {k: 'x' * n} takes 1 (count) + 2 (key) + 1 (value length, n < 64) + n + 1 (end) bytes.
  p.socket.write(requestBytes(protocol, 1, 'echo', { item }, { k: 'x'.repeat(50 - 5) }));
  assert.is((await p.frame()).type, FrameType.RESPONSE);
  p.socket.write(requestBytes(protocol, 2, 'echo', { item }, { k: 'x'.repeat(50 - 4) }));
  assert.is(frameCode(await p.frame()), Code.RESOURCE_EXHAUSTED);
});

/** A raw peer that negotiated compression with a server on `port`. */
async function compressingPeer(port: number): Promise<RawPeer> {
  const p = await peer(port);
  const welcome = await p.handshake(protocol, { 'avrpc.compression': Buffer.from('deflate') });
  assert.is(welcome.type, FrameType.WELCOME);
  return p;
}

/** A REQUEST frame with the COMPRESSED flag and `body` as its (supposedly deflated) bytes. */
function compressedRequest(id: number, body: Buffer): Buffer {
  const header = Buffer.alloc(10);
  header.writeUInt32BE(body.length, 0);
  header[4] = FrameType.REQUEST;
  header[5] = Flag.COMPRESSED;
  header.writeUInt32BE(id, 6);
  return Buffer.concat([header, body]);
}

test('compressed requests count as calls until inflated: beyond maxConcurrentCalls they are refused before inflating', async () => {
  // Found by the security audit: every compressed REQUEST started an inflation (up to maxMessageBytes of
  // output each) that no limit counted. Bytes that do not inflate tell the two apart: inflated, they get
  // INVALID_ARGUMENT; refused before inflating, RESOURCE_EXHAUSTED.
  const { port } = await serve({ compressAboveBytes: 1024, maxConcurrentCalls: 2 });
  const p = await compressingPeer(port);
  const junk = Buffer.from('ff00ff00deadbeef', 'hex');
  p.socket.write(Buffer.concat([1, 2, 3].map((id) => compressedRequest(id, junk))));
  const codes = new Map<number, number>();
  for (let i = 0; i < 3; i++) {
    const f = await p.frame();
    codes.set(f.id, frameCode(f));
  }
  assert.equal(
    [1, 2, 3].map((id) => codes.get(id)),
    [Code.INVALID_ARGUMENT, Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED],
  );
  // Slots come back: a good call works.
  p.socket.write(requestBytes(protocol, 4, 'echo', { item }));
  assert.is((await p.frame()).type, FrameType.RESPONSE);
});

test('a burst of decompression bombs is inflated a few at a time, not all at once', async () => {
  // Found by the security audit: 24 bombs read in one burst made 24 inflations grow towards maxMessageBytes
  // together. zlib streams are counted as they are created (async_hooks type ZLIB): when the first refusal
  // comes back, only the first few may have started.
  const { port } = await serve({ compressAboveBytes: 1024, maxMessageBytes: 4 * 1024 * 1024 });
  const p = await compressingPeer(port);
  const bomb = deflateRawSync(Buffer.alloc(16 * 1024 * 1024));
  let started = 0;
  const hook = createHook({
    init: (_id, type) => {
      if (type === 'ZLIB') started++;
    },
  }).enable();
  try {
    p.socket.write(Buffer.concat(Array.from({ length: 24 }, (_, i) => compressedRequest(i + 1, bomb))));
    const first = await p.frame();
    const startedAtFirstAnswer = started;
    assert.is(frameCode(first), Code.RESOURCE_EXHAUSTED);
    for (let i = 1; i < 24; i++) assert.is(frameCode(await p.frame()), Code.RESOURCE_EXHAUSTED);
    assert.is(started, 24, 'every bomb was inflated (and refused) in the end');
    assert.ok(startedAtFirstAnswer <= 12, `${startedAtFirstAnswer} of 24 inflations had started when the first one ended`);
  } finally {
    hook.disable();
  }
});

test.run();
