import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, type CallContext, type Handler, type Protocol, type Server, type ServerOptions } from '../../src/index.js';
import { FrameEncoder } from '../../src/framing/frame-encoder.js';
import { FrameType, PREFACE } from '../../src/framing/frame.js';
import { helloType, readHandshake, welcomeType, writeHandshake, type Welcome } from '../../src/framing/handshake.js';
import { requestFrame } from '../helpers/raw-client.js';
import { frameCode, frameMessage, requestBytes, until } from '../helpers/raw-peer.js';
import { securityFixture } from '../helpers/security-fixture.js';

/** Issue 5, hostile input found by review and fuzzing: each test is named after what it found. */
const test = suite('security: hostile peers');
let protocol: Protocol;
const fixture = securityFixture(test, (p) => {
  protocol = p;
});
const { peer } = fixture;
const item = { id: 11, name: 'hostile', tags: [], score: 0, blob: Buffer.alloc(0) };

function serve(
  handlers: Record<string, Handler> = { echo: (req: { item: unknown }) => req.item },
  options: Partial<ServerOptions> = {},
): Promise<{ server: Server; port: number }> {
  return fixture.serve({ handlers, ...options });
}

test('a HELLO loop (unknown fingerprint, no protocol text) is cut off after two HELLOs', async () => {
  // Each such HELLO (35 bytes) used to earn a WELCOME with the whole protocol text (about 1 KB), forever.
  const { port } = await serve();
  const p = await peer(port);
  const enc = new FrameEncoder();
  enc.bytes(PREFACE);
  for (let i = 0; i < 50; i++) {
    enc.frame(
      FrameType.HELLO,
      0,
      0,
      { fingerprint: randomBytes(16), protocol: null, knownServerFingerprint: null, meta: {} },
      writeHandshake(helloType),
    );
  }
  p.socket.write(Buffer.concat(enc.take()));
  const frames = await p.rest();
  assert.equal(
    frames.map((f) => f.type),
    [FrameType.WELCOME, FrameType.WELCOME, FrameType.GOAWAY],
  );
  assert.is(readHandshake<Welcome>(welcomeType, frames[0]!.body).status, 'NEED_PROTOCOL');
  assert.is(frameCode(frames[2]!), Code.INTERNAL);
  assert.match(frameMessage(frames[2]!), 'more than two HELLOs');
});

test('a request deadline beyond 2^31 ms (u32 max, 49 days) does not abort the handler at once', async () => {
  // setTimeout turns delays above 2^31-1 ms into 1 ms: the signal used to abort immediately.
  let abortedAfterAWhile: boolean | undefined;
  const { port } = await serve({
    echo: async (req: { item: unknown }, ctx: CallContext) => {
      const signal = ctx.signal;
      await new Promise((r) => setTimeout(r, 50));
      abortedAfterAWhile = signal.aborted;
      return req.item;
    },
  });
  const p = await peer(port);
  await p.handshake(protocol);
  p.socket.write(requestBytes(protocol, 1, 'echo', { item }, undefined, 0xffffffff));
  const answer = await p.frame();
  assert.is(answer.type, FrameType.RESPONSE);
  assert.is(abortedAfterAWhile, false);
});

test('a request id still running, sent again, is a protocol error; the running handler is cancelled', async () => {
  let signal: AbortSignal | undefined;
  const { server, port } = await serve({
    echo: (_req: unknown, ctx: CallContext) => {
      signal = ctx.signal;
      return new Promise(() => {});
    },
  });
  const p = await peer(port);
  await p.handshake(protocol);
  p.socket.write(requestBytes(protocol, 7, 'echo', { item }));
  await until(() => signal !== undefined, 'handler started');
  p.socket.write(requestBytes(protocol, 7, 'echo', { item }));
  const frames = await p.rest();
  assert.equal(
    frames.map((f) => f.type),
    [FrameType.GOAWAY],
  );
  assert.match(frameMessage(frames[0]!), 'request id 7 already in use');
  await until(() => server.connections === 0, 'connection forgotten');
  assert.is(signal!.aborted, true);
});

test("a one-way call's id is free once its REQUEST is read, while its handler still runs; it still counts and is aborted on close", async () => {
  // The server used to keep the id of a running one-way call, which the client cannot see: reusing it was a protocol error.
  const signals: AbortSignal[] = [];
  const { server, port } = await serve(
    {
      echo: (req: { item: unknown }) => req.item,
      notify: (_req: unknown, ctx: CallContext) => {
        signals.push(ctx.signal);
        return new Promise(() => {});
      },
    },
    { maxConcurrentCalls: 3 },
  );
  const p = await peer(port);
  await p.handshake(protocol);
  p.socket.write(requestFrame(protocol, 5, 'notify', { item }, { oneWay: true }));
  await until(() => signals.length === 1, 'first one-way handler started');
  p.socket.write(
    Buffer.concat([requestBytes(protocol, 5, 'echo', { item }), requestFrame(protocol, 5, 'notify', { item }, { oneWay: true })]),
  );
  const reused = await p.frame();
  assert.equal([reused.type, reused.id], [FrameType.RESPONSE, 5]);
  await until(() => signals.length === 2, 'second one-way handler started on the same id');
  p.socket.write(requestFrame(protocol, 5, 'notify', { item }, { oneWay: true }));
  await until(() => signals.length === 3, 'third one-way handler started');
  // Three one-way calls run: they still count against maxConcurrentCalls.
  p.socket.write(requestBytes(protocol, 6, 'echo', { item }));
  const refused = await p.frame();
  assert.equal([refused.type, refused.id, frameCode(refused)], [FrameType.ERROR, 6, Code.RESOURCE_EXHAUSTED]);
  assert.equal(
    signals.map((s) => s.aborted),
    [false, false, false],
  );
  p.destroy();
  await until(() => server.connections === 0, 'connection forgotten');
  assert.equal(
    signals.map((s) => s.aborted),
    [true, true, true],
  );
});

test('frames a client may not send (RESPONSE, WELCOME, an unknown type) are protocol errors', async () => {
  const { port } = await serve();
  for (const type of [FrameType.RESPONSE, FrameType.WELCOME, FrameType.ERROR, 0x0a, 0xff]) {
    const p = await peer(port);
    await p.handshake(protocol);
    const enc = new FrameEncoder();
    enc.raw(type, 0, 1, Buffer.from([0]));
    p.socket.write(Buffer.concat(enc.take()));
    const frames = await p.rest();
    assert.equal(
      frames.map((f) => f.type),
      [FrameType.GOAWAY],
      `type ${type}`,
    );
    assert.is(frameCode(frames[0]!), Code.INTERNAL);
  }
});

test('CANCELs for unknown ids and PINGs are harmless; the connection keeps working', async () => {
  const { port } = await serve();
  const p = await peer(port);
  await p.handshake(protocol);
  const enc = new FrameEncoder();
  for (let id = 1; id <= 100; id++) enc.raw(FrameType.CANCEL, 0, id, null);
  enc.raw(FrameType.PING, 0, 42, null);
  p.socket.write(Buffer.concat([...enc.take(), requestBytes(protocol, 1, 'echo', { item })]));
  const pong = await p.frame();
  assert.equal([pong.type, pong.id], [FrameType.PONG, 42]);
  const answer = await p.frame();
  assert.equal([answer.type, answer.id], [FrameType.RESPONSE, 1]);
});

test.run();
