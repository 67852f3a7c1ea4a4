import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, checkHealth, createClient, createServer, createStaticRegistry, type Registry } from '../../src/index.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameType } from '../../src/framing/frame.js';
import { helloType, readHandshake, welcomeType, writeHandshake, type Hello, type Welcome } from '../../src/framing/handshake.js';
import { exitStatusFor } from '../../src/cli/options.js';
import { makeTestCerts } from '../helpers/certs.js';
import { avrpc } from '../helpers/cli.js';
import { deferred, item, loadEcho, rawServer, rejection, startServer } from '../helpers/echo-fixture.js';

/** The avrpc health check (SPEC.md section 14): the server's answer by readiness, checkHealth, `avrpc health`. */
const test = suite('health');

const echo = await loadEcho();
const handlers = { echo: ({ item: i }: { item: unknown }) => i, fail: () => 'x', notify: () => undefined };

test('a listening server is SERVING; a service name other than its protocol is SERVICE_UNKNOWN', async () => {
  const { server, endpoint } = await startServer({ protocol: echo, handlers });
  try {
    assert.is(server.readiness, 'serving');
    assert.equal(await checkHealth(endpoint), { status: 'SERVING', supported: true });
    assert.equal(await checkHealth(endpoint, { service: echo.name }), { status: 'SERVING', supported: true });
    assert.equal(await checkHealth(endpoint, { service: 'org.example.Other' }), { status: 'SERVICE_UNKNOWN', supported: true });
    // Health checks leave the server's own clients alone.
    const client = createClient({ protocol: echo, endpoints: [endpoint] });
    assert.is(((await client.call('echo', { item: item(1) })) as { name: string }).name, 'item-1');
    await client.close();
  } finally {
    await server.close();
  }
});

test('answered before authentication: a probe needs no token, a call still does', async () => {
  const refuseAll = (): never => {
    throw new Error('no');
  };
  const { server, endpoint } = await startServer({ protocol: echo, handlers, authenticate: refuseAll });
  try {
    assert.equal(await checkHealth(endpoint), { status: 'SERVING', supported: true });
    const client = createClient({ protocol: echo, endpoints: [endpoint] });
    const err = await rejection(client.call('echo', { item: item(2) }));
    assert.is(err.code, Code.UNAUTHENTICATED);
    await client.close();
  } finally {
    await server.close();
  }
});

test('over TLS: the probe verifies the server as any client does', async () => {
  const certs = await makeTestCerts();
  const { server, endpoint } = await startServer({ protocol: echo, handlers, tls: { cert: certs.serverCert, key: certs.serverKey } });
  try {
    assert.equal(await checkHealth(endpoint, { tls: { ca: certs.ca } }), { status: 'SERVING', supported: true });
    const err = await rejection(checkHealth(endpoint, { tls: { ca: certs.otherCa }, timeoutMs: 2000 }));
    assert.is(err.code, Code.UNAVAILABLE);
  } finally {
    await server.close();
  }
});

test('NOT_SERVING while listen has not finished (registering), SERVING once it has', async () => {
  const inner = createStaticRegistry();
  const gate = deferred();
  const registry: Registry = {
    register: async (input) => {
      await gate.promise;
      return inner.register(input);
    },
    resolve: (n, o) => inner.resolve(n, o),
    watch: (n, o) => inner.watch(n, o),
    close: () => inner.close(),
  };
  const server = createServer({ protocol: echo, handlers });
  assert.is(server.readiness, 'starting');
  // A fixed port is needed to probe before listen resolves: take a free one, then listen on it.
  const probe = await startServer({ protocol: echo, handlers });
  const port = probe.port;
  await probe.server.close();
  const listening = server.listen({ port, register: { registry, name: 'echo', version: '1.0.0' } });
  try {
    const endpoint = `127.0.0.1:${port}`;
    // The port is bound before the registry answers: a probe connects (once bound) and hears NOT_SERVING.
    const early = await firstAnswer(endpoint);
    assert.equal(early, { status: 'NOT_SERVING', supported: true });
    assert.is(server.readiness, 'starting');
    gate.resolve();
    await listening;
    assert.is(server.readiness, 'serving');
    assert.equal(await checkHealth(endpoint), { status: 'SERVING', supported: true });
  } finally {
    gate.resolve();
    await listening;
    await server.close();
    await inner.close();
  }
});

