/**
 * Issue 14: the client accepted frames for ids it never used (a hostile server pinned 613 MB with
 * fragmented answers to unused ids, and compressed answers to unused ids were inflated). An answer
 * (RESPONSE, ERROR, a fragment, a compressed message) for an id with no call in flight is now a
 * protocol error, refused before any buffer is allocated or byte inflated; an answer for an id the
 * client cancelled may still arrive (it crossed the CANCEL) and is dropped unread, until the PONG of
 * the barrier PING sent after the CANCEL proves nothing more can come for it.
 * A hostile server on a raw loopback socket negotiates fragments and compression (SPEC vectors).
 */
import type { Socket } from 'node:net';
import { deflateRawSync } from 'node:zlib';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveClientOptions } from '../../src/client/client-options.js';
import type { Protocol } from '../../src/codec/protocol.js';
import { ResolverCache } from '../../src/codec/resolver-cache.js';
import { ClientCall, type CallOwner } from '../../src/client/call-table.js';
import { ClientConnection } from '../../src/client/client-connection.js';
import { EndpointHealth } from '../../src/client/endpoint-health.js';
import type { FramedSocket } from '../../src/connection/framed-socket.js';
import { Code } from '../../src/errors/code.js';
import { RpcError } from '../../src/errors/rpc-error.js';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { Flag, FrameType } from '../../src/framing/frame.js';
import { loadEcho, rawServer, until, type RawServer } from '../helpers/echo-fixture.js';
import { extensionVectors, namedVectors, vectorItem } from '../helpers/spec-vectors.js';

const test = suite('security: answers for ids not in flight');
let protocol: Protocol;
const servers: RawServer[] = [];
const conns: ClientConnection[] = [];
/** Body of the SPEC vector RESPONSE to `echo(vectorItem)`. */
const RESPONSE_BODY = namedVectors().response1.subarray(10);
const MiB = 1024 * 1024;

test.before(async () => {
  protocol = await loadEcho();
});

