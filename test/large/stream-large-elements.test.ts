/**
 * Large stream elements end to end (SPEC.md sections 12 and 13) between a real client and a real
 * server: elements of a MiB go in fragments and compressed both ways, arrive whole and in order, the
 * stream's END and trailers after its last element, and an element over the receiver's
 * maxMessageBytes fails that stream only.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { createClient, createServer, loadProtocol, type CallContext, type Client, type Protocol, type Server } from '../../src/index.js';
import { Code } from '../../src/errors/code.js';
import { pattern } from '../helpers/large.js';

const test = suite('streams: large elements');

const streamAvdl = fileURLToPath(new URL('../../../protocol/stream.avdl', import.meta.url));
let protocol: Protocol;
const servers: Server[] = [];
const clients: Client[] = [];

interface Item {
  id: number;
  name: string;
  tags: string[];
  score: number;
  blob: Buffer;
}

/** Element `i`: its blob alternates incompressible (fragments alone) and compressible (deflated too). */
const item = (i: number, size: number): Item => ({
  id: i,
  name: `item ${i}`,
  tags: [],
  score: 0,
  blob: i % 2 === 0 ? pattern(size, i) : Buffer.alloc(size, `element ${i} `),
});

test.before(async () => {
  protocol = await loadProtocol(streamAvdl);
});

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 0 })));
});

/** Frames of at most 256 KiB: a MiB element can only travel in fragments. */
const LARGE = { fragmentBytes: 64 * 1024, maxFrameBytes: 256 * 1024, compressAboveBytes: 16 * 1024, maxMessageBytes: 8 << 20 };

async function start(serverOptions: object = {}, clientOptions: object = {}): Promise<Client> {
  const server = createServer({
    protocol,
    ...LARGE,
    ...serverOptions,
    handlers: {
      watch: async function* (req: { from: number; count: number }, ctx: CallContext) {
        ctx.responseTrailer['sent'] = String(req.count);
        for (let i = 0; i < req.count; i++) yield item(req.from + i, req.from === 0 ? 1 << 20 : 1000 + i);
      },
      upload: async (requests: AsyncIterable<{ item: Item }>) => {
        let count = 0;
        let bytes = 0;
        for await (const { item: it } of requests) {
          assert.ok(it.blob.equals(item(it.id, it.blob.length).blob), `upload element ${it.id} intact`);
          count++;
          bytes += it.blob.length;
        }
        return { count, bytes };
      },
      chat: async function* (requests: AsyncIterable<{ item: Item }>) {
        for await (const r of requests) yield r.item;
      },
      echo: (req: { item: Item }) => req.item,
    } as never,
  });
  servers.push(server);
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], connectionsPerEndpoint: 1, ...LARGE, ...clientOptions });
  clients.push(client);
  return client;
}

test('a server stream of 1 MiB elements arrives whole and in order, then its trailers', async () => {
  const client = await start();
  const stream = client.serverStream<Item>('watch', { from: 0, count: 6, failAfter: -1 });
  const ids: number[] = [];
  for await (const it of stream) {
    assert.ok(it.blob.equals(item(it.id, 1 << 20).blob), `element ${it.id} intact`);
    ids.push(it.id);
  }
  assert.equal(ids, [0, 1, 2, 3, 4, 5]);
  assert.equal(await stream.trailers, { sent: '6' });
});

test('a server stream whose elements add up to more than maxQueuedBytes streams to a client that reads', async () => {
  const client = await start({ maxQueuedBytes: 4 << 20 });
  const ids: number[] = [];
  for await (const it of client.serverStream<Item>('watch', { from: 0, count: 24, failAfter: -1 })) ids.push(it.id);
  assert.is(ids.length, 24);
});

test('a client stream of 1 MiB elements, compressed and in fragments, reaches the handler whole', async () => {
  const client = await start();
  const items = [0, 1, 2, 3, 4].map((i) => ({ item: item(i, 1 << 20) }));
  const summary = await client.clientStream<{ count: number; bytes: number }>('upload', items);
  assert.equal({ count: Number(summary.count), bytes: Number(summary.bytes) }, { count: 5, bytes: 5 << 20 });
});

test('a bidi stream echoes large and small elements of one stream in order', async () => {
  const client = await start();
  const sizes = [1 << 20, 10, 300_000, 20, 1 << 20, 5];
  const stream = client.bidiStream<Item>(
    'chat',
    sizes.map((s, i) => ({ item: item(i, s) })),
  );
  const got: [number, number][] = [];
  for await (const it of stream) {
    assert.ok(it.blob.equals(item(it.id, it.blob.length).blob), `element ${it.id} intact`);
    got.push([it.id, it.blob.length]);
  }
  assert.equal(
    got,
    sizes.map((s, i) => [i, s]),
  );
});

test('an element over the client’s maxMessageBytes fails that stream RESOURCE_EXHAUSTED; the connection goes on', async () => {
  const client = await start({}, { maxMessageBytes: 512 * 1024 });
  const stream = client.serverStream<Item>('watch', { from: 0, count: 3, failAfter: -1 });
  let code: number | undefined;
  let message = '';
  try {
    for await (const _ of stream) assert.unreachable('the first element is over the limit');
  } catch (err) {
    code = (err as { code: number }).code;
    message = (err as Error).message;
  }
  assert.is(code, Code.RESOURCE_EXHAUSTED, message);
  const small: number[] = [];
  for await (const it of client.serverStream<Item>('watch', { from: 10, count: 3, failAfter: -1 })) small.push(it.id);
  assert.equal(small, [10, 11, 12]);
});

test.run();