test('a listen that failed (port taken) leaves the server starting; a second listen makes it serving', async () => {
  const taken = await startServer({ protocol: echo, handlers });
  const server = createServer({ protocol: echo, handlers });
  try {
    const err = await rejection(server.listen({ port: taken.port }));
    assert.ok(err instanceof Error);
    assert.is(server.readiness, 'starting');
    const { port } = await server.listen({ port: 0 });
    assert.is(server.readiness, 'serving');
    assert.equal(await checkHealth(`127.0.0.1:${port}`), { status: 'SERVING', supported: true });
  } finally {
    await server.close();
    await taken.server.close();
  }
});

test('draining: readiness says so, and a new probe is refused (the port stops accepting)', async () => {
  const release = deferred();
  const started = deferred();
  const slow = {
    ...handlers,
    echo: async ({ item: i }: { item: unknown }) => {
      started.resolve();
      await release.promise;
      return i;
    },
  };
  const { server, endpoint } = await startServer({ protocol: echo, handlers: slow });
  const client = createClient({ protocol: echo, endpoints: [endpoint] });
  const running = client.call('echo', { item: item(3) });
  await started.promise;
  const closed = server.close({ graceMs: 10_000 });
  try {
    assert.is(server.readiness, 'draining');
    const err = await rejection(checkHealth(endpoint, { timeoutMs: 2000 }));
    assert.is(err.code, Code.UNAVAILABLE);
  } finally {
    release.resolve();
    assert.is(((await running) as { name: string }).name, 'item-3');
    await closed;
    await client.close();
  }
  assert.is(server.readiness, 'closed');
});

test('a server that predates health (a WELCOME without avrpc.health): SERVING, supported false', async () => {
  const old = await rawServer((socket) => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20, expectPreface: true }, (type, _flags, _id, body) => {
      if (type !== FrameType.HELLO) return;
      const hello = readHandshake<Hello>(helloType, body);
      // As an older server does: unknown meta keys ignored, the client's protocol asked for.
      const welcome: Welcome = { status: 'NEED_PROTOCOL', fingerprint: echo.fingerprint, protocol: echo.text, meta: {} };
      assert.ok(hello.meta['avrpc.health'] !== undefined);
      const enc = new FrameEncoder();
      enc.frame(FrameType.WELCOME, 0, 0, welcome, writeHandshake(welcomeType));
      for (const b of enc.take()) socket.write(b);
    });
    socket.on('data', (c: Buffer) => decoder.push(c));
  });
  try {
    assert.equal(await checkHealth(old.endpoint), { status: 'SERVING', supported: false });
  } finally {
    await old.close();
  }
});

test('no answer within timeoutMs: DEADLINE_EXCEEDED; nobody listening: UNAVAILABLE; bad options: INVALID_ARGUMENT', async () => {
  const silent = await rawServer(() => undefined);
  try {
    const err = await rejection(checkHealth(silent.endpoint, { timeoutMs: 50 }));
    assert.is(err.code, Code.DEADLINE_EXCEEDED);
  } finally {
    await silent.close();
  }
  const err = await rejection(checkHealth(silent.endpoint, { timeoutMs: 2000 }));
  assert.is(err.code, Code.UNAVAILABLE);
  assert.is((await rejection(checkHealth(silent.endpoint, { timeoutMs: -1 }))).code, Code.INVALID_ARGUMENT);
  const bad = await rejection(checkHealth(silent.endpoint, { nope: 1 } as never));
  assert.is(bad.code, Code.INVALID_ARGUMENT);
});

test('avrpc health: SERVING exit 0, SERVICE_UNKNOWN exit 1, nobody there UNAVAILABLE', async () => {
  const { server, endpoint } = await startServer({ protocol: echo, handlers });
  try {
    const ok = await avrpc('health', endpoint);
    assert.is(ok.status, 0, ok.stderr);
    assert.is(ok.stdout, 'SERVING\n');
    const other = await avrpc('health', endpoint, '--service', 'org.example.Other');
    assert.is(other.status, 1, other.stderr);
    assert.is(other.stdout, 'SERVICE_UNKNOWN\n');
  } finally {
    await server.close();
  }
  const gone = await avrpc('health', endpoint, '--timeout', '2000');
  assert.is(gone.status, exitStatusFor(Code.UNAVAILABLE));
  assert.match(gone.stderr, /^UNAVAILABLE: /);
});

/** The first answer a probe gets from `endpoint`, retrying while the port is not yet bound (a hang guard of 10 s). */
async function firstAnswer(endpoint: string): Promise<Awaited<ReturnType<typeof checkHealth>>> {
  const started = Date.now();
  for (;;) {
    try {
      return await checkHealth(endpoint, { timeoutMs: 2000 });
    } catch (err) {
      if (Date.now() - started > 10_000) throw err;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

test.run();
