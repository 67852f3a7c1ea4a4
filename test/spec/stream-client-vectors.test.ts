import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError, createClient, loadProtocol, type Client, type Protocol } from '../../src/index.js';
import { FrameType, PREFACE } from '../../src/framing/frame.js';
import { repoPath } from '../helpers/repo.js';
import { SocketReader } from '../helpers/socket-reader.js';
import { streamVectors, vectorItem, type StreamVector } from './stream-vectors.js';

/**
 * SPEC.md section 13.11 from the other side: a raw server plays the server's frames of each stream
 * vector to a real client and checks that every frame the client sends is exactly the vector's (the
 * client numbers its calls from 1, so the vector's id is replaced by the client's), and that the
 * client hands its caller what the vector's frames say.
 */
const test = suite('spec: stream test vectors, the client side');
const v = streamVectors();
let protocol: Protocol;
const open: { close(): Promise<void> }[] = [];

test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/stream.avdl'));
});

test.after.each(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

/** `bytes` with its id replaced by `id` when it is the vector's call id `from` (PINGs and PONGs keep theirs). */
function renumber(bytes: Buffer, from: number, id: number): Buffer {
  if (bytes.readUInt32BE(6) !== from || bytes[4] === FrameType.PING || bytes[4] === FrameType.PONG) return bytes;
  const b = Buffer.from(bytes);
  b.writeUInt32BE(id, 6);
  return b;
}

/**
 * A raw server for one connection: checks the client's HELLO against the handshake vector, answers
 * its WELCOME, then plays `vector` (the client's frames read and compared, the server's written), the
 * call renumbered to id 1. PINGs the vector does not expect (keepalive) are answered and skipped.
 * Returns a client of it and the script's outcome.
 */
async function peerFor(vector: StreamVector): Promise<{ client: Client; played: Promise<void> }> {
  const callId = vector.frames[0]!.bytes.readUInt32BE(6);
  let connected!: (script: Promise<void>) => void;
  const played = new Promise<Promise<void>>((resolve) => (connected = resolve)).then((script) => script);
  let peer: Socket | undefined;
  const raw = createNetServer((socket) => {
    peer = socket;
    const reader = new SocketReader(socket);
    const next = async (expected: Buffer): Promise<Buffer> => {
      for (;;) {
        const f = await reader.frame();
        if (f[4] !== FrameType.PING || (expected[4] === FrameType.PING && f.readUInt32BE(6) === expected.readUInt32BE(6))) return f;
        const pong = Buffer.from(f);
        pong[4] = FrameType.PONG;
        socket.write(pong);
      }
    };
    const script = (async () => {
      assert.is((await reader.read(PREFACE.length)).toString('hex'), PREFACE.toString('hex'), 'the preface');
      const [hello, welcome] = v.handshake.frames;
      assert.is((await reader.frame()).toString('hex'), hello!.bytes.toString('hex'), 'the HELLO of the handshake vector');
      socket.write(welcome!.bytes);
      for (const [i, f] of vector.frames.entries()) {
        const bytes = renumber(f.bytes, callId, 1);
        if (f.from === 'server') socket.write(bytes);
        else assert.is((await next(bytes)).toString('hex'), bytes.toString('hex'), `client frame ${i} of the vector`);
      }
    })();
    script.catch(() => socket.destroy());
    connected(script);
  });
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  // Fragments off: the HELLO then offers streams only, as the handshake vector.
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${(raw.address() as AddressInfo).port}`], fragmentBytes: 0 });
  open.push({
    async close() {
      peer?.destroy();
      raw.close();
      await once(raw, 'close');
    },
  });
  open.push(client);
  return { client, played };
}

/**
 * Runs the client's side of a test while the raw server plays: when both fail, the server's mismatch
 * (which made it drop the connection) is the failure reported, not what the client saw of the drop.
 */
async function checked<T>(played: Promise<void>, work: () => Promise<T>): Promise<T> {
  const [script, result] = await Promise.allSettled([played, work()]);
  if (script.status === 'rejected') throw script.reason;
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}

const plain = (values: unknown[]): unknown[] => values.map((x) => ({ ...(x as object) }));

test('a server stream: the client sends the REQUEST of the vector and yields its two items, headers and trailers', async () => {
  const { client, played } = await peerFor(v.serverStream);
  const stream = client.serverStream('watch', { from: 1, count: 2, failAfter: -1 });
  const items: unknown[] = [];
  await checked(played, async () => {
    for await (const item of stream) items.push(item);
  });
  assert.equal(plain(items), [vectorItem(1), vectorItem(2)]);
  assert.equal({ ...(await stream.headers) }, { stage: 'start' });
  assert.equal({ ...(await stream.trailers) }, { count: '2' });
});

test('a client stream: the client sends the REQUEST head, two DATA and END of the vector, and takes the RESPONSE with its trailers', async () => {
  const { client, played } = await peerFor(v.clientStream);
  let trailers: unknown;
  const summary = await checked(played, () =>
    client.clientStream('upload', [{ item: vectorItem(1) }, { item: vectorItem(2) }], { onTrailer: (t) => (trailers = t) }),
  );
  assert.equal({ ...summary }, { count: 2, bytes: 4 });
  assert.equal({ ...(trailers as object) }, { count: '2' });
});

test('a bidi stream: the client sends the frames of the vector and yields both answers', async () => {
  const { client, played } = await peerFor(v.bidi);
  const items: unknown[] = [];
  await checked(played, async () => {
    for await (const item of client.bidiStream('chat', [{ item: vectorItem(5) }, { item: vectorItem(6) }])) items.push(item);
  });
  assert.equal(plain(items), [vectorItem(5), vectorItem(6)]);
});

test('a cancelled stream: breaking out after the first item sends the CANCEL and the barrier PING of the vector', async () => {
  const { client, played } = await peerFor(v.cancelled);
  const items: unknown[] = [];
  await checked(played, async () => {
    for await (const item of client.serverStream('watch', { from: 1, count: 2, failAfter: -1 })) {
      items.push(item);
      break;
    }
  });
  assert.equal(plain(items), [vectorItem(1)]);
});

test('an error mid-stream: the client yields the one item, then throws the ERROR with its declared value; trailers from its metadata', async () => {
  const { client, played } = await peerFor(v.errorMidStream);
  const stream = client.serverStream('watch', { from: 1, count: 3, failAfter: 1 });
  const items: unknown[] = [];
  const error = await checked(played, () =>
    (async () => {
      for await (const item of stream) items.push(item);
    })().then(
      () => undefined,
      (e: unknown) => e,
    ),
  );
  assert.equal(plain(items), [vectorItem(1)]);
  assert.instance(error, RpcError);
  assert.equal([(error as RpcError).code, (error as RpcError).message], [Code.ABORTED, 'stop']);
  assert.equal({ ...((error as RpcError).details as object) }, { reason: 'stop', after: 1 });
  assert.equal({ ...(await stream.trailers) }, { count: '1' });
});

test('a unary call: the client sends the REQUEST of the vector and reports the headers and trailers', async () => {
  const { client, played } = await peerFor(v.unary);
  let headers: unknown;
  let trailers: unknown;
  const item = await checked(played, () =>
    client.call('echo', { item: vectorItem(1) }, { onHeader: (h) => (headers = h), onTrailer: (t) => (trailers = t) }),
  );
  assert.equal({ ...item }, vectorItem(1));
  assert.equal({ ...(headers as object) }, { stage: 'start' });
  assert.equal({ ...(trailers as object) }, { count: '1' });
});

test.run();
