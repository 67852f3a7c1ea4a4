import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RpcError, createClient, type Protocol } from '../../src/index.js';
import { item, loadEcho, rawServer, startServer, type Item, type Started } from '../helpers/echo-fixture.js';

/**
 * End to end framing: a session recorded from the real client is replayed into a real server byte by
 * byte and in random chunks; the server answers with exactly the recorded bytes.
 */
const test = suite('framing end to end');
let protocol: Protocol;
let session: { toServer: Buffer; toClient: Buffer; frames: number };

function echoServer(observer?: { bytesReceived(n: number): void }): Promise<Started> {
  return startServer({
    protocol,
    handlers: {
      echo: (req: { item: Item }) => req.item,
      fail: (req: { reason: string }) => {
        throw { reason: req.reason };
      },
      notify: () => undefined,
    },
    ...(observer ? { observer } : {}),
  });
}

/** Runs a real client through a recording proxy in front of a real server. */
async function record(): Promise<typeof session> {
  const target = await echoServer();
  const up: Buffer[] = [];
  const down: Buffer[] = [];
  const peers: Socket[] = [];
  const proxy = await rawServer((socket) => {
    const server = connect({ host: '127.0.0.1', port: target.port });
    peers.push(server);
    server.on('error', () => socket.destroy());
    socket.on('data', (d: Buffer) => {
      up.push(d);
      server.write(d);
    });
    server.on('data', (d: Buffer) => {
      down.push(d);
      socket.write(d);
    });
    socket.on('close', () => server.destroy());
    server.on('close', () => socket.destroy());
  });
  const client = createClient({ protocol, endpoints: [proxy.endpoint] });
  let frames = 1; // HELLO
  try {
    for (let i = 0; i < 20; i++) {
      const opts = i % 3 === 0 ? { metadata: { trace: `t-${i}`, k: 'v' } } : i % 3 === 1 ? { timeoutMs: 60_000 } : {};
      const r = await client.call<Item>('echo', { item: item(i, i === 7 ? 20_000 : i) }, opts);
      assert.is(r.id, i);
      frames++;
    }
    await client.call('notify', { item: item(99) });
    frames++;
    const err = await client.call('fail', { reason: 'recorded' }).catch((e: unknown) => e);
    assert.instance(err, RpcError);
    frames++;
    // Concurrent calls: several frames per TCP segment.
    await Promise.all([1, 2, 3, 4, 5].map((i) => client.call('echo', { item: item(100 + i) })));
    frames += 5;
  } finally {
    await client.close();
    await proxy.close();
    for (const p of peers) p.destroy();
    await target.server.close({ graceMs: 1000 });
  }
  return { toServer: Buffer.concat(up), toClient: Buffer.concat(down), frames };
}

test.before(async () => {
  protocol = await loadEcho();
  session = await record();
});

/** Replays `chunks` into a fresh server, one chunk per event-loop turn; returns what came back and how many reads the server made. */
async function replay(chunks: Buffer[]): Promise<{ reply: Buffer; serverReads: number }> {
  let serverReads = 0;
  const started = await echoServer({
    bytesReceived: () => {
      serverReads++;
    },
  });
  const socket = connect({ host: '127.0.0.1', port: started.port });
  socket.setNoDelay(true);
  const got: Buffer[] = [];
  let gotBytes = 0;
  let done!: () => void;
  const complete = new Promise<void>((r) => {
    done = r;
  });
  socket.on('data', (d: Buffer) => {
    got.push(d);
    gotBytes += d.length;
    if (gotBytes >= session.toClient.length) done();
  });
  socket.on('close', () => done());
  try {
    await once(socket, 'connect');
    for (const c of chunks) {
      socket.write(c);
      await new Promise((r) => setImmediate(r));
    }
    await complete;
    return { reply: Buffer.concat(got), serverReads };
  } finally {
    socket.destroy();
    await started.server.close({ graceMs: 1000 });
  }
}

function chunked(bytes: Buffer, maxChunk: number, seed: number): Buffer[] {
  const out: Buffer[] = [];
  for (let pos = 0; pos < bytes.length;) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const n = (seed % maxChunk) + 1;
    out.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

test('the recorded session has the shape we expect', () => {
  assert.ok(session.toServer.length > 20_000);
  assert.ok(session.frames >= 28);
});

test('replayed in one write: exactly the recorded answers', async () => {
  const { reply } = await replay([session.toServer]);
  assert.ok(reply.equals(session.toClient), 'byte-identical replies');
});

test('replayed one byte at a time: exactly the recorded answers', async () => {
  const bytes = [...session.toServer].map((b) => Buffer.from([b]));
  const { reply, serverReads } = await replay(bytes);
  assert.ok(reply.equals(session.toClient), 'byte-identical replies');
  assert.ok(serverReads > session.frames * 4, `the server saw the frames split (${serverReads} reads for ${session.frames} frames)`);
});

test('replayed in random chunk sizes: exactly the recorded answers', async () => {
  for (const [max, seed] of [
    [7, 1],
    [64, 2],
    [1500, 3],
    [9000, 4],
  ] as const) {
    const { reply } = await replay(chunked(session.toServer, max, seed));
    assert.ok(reply.equals(session.toClient), `chunks up to ${max} bytes`);
  }
});

test.run();
