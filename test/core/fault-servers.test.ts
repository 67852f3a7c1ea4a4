import { connect } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, type Protocol } from '../../src/index.js';
import { FrameType } from '../../src/framing/frame.js';
import { item, loadEcho, rawServer, rejection, startServer, until, type Item } from '../helpers/echo-fixture.js';
import { fakeServer } from '../helpers/fake-server.js';
import { RawClient, requestFrame } from '../helpers/raw-client.js';
import { namedVectors } from '../helpers/spec-vectors.js';

/** Servers that misbehave on purpose: each failure carries a code, and the process stays healthy. */
const test = suite('fault servers');
let protocol: Protocol;

test.before(async () => {
  protocol = await loadEcho();
});

/** A real server and a new client in this same process still work after the fault. */
async function stillHealthy(): Promise<void> {
  const good = await startServer({ protocol, handlers: { echo: (req: { item: Item }) => req.item } });
  const client = createClient({ protocol, endpoints: [good.endpoint] });
  try {
    const r = await client.call<Item>('echo', { item: item(77) });
    assert.is(r.id, 77);
  } finally {
    await client.close();
    await good.server.close({ graceMs: 1000 });
  }
}

test('reset mid-call: UNAVAILABLE', async () => {
  const fake = await fakeServer({
    onFrame: (socket, type) => {
      if (type === FrameType.REQUEST) socket.resetAndDestroy();
    },
  });
  const client = createClient({ protocol, endpoints: [fake.endpoint], waitForReadyMs: 5000 });
  try {
    const err = await rejection(client.call('echo', { item: item(1) }));
    assert.is(err.code, Code.UNAVAILABLE);
  } finally {
    await client.close();
    await fake.close();
  }
  await stillHealthy();
});

