import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, createServer, loadProtocol, type Protocol } from '../src/index.js';
import { FrameType } from '../src/framing/frame.js';
import { readHandshake, welcomeType, writeHandshake, type Welcome } from '../src/framing/handshake.js';
import { FrameEncoder } from '../src/framing/frame-encoder.js';
import { LIMITS_META_KEY, decodeLimits, encodeLimits } from '../src/framing/limits.js';
import { STREAMS_META_KEY } from '../src/framing/extensions.js';
import { resolveServerOptions } from '../src/server/server-options.js';
import { repoPath } from './helpers/repo.js';
import { SocketReader } from './helpers/socket-reader.js';
import { limitsVectors, namedVectors, refusalVectors, vectorItem } from './helpers/spec-vectors.js';

/** SPEC.md section 10: a hand-written peer speaking only the documented bytes talks to real avrpc. */
const test = suite('spec test vectors');
const v = namedVectors();
let protocol: Protocol;

test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});

test('the shipped echo protocol has the fingerprint SPEC.md states', () => {
  assert.is(protocol.id, v.hello.subarray(16, 32).toString('hex'));
  assert.is(protocol.text.length, 950);
});

test('protocol/echo.avpr is the reference protocol text: its MD5 is the fingerprint of the vectors', () => {
  const text = readFileSync(repoPath('protocol/echo.avpr'));
  assert.is(text.length, 950);
  assert.is(createHash('md5').update(text).digest('hex'), v.hello.subarray(16, 32).toString('hex'));
  assert.is(text.toString('utf8'), protocol.text);
});

