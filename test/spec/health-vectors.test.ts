import { once } from 'node:events';
import { connect } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkHealth, createServer, loadProtocol, type Protocol } from '../../src/index.js';
import { rawServer } from '../helpers/echo-fixture.js';
import { repoPath } from '../helpers/repo.js';
import { SocketReader } from '../helpers/socket-reader.js';
import { healthVectors } from '../helpers/spec-vectors.js';

/** SPEC.md section 14: the health check's bytes, against a real server and from the real client. */
const test = suite('spec health vectors');
const v = healthVectors();
let protocol: Protocol;

test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});

test('a raw peer sending the SPEC health HELLO gets exactly the SPEC WELCOME, then the server closes', async () => {
  const server = createServer({ protocol, handlers: { echo: (r: { item: unknown }) => r.item } });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const socket = connect({ host: '127.0.0.1', port });
  const reader = new SocketReader(socket);
  try {
    const ended = once(socket, 'end');
    socket.write(v.hello);
    assert.is((await reader.frame()).toString('hex'), v.welcome.toString('hex'));
    await ended;
  } finally {
    socket.destroy();
    await server.close({ graceMs: 100 });
  }
});

test('checkHealth sends exactly the SPEC HELLO and reads the SPEC WELCOME as SERVING', async () => {
  let sent = Buffer.alloc(0);
  const peer = await rawServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      sent = Buffer.concat([sent, chunk]);
      if (sent.length >= v.hello.length) socket.end(v.welcome);
    });
  });
  try {
    assert.equal(await checkHealth(peer.endpoint), { status: 'SERVING', supported: true });
    assert.is(sent.toString('hex'), v.hello.toString('hex'));
  } finally {
    await peer.close();
  }
});

test('the NOT_SERVING answer differs from the vector in the status byte only', async () => {
  const notServing = Buffer.from(v.welcome);
  notServing[notServing.length - 2] = 2;
  const peer = await rawServer((socket) => socket.once('data', () => socket.end(notServing)));
  try {
    assert.equal(await checkHealth(peer.endpoint), { status: 'NOT_SERVING', supported: true });
  } finally {
    await peer.close();
  }
});

test('a status byte a client does not know, or a value of another length, reads as NOT_SERVING', async () => {
  for (const value of [[9], [1, 1], []]) {
    const w = Buffer.from(v.welcome);
    // Rebuild the WELCOME with another avrpc.health value: head, key, then the value and the map's end.
    const head = w.subarray(10, w.length - 3);
    const body = Buffer.concat([head, Buffer.from([value.length * 2, ...value, 0])]);
    const frame = Buffer.alloc(10);
    frame.writeUInt32BE(body.length, 0);
    frame[4] = 2;
    const peer = await rawServer((socket) => socket.once('data', () => socket.end(Buffer.concat([frame, body]))));
    try {
      assert.equal(await checkHealth(peer.endpoint), { status: 'NOT_SERVING', supported: true }, `value ${JSON.stringify(value)}`);
    } finally {
      await peer.close();
    }
  }
});

test.run();
