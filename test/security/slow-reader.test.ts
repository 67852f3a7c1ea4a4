import { connect } from 'node:net';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, loadProtocol, type Logger, type Protocol, type RpcError } from '../../src/index.js';
import { helloBytes, requestBytes, until } from '../helpers/raw-peer.js';
import { repoPath } from '../helpers/repo.js';

/**
 * Issue 5, a client that never reads: the server stops reading from it once its socket is full, and
 * drops it once more than `maxQueuedBytes` wait for it; server memory stays bounded by that cap.
 */
const test = suite('security: slow reader');
let protocol: Protocol;
const small = { id: 1, name: 's', tags: [], score: 0, blob: Buffer.alloc(0) };
const big = { id: 2, name: 'b', tags: [], score: 0, blob: Buffer.alloc(256 * 1024, 7) };

test.before(async () => {
  protocol = await loadProtocol(repoPath('protocol/echo.avdl'));
});

/** A logger that keeps the errors the server logs when it closes a connection. */
function recordingLogger(into: RpcError[]): Logger {
  const keep = (obj: unknown) => {
    const err = (obj as { err?: RpcError } | undefined)?.err;
    if (err !== undefined) into.push(err);
  };
  return { debug: () => {}, info: keep, warn: keep, error: keep };
}

/**
 * A server whose every answer is 256 KiB (the responses outgrow any socket buffer quickly), with a
 * 1 MiB `maxQueuedBytes`, recording why it closed connections and counting the answers it made.
 */
async function bigAnswerServer() {
  const closed: RpcError[] = [];
  let answered = 0;
  const server = createServer({
    protocol,
    maxQueuedBytes: 1024 * 1024,
    logger: recordingLogger(closed),
    handlers: {
      echo: () => {
        answered++;
        return big;
      },
    },
  });
  const { port } = await server.listen();
  return { server, port, closed, answered: () => answered };
}

test('a client that sends many calls and never reads is disconnected with RESOURCE_EXHAUSTED; others keep working', async () => {
  const { server, port, closed, answered } = await bigAnswerServer();
  const good = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    await good.call('echo', { item: small });
    // The raw socket has no 'data' listener: it never reads a byte.
    const hog = connect({ host: '127.0.0.1', port });
    hog.on('error', () => {});
    await once(hog, 'connect');
    const requests = [];
    for (let id = 1; id <= 400; id++) requests.push(requestBytes(protocol, id, 'echo', { item: small }));
    hog.write(Buffer.concat([helloBytes(protocol), ...requests]));
    // The hog never reads, so it cannot even notice the reset: watch the server drop it instead.
    await until(() => closed.length > 0 && server.connections === 1, 'the server dropped the hog');
    hog.destroy();
    const err = closed.find((e) => e.code === Code.RESOURCE_EXHAUSTED);
    assert.ok(err !== undefined, `closed with ${closed.map((e) => e.message).join('; ')}`);
    assert.match(err!.message, /peer does not read: \d+ bytes queued \(max 1048576\)/);
    // The server gave up after about maxQueuedBytes of answers (4 x 256 KiB), not after all 400 (100 MiB).
    assert.ok(answered() - 1 < 100, `answered ${answered() - 1} of 400`);
    assert.is((await good.call('echo', { item: small })).name, 'b');
  } finally {
    await good.close();
    await server.close({ graceMs: 100 });
  }
});

test('a peer that never sends WINDOW cannot pile up fragmented responses: it is disconnected at maxQueuedBytes', async () => {
  // Found by the security audit: with fragments offered (P huge, W tiny) every large answer waited in the
  // outbox for credit that never came. Nothing reached the socket, so reads never paused and the queue
  // cap never looked at those bytes: 100 KB of requests made the server hold about 1 GB.
  const { server, port, closed, answered } = await bigAnswerServer();
  const hog = connect({ host: '127.0.0.1', port });
  hog.on('error', () => {});
  try {
    await once(hog, 'connect');
    const offer = Buffer.alloc(8);
    offer.writeUInt32BE(1_000_000, 0); // P: any number of fragmented answers at once
    offer.writeUInt32BE(8, 4); // W: 8 bytes of credit, never renewed
    const requests = [];
    for (let id = 1; id <= 400; id++) requests.push(requestBytes(protocol, id, 'echo', { item: small }));
    // It reads (the socket never fills up); it just never acknowledges a fragment.
    hog.on('data', () => {});
    hog.write(Buffer.concat([helloBytes(protocol, { 'avrpc.fragments': offer }), ...requests]));
    await until(() => closed.length > 0 && server.connections === 0, 'the server dropped the peer that never sends WINDOW');
    const err = closed.find((e) => e.code === Code.RESOURCE_EXHAUSTED);
    assert.ok(err !== undefined, `closed with ${closed.map((e) => e.message).join('; ')}`);
    assert.match(err!.message, /peer does not read: \d+ bytes queued \(max 1048576\)/);
    // About maxQueuedBytes of answers (4 x 256 KiB) were held, not all 400 (100 MiB).
    assert.ok(answered() < 100, `answered ${answered()} of 400`);
  } finally {
    hog.destroy();
    await server.close({ graceMs: 100 });
  }
});

test('one answer larger than maxQueuedBytes still streams in fragments to a client that acknowledges them', async () => {
  // The outbox counts against the cap beyond one message: a peer can pile up many answers, not one large one.
  const huge = { ...big, blob: Buffer.alloc(4 * 1024 * 1024, 3) };
  const server = createServer({ protocol, maxQueuedBytes: 1024 * 1024, handlers: { echo: () => huge } });
  const { port } = await server.listen();
  const c = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  try {
    for (let i = 0; i < 2; i++) assert.is((await c.call('echo', { item: small })).blob.length, 4 * 1024 * 1024);
  } finally {
    await c.close();
    await server.close({ graceMs: 100 });
  }
});

test('a slow reader under the cap is not dropped: it gets every response once it reads', async () => {
  const server = createServer({ protocol, maxQueuedBytes: 64 * 1024 * 1024, handlers: { echo: () => big } });
  const { port } = await server.listen();
  const s = connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  try {
    await once(s, 'connect');
    const requests = [];
    for (let id = 1; id <= 20; id++) requests.push(requestBytes(protocol, id, 'echo', { item: small }));
    s.write(Buffer.concat([helloBytes(protocol), ...requests]));
    await until(() => server.connections === 1, 'connected');
    await new Promise((r) => setTimeout(r, 100));
    // Now read everything: WELCOME plus 20 responses of more than 256 KiB each.
    let bytes = 0;
    s.on('data', (d: Buffer) => {
      bytes += d.length;
    });
    await until(() => bytes > 20 * 256 * 1024, 'all responses read');
    assert.is(server.connections, 1);
  } finally {
    s.destroy();
    await server.close({ graceMs: 100 });
  }
});

test.run();