test('a raw client sending the SPEC bytes gets exactly the SPEC bytes back from a real server', async () => {
  const server = createServer({
    protocol,
    handlers: {
      echo: (req: { item: unknown }) => req.item,
      fail: (req: { reason: string }) => {
        throw new RpcError(Code.UNKNOWN, req.reason, { details: { reason: req.reason } });
      },
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const socket = connect({ host: '127.0.0.1', port });
  const reader = new SocketReader(socket);
  try {
    socket.write(v.hello);
    assert.equal((await reader.frame()).toString('hex'), v.welcome.toString('hex'));
    socket.write(v.request1);
    assert.equal((await reader.frame()).toString('hex'), v.response1.toString('hex'));
    socket.write(v.request2);
    const second = await reader.frame();
    assert.is(second.readUInt32BE(6), 2, 'response to request 2 carries id 2');
    assert.equal(second.subarray(10).toString('hex'), v.response1.subarray(10).toString('hex'));
    socket.write(v.request3);
    assert.equal((await reader.frame()).toString('hex'), v.error3.toString('hex'));
  } finally {
    socket.destroy();
    await server.close({ graceMs: 100 });
  }
});

test('the ERROR message is the server\'s choice: a handler throwing the plain declared value sends \'EchoError: {"reason":"no"}\'', async () => {
  const server = createServer({
    protocol,
    handlers: {
      echo: (req: { item: unknown }) => req.item,
      fail: (req: { reason: string }) => {
        throw { reason: req.reason };
      },
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const socket = connect({ host: '127.0.0.1', port });
  const reader = new SocketReader(socket);
  try {
    socket.write(v.hello);
    await reader.frame();
    socket.write(v.request3);
    const answer = await reader.frame();
    // The SPEC vector with its message "no" (04 6e 6f) replaced by the other choice; the rest is the same.
    const message = Buffer.from('EchoError: {"reason":"no"}');
    const expected = Buffer.concat([Buffer.from([0x02, message.length * 2]), message, v.error3.subarray(10 + 1 + 3)]);
    assert.is(answer.subarray(10).toString('hex'), expected.toString('hex'));
    assert.equal([answer[4], answer[5], answer.readUInt32BE(6)], [v.error3[4], v.error3[5], 3]);
  } finally {
    socket.destroy();
    await server.close({ graceMs: 100 });
  }
});

test('the WELCOME vector is the plain WELCOME plus avrpc.streams and avrpc.limits, encoding the server defaults', () => {
  const { welcome } = limitsVectors();
  const w = readHandshake<Welcome>(welcomeType, welcome.subarray(10));
  assert.is(w.status, 'OK');
  assert.equal(Object.keys(w.meta), [STREAMS_META_KEY, LIMITS_META_KEY]);
  assert.is(w.meta[STREAMS_META_KEY]!.toString('hex'), '00000040', 'S = the default maxBufferedElements, 64');
  const o = resolveServerOptions({ protocol, handlers: {} });
  const defaults = {
    maxFrameBytes: o.maxFrameBytes,
    maxMessageBytes: o.maxMessageBytes,
    maxMetadataBytes: o.maxMetadataBytes,
    maxConcurrentCalls: o.maxConcurrentCalls,
  };
  assert.equal(decodeLimits(w.meta[LIMITS_META_KEY]), defaults);
  const enc = new FrameEncoder();
  const plain: Welcome = { status: 'OK', fingerprint: protocol.fingerprint, protocol: null, meta: {} };
  enc.frame(FrameType.WELCOME, 0, 0, plain, writeHandshake(welcomeType));
  // The plain form SPEC gives in its text, for a server that advertises nothing.
  assert.is(Buffer.concat(enc.take()).toString('hex'), '00000013020000000000' + '00' + '2afda572341fa906084110279f02dcfe' + '0000');
  const limits = { [LIMITS_META_KEY]: encodeLimits(defaults) };
  // The form SPEC gives for a HELLO that offers no streams.
  enc.frame(FrameType.WELCOME, 0, 0, { ...plain, meta: limits }, writeHandshake(welcomeType));
  assert.is(
    Buffer.concat(enc.take()).toString('hex'),
    '00000032020000000000' +
      '00' +
      '2afda572341fa906084110279f02dcfe' +
      '00' +
      '02' +
      '1861767270632e6c696d697473' +
      '20' +
      '01000000010000000000200000004000' +
      '00',
  );
  const streams = { [STREAMS_META_KEY]: Buffer.from([0, 0, 0, 64]) };
  enc.frame(FrameType.WELCOME, 0, 0, { ...plain, meta: { ...streams, ...limits } }, writeHandshake(welcomeType));
  assert.is(Buffer.concat(enc.take()).toString('hex'), welcome.toString('hex'));
});

test('a client ignores WELCOME meta keys it does not know (section 9): a WELCOME with one more entry works as the vector', async () => {
  const w = readHandshake<Welcome>(welcomeType, limitsVectors().welcome.subarray(10));
  const enc = new FrameEncoder();
  enc.frame(
    FrameType.WELCOME,
    0,
    0,
    { ...w, meta: { ...w.meta, 'x-example.future': Buffer.from([1, 2, 3]) } },
    writeHandshake(welcomeType),
  );
  const welcome = Buffer.concat(enc.take());
  let peer: Socket | undefined;
  const raw = createNetServer((socket) => {
    peer = socket;
    const reader = new SocketReader(socket);
    void (async () => {
      await reader.read(v.hello.length);
      socket.write(welcome);
      await reader.frame();
      socket.write(v.response1);
    })().catch(() => socket.destroy());
  });
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  const { port } = raw.address() as AddressInfo;
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], fragmentBytes: 0 });
  try {
    assert.equal({ ...(await client.call('echo', { item: vectorItem })) }, vectorItem);
  } finally {
    await client.close();
    peer?.destroy();
    raw.close();
    await once(raw, 'close');
  }
});

test('a server shutting down sends the SPEC GOAWAY, then refuses a later request with the SPEC REFUSED ERROR', async () => {
  const r = refusalVectors();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let started!: () => void;
  const running = new Promise<void>((resolve) => {
    started = resolve;
  });
  const server = createServer({
    protocol,
    handlers: {
      echo: async (req: { item: unknown }) => {
        started();
        await gate;
        return req.item;
      },
      fail: () => null,
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const socket = connect({ host: '127.0.0.1', port });
  const reader = new SocketReader(socket);
  let closed: Promise<void> | undefined;
  try {
    socket.write(v.hello);
    await reader.frame();
    socket.write(v.request1);
    await running;
    closed = server.close({ graceMs: 5000 });
    assert.equal((await reader.frame()).toString('hex'), r.goaway.toString('hex'));
    socket.write(v.request2);
    assert.equal((await reader.frame()).toString('hex'), r.refused.toString('hex'));
    release();
    assert.equal((await reader.frame()).toString('hex'), v.response1.toString('hex'), 'the running call still completes');
  } finally {
    release();
    socket.destroy();
    await (closed ?? server.close({ graceMs: 100 }));
  }
});

test('a real client sends exactly the SPEC bytes and decodes the SPEC answers', async () => {
  const seen: Buffer[] = [];
  let peer: Socket | undefined;
  const raw = createNetServer((socket) => {
    peer = socket;
    const reader = new SocketReader(socket);
    void (async () => {
      seen.push(await reader.read(v.hello.length));
      socket.write(v.welcome);
      seen.push(await reader.frame());
      socket.write(v.response1);
      seen.push(await reader.frame());
      socket.write(Buffer.concat([v.response1.subarray(0, 6), Buffer.from([0, 0, 0, 2]), v.response1.subarray(10)]));
      seen.push(await reader.frame());
      socket.write(v.error3);
    })().catch(() => socket.destroy());
  });
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  const { port } = raw.address() as AddressInfo;
  // Fragments off, so its HELLO offers no extension of section 12; it offers streams (section 13).
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], fragmentBytes: 0 });
  try {
    const r1 = await client.call('echo', { item: vectorItem });
    assert.equal({ ...r1 }, vectorItem);
    const r2 = await client.call('echo', { item: vectorItem }, { timeoutMs: 1000, metadata: { k: 'v' } });
    assert.equal({ ...r2 }, vectorItem);
    const err = await client.call('fail', { reason: 'no' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, Code.UNKNOWN);
    assert.is((err as RpcError).message, 'no');
    assert.equal({ ...((err as RpcError).details as object) }, { reason: 'no' });
    assert.equal(
      seen.map((b) => b.toString('hex')),
      [v.hello, v.request1, v.request2, v.request3].map((b) => b.toString('hex')),
    );
  } finally {
    await client.close();
    peer?.destroy();
    raw.close();
    await once(raw, 'close');
  }
});

test.run();