test.after.each(async () => {
  for (const c of conns.splice(0)) c.destroy(new RpcError(Code.CANCELLED, 'test over'));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function frame(type: number, flags: number, id: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(10);
  h.writeUInt32BE(body.length, 0);
  h[4] = type;
  h[5] = flags;
  h.writeUInt32BE(id, 6);
  return Buffer.concat([h, body]);
}

/** Frames of a fragmented RESPONSE for `id` announcing `total` bytes, of which `sent` are sent (never the last). */
function fragments(id: number, total: number, sent: number): Buffer[] {
  const first = Buffer.alloc(4 + 64 * 1024);
  first.writeUInt32BE(total, 0);
  const out = [frame(FrameType.RESPONSE, Flag.MORE, id, first)];
  for (let n = 64 * 1024; n < sent; n += 64 * 1024) out.push(frame(FrameType.CONTINUATION, Flag.MORE, id, Buffer.alloc(64 * 1024)));
  return out;
}

/** A COMPRESSED RESPONSE for `id` that inflates to `bytes` zeros (about bytes / 1000 on the wire). */
function bomb(id: number, bytes: number): Buffer {
  return frame(FrameType.RESPONSE, Flag.COMPRESSED, id, deflateRawSync(Buffer.alloc(bytes)));
}

interface Seen {
  /** GOAWAY codes the client sent. */
  goaways: number[];
}

/** A server that completes the extensions handshake, then hands the client's frames to `script`. */
async function hostile(script: (socket: Socket, type: number, flags: number, id: number) => void): Promise<{ port: number; seen: Seen }> {
  const seen: Seen = { goaways: [] };
  const welcome = extensionVectors().welcome;
  const server = await rawServer((socket) => {
    const decoder = new FrameDecoder({ maxFrameBytes: 64 * MiB, expectPreface: true }, (type, flags, id, body) => {
      if (type === FrameType.HELLO) socket.write(welcome);
      else if (type === FrameType.GOAWAY) seen.goaways.push(body[4]!);
      else script(socket, type, flags, id);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch {
        socket.destroy();
      }
    });
  });
  servers.push(server);
  return { port: server.port, seen };
}

interface Harness {
  conn: ClientConnection;
  framed: FramedSocket;
  /** Most bytes (or messages, for inflations) the connection held for incoming large messages after any read. */
  held(): number;
  /** Starts an `echo` call; settles like a client call. */
  call(): { call: ClientCall; done: Promise<unknown> };
}

/** A client connection (no pool: its large-message state is inspected) offering fragments and compression. */
function connect(port: number): Harness {
  let held = 0;
  // Set once the connection exists; `sample` runs from its frame hook before that.
  // eslint-disable-next-line prefer-const
  let framed: FramedSocket | undefined;
  const sample = (): void => {
    if (framed !== undefined) held = Math.max(held, framed.largeMessageBytes + framed.receiving);
  };
  const o = resolveClientOptions({ protocol, endpoints: [`127.0.0.1:${port}`], compressAboveBytes: 1024, keepaliveMs: 0 });
  const health = new EndpointHealth(`127.0.0.1:${port}`);
  const memory = { serverFingerprint: null, sendProtocol: false };
  // Sampled once each read is processed (the hook runs before the bytes are decoded; the microtask after).
  const observer = { bytesReceived: () => queueMicrotask(sample) };
  const conn = new ClientConnection({ host: '127.0.0.1', port, health, memory }, protocol, new ResolverCache(protocol, 4), {
    ...o,
    observer,
  });
  conns.push(conn);
  framed = (conn as unknown as { framed: FramedSocket }).framed;
  const owner: CallOwner = { attemptFailed: (call, error) => call.reject(error) };
  return {
    conn,
    framed,
    held: () => {
      sample();
      return held;
    },
    call() {
      let call!: ClientCall;
      const done = new Promise<unknown>((resolve, reject) => {
        call = new ClientCall(protocol.message('echo')!, { item: vectorItem }, undefined, -1, resolve, reject, owner);
      });
      conn.start(call);
      return { call, done };
    },
  };
}

async function protocolError(done: Promise<unknown>): Promise<RpcError> {
  const err = await done.then(
    (v) => new Error(`expected a protocol error, got ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );
  if (!(err instanceof RpcError)) throw err;
  assert.is(err.code, Code.INTERNAL, err.message);
  assert.match(err.message, /protocol error: server sent an answer for request id \d+, which is not in flight/);
  return err;
}

test('a RESPONSE for an id never sent fails the connection with a protocol error (GOAWAY INTERNAL); the call in flight fails', async () => {
  const { port, seen } = await hostile((socket, type, _flags, id) => {
    if (type === FrameType.REQUEST)
      socket.write(
        Buffer.concat([frame(FrameType.RESPONSE, 0, id + 1000, RESPONSE_BODY), frame(FrameType.RESPONSE, 0, id, RESPONSE_BODY)]),
      );
  });
  const h = connect(port);
  const err = await protocolError(h.call().done);
  assert.match(err.message, /id 1001/);
  assert.is(h.conn.closeError?.code, Code.INTERNAL);
  await until(() => seen.goaways.length > 0, 'the GOAWAY reached the server');
  assert.equal(seen.goaways, [Code.INTERNAL]);
});

test('an ERROR for an id never sent is a protocol error too', async () => {
  const { port } = await hostile((socket, type, _flags, id) => {
    if (type === FrameType.REQUEST) socket.write(Buffer.concat([errorFor(id + 7), frame(FrameType.RESPONSE, 0, id, RESPONSE_BODY)]));
  });
  await protocolError(connect(port).call().done);
});

/** An ERROR frame (code UNKNOWN, message "no") for `id`. */
function errorFor(id: number): Buffer {
  return frame(FrameType.ERROR, 0, id, Buffer.from([Code.UNKNOWN, 0x04, 0x6e, 0x6f]));
}

test('the first fragment of a 60 MB answer to an unused id: protocol error before any reassembly buffer', async () => {
  const { port } = await hostile((socket, type, _flags, id) => {
    if (type !== FrameType.REQUEST) return;
    socket.write(Buffer.concat([...fragments(id + 1000, 60 * MiB, 4 * MiB), frame(FrameType.RESPONSE, 0, id, RESPONSE_BODY)]));
  });
  const h = connect(port);
  await protocolError(h.call().done);
  assert.is(h.held(), 0, 'no partial message was ever held');
});

test('a compressed answer to an unused id: protocol error, never inflated', async () => {
  const { port } = await hostile((socket, type, _flags, id) => {
    if (type === FrameType.REQUEST)
      socket.write(Buffer.concat([bomb(id + 1000, 32 * MiB), frame(FrameType.RESPONSE, 0, id, RESPONSE_BODY)]));
  });
  const h = connect(port);
  await protocolError(h.call().done);
  assert.is(h.held(), 0, 'nothing was inflating');
});

test('a second answer for an id already answered is a protocol error', async () => {
  const { port } = await hostile((socket, type, _flags, id) => {
    if (type === FrameType.REQUEST && id === 1) socket.write(frame(FrameType.RESPONSE, 0, id, RESPONSE_BODY));
    if (type === FrameType.REQUEST && id === 2)
      socket.write(Buffer.concat([frame(FrameType.RESPONSE, 0, 1, RESPONSE_BODY), frame(FrameType.RESPONSE, 0, 2, RESPONSE_BODY)]));
  });
  const h = connect(port);
  assert.is(((await h.call().done) as { id: number }).id, vectorItem.id);
  await protocolError(h.call().done);
});

test('answers that cross our CANCEL (whole, fragmented, compressed) are dropped unread; the connection keeps working', async () => {
  let pings = 0;
  const { port, seen } = await hostile((socket, type, _flags, id) => {
    // Each cancelled call gets a late answer of another kind, as a server that had answered before reading the CANCEL.
    if (type === FrameType.CANCEL && id === 1) socket.write(frame(FrameType.RESPONSE, 0, id, RESPONSE_BODY));
    if (type === FrameType.CANCEL && id === 2) socket.write(Buffer.concat(fragments(id, 60 * MiB, 2 * MiB)));
    if (type === FrameType.CANCEL && id === 3) socket.write(bomb(id, 32 * MiB));
    if (type === FrameType.PING) {
      pings++;
      socket.write(frame(FrameType.PONG, 0, id));
    }
    if (type === FrameType.REQUEST && id === 4) socket.write(frame(FrameType.RESPONSE, 0, id, RESPONSE_BODY));
  });
  const h = connect(port);
  const cancelled = [h.call(), h.call(), h.call()];
  for (const c of cancelled) c.done.catch(() => undefined);
  await until(() => h.conn.state === 'ready', 'connected');
  for (const { call } of cancelled) {
    h.conn.detach(call, new RpcError(Code.CANCELLED, 'cancelled by the test'));
    call.reject(new RpcError(Code.CANCELLED, 'cancelled by the test'));
  }
  await until(() => pings >= 1, 'the barrier PING');
  await new Promise((r) => setTimeout(r, 50));
  const answer = await h.call().done.catch((e: unknown) => e);
  assert.is((answer as { id?: number }).id, vectorItem.id, `a new call on the same connection is answered: ${String(answer)}`);
  assert.is(h.conn.state, 'ready');
  assert.equal(seen.goaways, []);
  assert.is(h.held(), 0, 'the late fragments were not reassembled and the late bomb not inflated');
});

test('after the PONG of the barrier PING, an answer for the cancelled id is a protocol error', async () => {
  const { port } = await hostile((socket, type, _flags, id) => {
    // The server ignores the CANCEL's promise: answers the PING, then the call it was told to drop.
    if (type === FrameType.PING)
      socket.write(Buffer.concat([frame(FrameType.PONG, 0, id), frame(FrameType.RESPONSE, 0, 1, RESPONSE_BODY)]));
  });
  const h = connect(port);
  const first = h.call();
  first.done.catch(() => undefined);
  await until(() => h.conn.state === 'ready', 'connected');
  const second = h.call();
  h.conn.detach(first.call, new RpcError(Code.CANCELLED, 'cancelled by the test'));
  first.call.reject(new RpcError(Code.CANCELLED, 'cancelled by the test'));
  const err = await protocolError(second.done);
  assert.match(err.message, /id 1,/);
});

test.run();