test('garbage bytes instead of a handshake: UNAVAILABLE, not an avrpc server', async () => {
  const raw = await rawServer((socket) => {
    socket.resume();
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  const client = createClient({ protocol, endpoints: [raw.endpoint], waitForReadyMs: 1500, backoff: { initialMs: 5000 } });
  try {
    const err = await rejection(client.call('echo', { item: item(1) }));
    assert.is(err.code, Code.UNAVAILABLE, `${err.codeName}: ${err.message}`);
    assert.match(err.message, /not an avrpc v1 server/);
  } finally {
    await client.close();
    await raw.close();
  }
  await stillHealthy();
});

test('garbage frames after the handshake: pending calls fail INTERNAL (protocol error)', async () => {
  const fake = await fakeServer({
    onFrame: (socket, type) => {
      if (type === FrameType.REQUEST) socket.write(Buffer.from('00000003ee0000000001616263', 'hex')); // frame type 0xee
    },
  });
  const client = createClient({ protocol, endpoints: [fake.endpoint], waitForReadyMs: 5000 });
  try {
    const err = await rejection(client.call('echo', { item: item(1) }));
    assert.is(err.code, Code.INTERNAL, `${err.codeName}: ${err.message}`);
    assert.match(err.message, /protocol error/);
  } finally {
    await client.close();
    await fake.close();
  }
  await stillHealthy();
});

test('an oversized length prefix from the server: RESOURCE_EXHAUSTED, checked before allocating', async () => {
  const fake = await fakeServer({
    onFrame: (socket, type) => {
      if (type === FrameType.REQUEST) socket.write(Buffer.from('fffffff00400000000010000', 'hex'));
    },
  });
  const client = createClient({ protocol, endpoints: [fake.endpoint], maxFrameBytes: 1024, waitForReadyMs: 5000 });
  try {
    const before = process.memoryUsage().arrayBuffers;
    const err = await rejection(client.call('echo', { item: item(1) }));
    assert.is(err.code, Code.RESOURCE_EXHAUSTED, `${err.codeName}: ${err.message}`);
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20, 'no 4 GiB buffer was allocated');
  } finally {
    await client.close();
    await fake.close();
  }
  await stillHealthy();
});

test('an oversized length prefix sent to a real server closes that connection only', async () => {
  const started = await startServer({ protocol, handlers: { echo: (req: { item: Item }) => req.item }, maxFrameBytes: 4096 });
  const bystander = createClient({ protocol, endpoints: [started.endpoint] });
  const raw = await RawClient.connect(started.port);
  try {
    await bystander.call('echo', { item: item(1) });
    raw.write(Buffer.from('7fffffff0300000000010000', 'hex'));
    const goaway = await raw.frame();
    assert.is(goaway.type, FrameType.GOAWAY);
    assert.is(goaway.body[4], Code.RESOURCE_EXHAUSTED);
    await new Promise((r) => raw.socket.once('close', r));
    assert.is((await bystander.call<Item>('echo', { item: item(2) })).id, 2, 'the other connection is untouched');
  } finally {
    await raw.close();
    await bystander.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('silence (a server that never answers the handshake): UNAVAILABLE after waitForReadyMs', async () => {
  let accepted = 0;
  const silent = await rawServer(() => {
    accepted++;
  });
  const client = createClient({
    protocol,
    endpoints: [silent.endpoint],
    connectTimeoutMs: 50,
    waitForReadyMs: 1000,
    backoff: { initialMs: 20 },
  });
  try {
    const err = await rejection(client.call('echo', { item: item(1) }));
    assert.is(err.code, Code.UNAVAILABLE, `${err.codeName}: ${err.message}`);
    assert.match(err.message, /timed out/);
    assert.ok(accepted >= 1);
  } finally {
    await client.close();
    await silent.close();
  }
  await stillHealthy();
});

test('silence with a call deadline shorter than the wait: DEADLINE_EXCEEDED', async () => {
  const silent = await rawServer(() => undefined);
  const client = createClient({ protocol, endpoints: [silent.endpoint], connectTimeoutMs: 5000 });
  try {
    const err = await rejection(client.call('echo', { item: item(1) }, { timeoutMs: 50 }));
    assert.is(err.code, Code.DEADLINE_EXCEEDED);
  } finally {
    await client.close();
    await silent.close();
  }
});

test('silence after the handshake: the call deadline still gives DEADLINE_EXCEEDED', async () => {
  const fake = await fakeServer();
  const client = createClient({ protocol, endpoints: [fake.endpoint] });
  try {
    const err = await rejection(client.call('echo', { item: item(1) }, { timeoutMs: 50 }));
    assert.is(err.code, Code.DEADLINE_EXCEEDED);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('a server that accepts and closes at once: UNAVAILABLE', async () => {
  const closer = await rawServer((socket) => socket.end());
  const client = createClient({ protocol, endpoints: [closer.endpoint], waitForReadyMs: 1000, backoff: { initialMs: 20 } });
  try {
    const err = await rejection(client.call('echo', { item: item(1) }));
    assert.is(err.code, Code.UNAVAILABLE);
  } finally {
    await client.close();
    await closer.close();
  }
});

test('nothing listening: UNAVAILABLE', async () => {
  const gone = await rawServer(() => undefined);
  const endpoint = gone.endpoint;
  await gone.close();
  const client = createClient({ protocol, endpoints: [endpoint], waitForReadyMs: 1000, backoff: { initialMs: 20 } });
  try {
    const err = await rejection(client.call('echo', { item: item(1) }));
    assert.is(err.code, Code.UNAVAILABLE);
    assert.match(err.message, /ECONNREFUSED/);
  } finally {
    await client.close();
  }
});

test('a client that connects and never sends the preface is dropped by the handshake timeout', async () => {
  const started = await startServer({ protocol, handlers: { echo: (req: { item: Item }) => req.item }, handshakeTimeoutMs: 50 });
  const socket = connect({ host: '127.0.0.1', port: started.port });
  socket.on('error', () => undefined);
  try {
    await new Promise((r) => socket.once('close', r));
    await until(() => started.server.connections === 0, 'the server to forget the connection');
  } finally {
    socket.destroy();
    await started.server.close({ graceMs: 1000 });
  }
});

/** Sends `bytes` on a raw socket to a fresh echo server; resolves with all it got back once the server closed it. */
async function answerTo(bytes: Buffer): Promise<Buffer> {
  const started = await startServer({ protocol, handlers: { echo: (req: { item: Item }) => req.item } });
  const socket = connect({ host: '127.0.0.1', port: started.port });
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  try {
    socket.write(bytes);
    await new Promise((r) => socket.once('close', r));
    return Buffer.concat(chunks);
  } finally {
    socket.destroy();
    await started.server.close({ graceMs: 1000 });
  }
}

test('a client sending a bad preface gets GOAWAY and is closed', async () => {
  const got = await answerTo(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\n\r\n'), namedVectors().hello]));
  assert.is(got[4], FrameType.GOAWAY);
  assert.is(got[10 + 4], Code.INTERNAL);
});

test('a REQUEST before the handshake is a protocol error', async () => {
  const preface = namedVectors().hello.subarray(0, 6);
  const got = await answerTo(Buffer.concat([preface, requestFrame(protocol, 1, 'echo', { item: item(1) })]));
  assert.is(got[4], FrameType.GOAWAY);
});

test.run();
