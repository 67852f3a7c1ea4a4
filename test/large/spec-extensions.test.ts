import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, createServer, loadProtocol, type Protocol } from '../../src/index.js';
import { repoPath } from '../helpers/repo.js';
import { SocketReader } from '../helpers/socket-reader.js';
import { extensionVectors, namedVectors, vectorItem } from '../helpers/spec-vectors.js';

/** SPEC.md section 10 "Extensions": fragment and compression vectors against a real server and client. */
const test = suite('spec vectors: fragments and compression');
const v = namedVectors();
const x = extensionVectors();
let protocol: Protocol;

test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});

/** Reads frames until the last fragment of a message (MORE clear); returns them concatenated. */
async function readMessage(reader: SocketReader): Promise<Buffer> {
  const frames: Buffer[] = [];
  for (;;) {
    const f = await reader.frame();
    frames.push(f);
    if ((f[5]! & 0x80) === 0) return Buffer.concat(frames);
  }
}

/** A raw server that runs `script` on its one connection. */
async function rawServer(
  script: (socket: Socket, reader: SocketReader) => Promise<void>,
): Promise<{ port: number; close(): Promise<void> }> {
  let peer: Socket | undefined;
  const raw: NetServer = createNetServer((socket) => {
    peer = socket;
    script(socket, new SocketReader(socket)).catch(() => socket.destroy());
  });
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  return {
    port: (raw.address() as AddressInfo).port,
    async close() {
      peer?.destroy();
      raw.close();
      await once(raw, 'close');
    },
  };
}

test('a raw client sending the extension vectors gets the SPEC answers from a real server', async () => {
  // P = 16 as in the vectors.
  const server = createServer({
    protocol,
    handlers: { echo: (req: { item: unknown }) => req.item },
    compressAboveBytes: 1024,
    maxPartialMessages: 16,
    fragmentWindowBytes: 256 * 1024, // as in the vectors
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const socket = connect({ host: '127.0.0.1', port });
  const reader = new SocketReader(socket);
  try {
    socket.write(x.hello);
    assert.is((await reader.frame()).toString('hex'), x.welcome.toString('hex'));
    socket.write(x.fragmentedRequest);
    // The RESPONSE, and WINDOW frames acknowledging the 25 fragment bytes, in any order.
    let acked = 0;
    let response: Buffer | undefined;
    while (response === undefined || acked < 25) {
      const f = await reader.frame();
      if (f[4] === 0x0b) {
        assert.is(f.subarray(0, 10).toString('hex'), '000000040b0000000000');
        acked += f.readUInt32BE(10);
      } else {
        response = f;
      }
    }
    assert.is(acked, 25);
    assert.is(response.toString('hex'), v.response1.toString('hex'));
    socket.write(x.compressedRequest);
    const second = await reader.frame();
    assert.is(second.readUInt32BE(6), 2);
    assert.is(second.subarray(10).toString('hex'), v.response1.subarray(10).toString('hex'));
  } finally {
    socket.destroy();
    await server.close({ graceMs: 100 });
  }
});

test('a real client offers the extensions, fragments exactly as the vector, and inflates a compressed response', async () => {
  const seen: Buffer[] = [];
  const raw = await rawServer(async (socket, reader) => {
    seen.push(await reader.read(x.hello.length));
    socket.write(x.welcome);
    seen.push(await readMessage(reader));
    socket.write(x.compressedResponse);
  });
  const client = createClient({
    protocol,
    endpoints: [`127.0.0.1:${raw.port}`],
    fragmentBytes: 8,
    compressAboveBytes: 1 << 20,
    maxPartialMessages: 16,
    fragmentWindowBytes: 256 * 1024,
  });
  try {
    const r = await client.call('echo', { item: vectorItem });
    assert.equal({ ...r }, vectorItem);
    assert.equal(
      seen.map((b) => b.toString('hex')),
      [x.hello, x.fragmentedRequest].map((b) => b.toString('hex')),
    );
  } finally {
    await client.close();
    await raw.close();
  }
});

test('a client whose server accepts no extension sends plain version 1 frames', async () => {
  const seen: Buffer[] = [];
  const raw = await rawServer(async (socket, reader) => {
    const preface = await reader.read(6);
    const hello = await reader.frame();
    seen.push(Buffer.concat([preface, hello]));
    socket.write(v.welcome);
    seen.push(await reader.frame());
    socket.write(v.response1);
  });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${raw.port}`], fragmentBytes: 8, compressAboveBytes: 1 });
  try {
    const r = await client.call('echo', { item: vectorItem });
    assert.equal({ ...r }, vectorItem);
    assert.ok(seen[0]!.includes(Buffer.from('avrpc.fragments')), 'the HELLO offered fragments');
    assert.is(seen[1]!.toString('hex'), v.request1.toString('hex'));
  } finally {
    await client.close();
    await raw.close();
  }
});

test.run();
