import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, type Protocol, type RpcError } from '../../src/index.js';
import { FrameType } from '../../src/framing/frame.js';
import { item, loadEcho, rejection, until, type Item } from '../helpers/echo-fixture.js';
import { fakeServer } from '../helpers/fake-server.js';

/** A peer that dies or goes silent: every pending call fails UNAVAILABLE, together. */
const test = suite('connection loss');
let protocol: Protocol;

test.before(async () => {
  protocol = await loadEcho();
});

/**
 * Issues `n` calls and returns their outcomes, plus how many had settled by the first macrotask after
 * the first one settled: equal to `n` when every call was failed in one go.
 */
function pendingCalls(calls: Array<Promise<unknown>>): { outcomes: Promise<RpcError[]>; settledTogether: Promise<number> } {
  let settled = 0;
  let together!: (n: number) => void;
  const settledTogether = new Promise<number>((r) => {
    together = r;
  });
  const outcomes = Promise.all(
    calls.map((p) =>
      rejection(
        p.finally(() => {
          if (settled++ === 0) setImmediate(() => together(settled));
        }),
      ),
    ),
  );
  return { outcomes, settledTogether };
}

test('server process killed with SIGKILL: every pending call rejects UNAVAILABLE at once', async () => {
  const N = 200;
  const script = fileURLToPath(new URL('../helpers/echo-server-process.js', import.meta.url));
  const child: ChildProcess = fork(script, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  let held = 0;
  const port = await new Promise<number>((resolve, reject) => {
    child.on('message', (m: { port?: number; held?: number }) => {
      if (m.port !== undefined) resolve(m.port);
      if (m.held !== undefined) held = m.held;
    });
    child.once('exit', (code) => reject(new Error(`server process exited with ${code}`)));
  });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], waitForReadyMs: 1000 });
  try {
    assert.is((await client.call<Item>('echo', { item: item(-1) })).id, -1);
    const calls = Array.from({ length: N }, (_, i) => client.call('echo', { item: item(i) }));
    const { outcomes, settledTogether } = pendingCalls(calls);
    await until(() => held === N, 'every call to reach the server process');
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    const errors = await outcomes;
    assert.equal([...new Set(errors.map((e) => e.codeName))], ['UNAVAILABLE']);
    assert.is(await settledTogether, N, 'all pending calls were failed in the same turn');
    // The dead endpoint is refused quickly afterwards, still with a code.
    const later = await rejection(client.call('echo', { item: item(-1) }));
    assert.is(later.code, Code.UNAVAILABLE);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await client.close();
  }
});

test('server-side socket reset mid-call: every pending call rejects UNAVAILABLE at once', async () => {
  const N = 50;
  let requests = 0;
  const fake = await fakeServer({
    onFrame: (socket, type) => {
      if (type === FrameType.REQUEST && ++requests === N) socket.resetAndDestroy();
    },
  });
  const client = createClient({ protocol, endpoints: [fake.endpoint] });
  try {
    const { outcomes, settledTogether } = pendingCalls(Array.from({ length: N }, (_, i) => client.call('echo', { item: item(i) })));
    const errors = await outcomes;
    assert.is(requests, N);
    assert.equal([...new Set(errors.map((e) => e.codeName))], ['UNAVAILABLE']);
    assert.is(await settledTogether, N);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('keepalive PINGs detect a peer that went silent after the handshake: pending calls reject UNAVAILABLE', async () => {
  let pings = 0;
  let requests = 0;
  const fake = await fakeServer({
    onFrame: (_socket, type) => {
      if (type === FrameType.PING) pings++;
      if (type === FrameType.REQUEST) requests++;
    },
  });
  const client = createClient({
    protocol,
    endpoints: [fake.endpoint],
    keepaliveMs: 30,
    keepaliveTimeoutMs: 60,
  });
  try {
    const { outcomes, settledTogether } = pendingCalls([1, 2, 3].map((i) => client.call('echo', { item: item(i) })));
    const errors = await outcomes;
    assert.is(requests, 3);
    assert.ok(pings >= 1, 'the client sent a PING before giving up');
    assert.equal(
      errors.map((e) => e.code),
      [Code.UNAVAILABLE, Code.UNAVAILABLE, Code.UNAVAILABLE],
    );
    assert.match(errors[0]!.message, /keepalive/);
    assert.is(await settledTogether, 3);
  } finally {
    await client.close();
    await fake.close();
  }
});

test('a peer that answers PINGs is kept alive across many keepalive periods', async () => {
  let pings = 0;
  let held: (() => void) | undefined;
  const fake = await fakeServer({
    answerPings: true,
    onFrame: (socket, type, _flags, id) => {
      if (type === FrameType.REQUEST) {
        // Answer with an ERROR frame (no payload to encode) once the client has pinged three times.
        held = () => {
          const body = Buffer.from([Code.NOT_FOUND, 4, 0x6f, 0x6b]); // code, Avro string "ok"
          const head = Buffer.alloc(10);
          head.writeUInt32BE(body.length, 0);
          head[4] = FrameType.ERROR;
          head.writeUInt32BE(id, 6);
          socket.write(Buffer.concat([head, body]));
        };
      }
      if (type === FrameType.PING && ++pings === 3) held?.();
    },
  });
  const client = createClient({ protocol, endpoints: [fake.endpoint], keepaliveMs: 20, keepaliveTimeoutMs: 2000 });
  try {
    const err = await rejection(client.call('echo', { item: item(1) }));
    assert.is(err.code, Code.NOT_FOUND, 'the answer came, the connection was not declared dead');
    assert.is(err.message, 'ok');
    assert.ok(pings >= 3);
  } finally {
    await client.close();
    await fake.close();
  }
});

test.run();
