import { connect } from 'node:net';
import { deflateRawSync } from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createServer, loadProtocol, type Protocol } from '../../src/index.js';
import { repoPath } from '../helpers/repo.js';
import { SocketReader } from '../helpers/socket-reader.js';
import { extensionVectors, sameWelcomeButLimits, namedVectors } from '../helpers/spec-vectors.js';
import { startPair } from '../helpers/large.js';

/** Per-message deflate: negotiation, round trips, and a decompression bomb. */
const test = suite('compression');
const MiB = 1024 * 1024;

/** Compressible bytes: text-like repetition with some variety. */
function text(size: number): Buffer {
  const words = Buffer.from('the quick brown fox jumps over the lazy dog 0123456789 avrpc ');
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = words[(i + (i >> 12)) % words.length]!;
  return b;
}

test('both sides compress: a 4 MB compressible echo crosses the wire in far fewer bytes, both ways', async () => {
  const pair = await startPair({ compressAboveBytes: 1024 }, { compressAboveBytes: 1024 });
  try {
    const data = text(4 * MiB);
    const out = (await pair.client.call('echo', { data })) as Buffer;
    assert.ok(out.equals(data));
    assert.ok(pair.serverCounters.bytesIn < MiB, `request took ${pair.serverCounters.bytesIn} bytes`);
    assert.ok(pair.clientCounters.bytesIn < MiB, `response took ${pair.clientCounters.bytesIn} bytes`);
    // Below the threshold nothing changes, and small calls still work alongside.
    assert.is(await pair.client.call('ping', { s: 'small' }), 'small');
  } finally {
    await pair.close();
  }
});

test('compressed and fragmented together, with 1 MiB frame limits and incompressible data', async () => {
  const pair = await startPair({ compressAboveBytes: 1, maxFrameBytes: MiB }, { compressAboveBytes: 1, maxFrameBytes: MiB });
  try {
    const data = Buffer.alloc(6 * MiB);
    for (let i = 0; i < data.length; i++) data[i] = ((i * 7919) % 251) ^ (i >> 10);
    const out = (await pair.client.call('echo', { data })) as Buffer;
    assert.ok(out.equals(data));
  } finally {
    await pair.close();
  }
});

for (const [who, serverOn, clientOn] of [
  ['server', false, true],
  ['client', true, false],
] as const) {
  test(`negotiation: compression off on the ${who} means plain bytes both ways, and calls work`, async () => {
    const pair = await startPair({ compressAboveBytes: serverOn ? 1024 : 0 }, { compressAboveBytes: clientOn ? 1024 : 0 });
    try {
      const data = text(2 * MiB);
      const out = (await pair.client.call('echo', { data })) as Buffer;
      assert.ok(out.equals(data));
      assert.ok(pair.serverCounters.bytesIn > 2 * MiB, 'request sent uncompressed');
      assert.ok(pair.clientCounters.bytesIn > 2 * MiB, 'response sent uncompressed');
    } finally {
      await pair.close();
    }
  });
}

/** A raw client that completed the extensions handshake (SPEC vectors) with a real echo server. */
async function rawSession(protocol: Protocol, maxMessageBytes: number) {
  const x = extensionVectors();
  const server = createServer({
    protocol,
    handlers: { echo: (req: { item: unknown }) => req.item },
    compressAboveBytes: 1024,
    maxMessageBytes,
    maxPartialMessages: 16,
    fragmentWindowBytes: 256 * 1024, // as in the vectors
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const socket = connect({ host: '127.0.0.1', port });
  const reader = new SocketReader(socket);
  socket.write(x.hello);
  // This server's maxMessageBytes is not the vector's default: only its avrpc.limits value differs.
  assert.ok(sameWelcomeButLimits(await reader.frame(), x.welcome), 'the extension WELCOME vector');
  return {
    socket,
    reader,
    async close() {
      socket.destroy();
      await server.close({ graceMs: 100 });
    },
  };
}

function header(len: number, type: number, flags: number, id: number): Buffer {
  const h = Buffer.alloc(10);
  h.writeUInt32BE(len, 0);
  h[4] = type;
  h[5] = flags;
  h.writeUInt32BE(id, 6);
  return h;
}

test('a decompression bomb is refused with RESOURCE_EXHAUSTED and the connection keeps serving', async () => {
  const protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
  const s = await rawSession(protocol, MiB);
  try {
    // 64 MiB of zeros after the message index deflate to ~64 KB; the server allows 1 MiB.
    const bomb = deflateRawSync(Buffer.alloc(64 * MiB));
    assert.ok(bomb.length < 128 * 1024);
    s.socket.write(Buffer.concat([header(bomb.length, 0x03, 0x40, 9), bomb]));
    const answer = await s.reader.frame();
    assert.is(answer[4], 0x05, 'an ERROR frame');
    assert.is(answer.readUInt32BE(6), 9);
    assert.is(answer[10], Code.RESOURCE_EXHAUSTED);
    // Same socket, a normal call.
    s.socket.write(namedVectors().request1);
    assert.is((await s.reader.frame()).toString('hex'), namedVectors().response1.toString('hex'));
  } finally {
    await s.close();
  }
});

test('compressed bytes that do not inflate answer INVALID_ARGUMENT', async () => {
  const protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
  const s = await rawSession(protocol, MiB);
  try {
    const junk = Buffer.from('ff00ff00deadbeef', 'hex');
    s.socket.write(Buffer.concat([header(junk.length, 0x03, 0x40, 3), junk]));
    const answer = await s.reader.frame();
    assert.is(answer[4], 0x05);
    assert.is(answer[10], Code.INVALID_ARGUMENT);
  } finally {
    await s.close();
  }
});

test('a COMPRESSED flag on a connection that did not negotiate it is a protocol error', async () => {
  const protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
  const server = createServer({ protocol, handlers: { echo: (req: { item: unknown }) => req.item }, compressAboveBytes: 1024 });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const socket = connect({ host: '127.0.0.1', port });
  const reader = new SocketReader(socket);
  try {
    const v = namedVectors();
    socket.write(v.hello);
    assert.is((await reader.frame()).toString('hex'), v.welcome.toString('hex'));
    socket.write(extensionVectors().compressedRequest);
    const goaway = await reader.frame();
    assert.is(goaway[4], 0x09, 'GOAWAY');
    assert.is(goaway[10 + 4], Code.INTERNAL);
  } finally {
    socket.destroy();
    await server.close({ graceMs: 100 });
  }
});

test.run();
