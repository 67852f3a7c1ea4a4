import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, createServer } from '../../src/index.js';
import { bulkProtocol, rows } from '../offload/bulk-protocol.js';
import { largeProtocol, pattern } from '../helpers/large.js';

/** A response made by a worker goes out like any other: in fragments when large. */
const test = suite('large messages from worker handlers');
const HANDLERS_URL = new URL('../offload/bulk-handlers.js', import.meta.url);

test('a large response from a worker crosses peers that accept 64 KiB frames at most', async () => {
  const protocol = bulkProtocol();
  // Neither side accepts a frame beyond 64 KiB + 4: a response of ~1 MB passes only in fragments.
  const server = createServer({
    protocol,
    handlers: {},
    maxFrameBytes: 65_540,
    workers: { module: HANDLERS_URL, messages: ['echo'], threads: 1, offload: 'always' },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], maxFrameBytes: 65_540 });
  try {
    const sent = rows(20_000);
    const reply = (await client.call('echo', { rows: sent, action: 'echo' })) as { rows: unknown[]; threadId: number };
    assert.is(reply.rows.length, sent.length);
    assert.is(JSON.stringify(reply.rows), JSON.stringify(sent));
  } finally {
    await client.close();
    await server.close();
  }
});

test('worker responses beyond the 8 MiB worker scratch space, and small ones, arrive intact', async () => {
  const server = createServer({
    protocol: largeProtocol,
    handlers: {
      echo: () => {
        throw new Error('inline');
      },
    },
    maxMessageBytes: 64 * 1024 * 1024,
    workers: { module: new URL('../helpers/large-worker-handlers.js', import.meta.url), messages: ['echo'], threads: 1, offload: 'always' },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol: largeProtocol, endpoints: [`127.0.0.1:${port}`], maxMessageBytes: 64 * 1024 * 1024 });
  try {
    for (const [i, size] of [9 * 1024 * 1024 + 3, 10, 70_000, 9 * 1024 * 1024].entries()) {
      const data = pattern(size, i);
      const out = (await client.call('echo', { data })) as Buffer;
      assert.ok(out.equals(data), `size ${size}`);
    }
  } finally {
    await client.close();
    await server.close();
  }
});

test.run();
