/**
 * SPEC.md section 11.4 on real loopback sockets: a server advertises its limits in WELCOME, and a
 * client fails a request that breaks them locally, RESOURCE_EXHAUSTED with `mayHaveRun` false, before
 * sending anything, so the connection (and the calls sharing it) lives on. Fragments are cut to what
 * the server reads.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createClient, type Client } from '../../src/client/client.js';
import { Code } from '../../src/errors/code.js';
import type { Protocol } from '../../src/codec/protocol.js';
import type { ServerOptions } from '../../src/server/server-options.js';
import { item, loadEcho, rejection, startServer, type Started } from '../helpers/echo-fixture.js';

const test = suite('advertised limits');
let protocol: Protocol;
const clients: Client[] = [];
const servers: Started[] = [];
/** Handler runs of `echo` on the current server. */
let runs = 0;

test.before(async () => {
  protocol = await loadEcho();
});

test.after.each(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.server.close({ graceMs: 100 })));
});

/** A value as JSON sees it: avsc's records and plain objects compare alike. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

async function setup(server: Partial<ServerOptions>, client: Partial<Parameters<typeof createClient>[0]> = {}): Promise<Client> {
  runs = 0;
  const s = await startServer({
    protocol,
    handlers: {
      echo: async (req: { item: unknown }) => {
        runs++;
        return req.item;
      },
    },
    ...server,
  });
  servers.push(s);
  const c = createClient({ protocol, endpoints: [s.endpoint], ...client });
  clients.push(c);
  // Connected, and the WELCOME with its limits read.
  await c.call('echo', { item: item(1) });
  return c;
}

test('a request over the server maxMessageBytes fails locally, not run, and the connection serves on', async () => {
  const c = await setup({ maxMessageBytes: 2000 });
  const err = await rejection(c.call('echo', { item: item(2, 3000) }));
  assert.is(err.code, Code.RESOURCE_EXHAUSTED);
  assert.match(err.message, "exceeds the server's maxMessageBytes (2000)");
  assert.is(err.mayHaveRun, false);
  assert.is(err.isRemote, false);
  assert.equal(plain(await c.call('echo', { item: item(3) })), plain(item(3)));
  assert.is(runs, 2, 'the refused call reached no handler');
  assert.is(c.stats()[0]!.connections, 1, 'the same connection');
});

test('without fragments, a request longer than the server maxFrameBytes fails locally instead of costing the connection', async () => {
  const c = await setup({ maxFrameBytes: 1024 }, { fragmentBytes: 0 });
  const err = await rejection(c.call('echo', { item: item(2, 1500) }));
  assert.is(err.code, Code.RESOURCE_EXHAUSTED);
  assert.match(err.message, "in one frame exceeds the server's maxFrameBytes (1024)");
  assert.is(err.mayHaveRun, false);
  assert.equal(plain(await c.call('echo', { item: item(3) })), plain(item(3)));
  assert.is(runs, 2);
});

test('with fragments, a request longer than the server maxFrameBytes goes in fragments it reads', async () => {
  const c = await setup({ maxFrameBytes: 1024 });
  const big = item(2, 5000);
  assert.equal(plain(await c.call('echo', { item: big })), plain(big));
  assert.is(runs, 2);
});

test('metadata over the server maxMetadataBytes fails locally, not run', async () => {
  const c = await setup({ maxMetadataBytes: 64 });
  const err = await rejection(c.call('echo', { item: item(2) }, { metadata: { k: 'v'.repeat(100) } }));
  assert.is(err.code, Code.RESOURCE_EXHAUSTED);
  assert.match(err.message, "exceeds the server's maxMetadataBytes (64)");
  assert.is(err.mayHaveRun, false);
  assert.equal(plain(await c.call('echo', { item: item(3) }, { metadata: { k: 'v' } })), plain(item(3)));
});

test('the server maxConcurrentCalls: a call beyond it fails locally while the others run', async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const c = await setup({
    maxConcurrentCalls: 2,
    handlers: {
      echo: async (req: { item: unknown }) => {
        runs++;
        if (runs > 1) await held;
        return req.item;
      },
    },
  });
  const first = c.call('echo', { item: item(2) });
  const second = c.call('echo', { item: item(3) });
  const err = await rejection(c.call('echo', { item: item(4) }));
  assert.is(err.code, Code.RESOURCE_EXHAUSTED);
  assert.match(err.message, "the server's max 2");
  assert.is(err.mayHaveRun, false);
  release();
  assert.equal(plain([await first, await second]), plain([item(2), item(3)]));
  assert.is(runs, 3);
});

test.run();
