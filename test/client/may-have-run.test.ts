/**
 * `RpcError.mayHaveRun` on real loopback sockets: false when no attempt of the call can have run on a
 * server (refused with the REFUSED flag, sent after a graceful GOAWAY's last id, never sent at all),
 * true once a handler may have run it. An application retries a non-idempotent call only on false.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { writeError, writeGoaway } from '../../src/framing/bodies.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import type { RawServer } from '../helpers/echo-fixture.js';
import { item, loadEcho } from '../helpers/echo-fixture.js';
import { fakeServer } from '../helpers/fake-server.js';
import { freePort, poolProtocol, rejection, startServer, until, type TestServer } from '../helpers/pool-fixture.js';
import { rawFrame } from '../helpers/raw-client.js';

const test = suite('may-have-run');
const clients: Client[] = [];
const servers: Array<TestServer | RawServer> = [];
/** Releases handlers a test held, even when it failed before releasing them. */
const releases: Array<() => void> = [];

/** A gate handlers wait at until the test (or the teardown) opens it. */
function gate(): { wait: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const p = new Promise<void>((resolve) => (open = resolve));
  releases.push(open);
  return { wait: () => p, open };
}

test.after.each(async () => {
  for (const open of releases.splice(0)) open();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function client(endpoint: string, options: Partial<Parameters<typeof createClient>[0]> = {}): Client {
  const c = createClient({ protocol: poolProtocol(), endpoints: [endpoint], ...options });
  clients.push(c);
  return c;
}

/** Writes a body with one of the `write*` functions of framing/bodies. */
function body<T>(write: (d: T, buf: Buffer, pos: number) => number, d: T): Buffer {
  const buf = Buffer.alloc(1024);
  return buf.subarray(0, write(d, buf, 0));
}

test('over maxConcurrentCalls: refused RESOURCE_EXHAUSTED, mayHaveRun false', async () => {
  const a = await startServer('A', 0, { maxConcurrentCalls: 1 });
  servers.push(a);
  const held = gate();
  a.hold = held.wait;
  const c = client(a.endpoint);
  const first = c.call('write', { delayMs: 0 });
  await until(() => a.ran.write === 1, 5000, 'first call running');
  const err = await rejection(c.call('write', { delayMs: 0 }));
  assert.is(err.code, Code.RESOURCE_EXHAUSTED, err.message);
  assert.is(err.mayHaveRun, false);
  assert.is(a.ran.write, 1, 'the refused call never reached a handler');
  held.open();
  assert.is(await first, 'A');
});

test('a handler that throws: mayHaveRun true (INTERNAL, and UNAVAILABLE it threw itself)', async () => {
  const a = await startServer('A');
  servers.push(a);
  const c = client(a.endpoint);
  a.failWith = new Error('boom');
  const internal = await rejection(c.call('write', { delayMs: 0 }));
  assert.is(internal.code, Code.INTERNAL);
  assert.is(internal.mayHaveRun, true);
  a.failWith = new RpcError(Code.UNAVAILABLE, 'downstream outage');
  const unavailable = await rejection(c.call('write', { delayMs: 0 }));
  assert.is(unavailable.code, Code.UNAVAILABLE);
  assert.is(unavailable.mayHaveRun, true);
  assert.is(a.ran.write, 2, 'a non-idempotent call that may have run is not retried');
});

test('refused UNAVAILABLE (REFUSED flag) on every attempt: retried, then mayHaveRun false', async () => {
  let requests = 0;
  const refusal = body(writeError, { code: Code.UNAVAILABLE, message: 'draining', metadata: undefined, declared: undefined });
  const fake = await fakeServer({
    answerPings: true,
    onFrame: (socket, type, _flags, id) => {
      if (type !== FrameType.REQUEST) return;
      requests++;
      socket.write(rawFrame(FrameType.ERROR, Flag.REFUSED, id, refusal));
    },
  });
  servers.push(fake);
  const c = createClient({ protocol: await loadEcho(), endpoints: [fake.endpoint], maxAttempts: 3 });
  clients.push(c);
  const err = await rejection(c.call('echo', { item: item(1) }));
  assert.is(err.code, Code.UNAVAILABLE, err.message);
  assert.is(err.mayHaveRun, false);
  assert.is(requests, 3, 'each refusal was retried, up to maxAttempts');
});

test('a call sent after a graceful GOAWAY’s last id: mayHaveRun false', async () => {
  let requests = 0;
  const fake = await fakeServer({
    answerPings: true,
    onFrame: (socket, type, _flags, id) => {
      if (type !== FrameType.REQUEST) return;
      requests++;
      // Shutting down: the server accepted nothing up to this request, and closes.
      socket.end(rawFrame(FrameType.GOAWAY, 0, 0, body(writeGoaway, { lastId: id - 1, code: Code.OK, message: 'shutting down' })));
    },
  });
  servers.push(fake);
  const c = createClient({ protocol: await loadEcho(), endpoints: [fake.endpoint], maxAttempts: 2, backoff: { initialMs: 10 } });
  clients.push(c);
  const err = await rejection(c.call('echo', { item: item(1) }));
  assert.is(err.code, Code.UNAVAILABLE, err.message);
  assert.is(err.mayHaveRun, false, err.message);
  assert.is(requests, 2, 'retried once: it did not run');
});

test('connect refused (no listener on the port): mayHaveRun false', async () => {
  const port = await freePort();
  const c = client(`127.0.0.1:${port}`, { waitForReadyMs: 300, backoff: { initialMs: 50 } });
  const err = await rejection(c.call('write', { delayMs: 0 }));
  assert.is(err.code, Code.UNAVAILABLE, err.message);
  assert.is(err.mayHaveRun, false);
});

test('deadline while queued for a connection: mayHaveRun false', async () => {
  const port = await freePort();
  const c = client(`127.0.0.1:${port}`, { waitForReadyMs: 10_000, waitForReady: true, backoff: { initialMs: 50 } });
  const err = await rejection(c.call('write', { delayMs: 0 }, { timeoutMs: 200 }));
  assert.is(err.code, Code.DEADLINE_EXCEEDED, err.message);
  assert.is(err.mayHaveRun, false);
});

test('a deadline after the request went out: mayHaveRun true', async () => {
  const a = await startServer('A');
  servers.push(a);
  const c = client(a.endpoint);
  await c.call('read', { delayMs: 0 });
  const held = gate();
  a.hold = held.wait;
  const err = await rejection(c.call('write', { delayMs: 0 }, { timeoutMs: 100 }));
  held.open();
  assert.is(err.code, Code.DEADLINE_EXCEEDED, err.message);
  assert.is(err.mayHaveRun, true);
});

test.run();
