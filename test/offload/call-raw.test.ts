/**
 * client.callRaw: request bytes in, response bytes out (no Avro work on the client), equal to what
 * `call` decodes, including across a schema difference with the server; errors as usual.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, parseProtocol, RpcError, type Client, type Protocol, type Server } from '../../src/index.js';
import { echo } from './bulk-handlers.js';
import { bulkIdlV2, bulkProtocol, rows } from './bulk-protocol.js';
import { codeOf } from '../helpers/code-of.js';

const protocol = bulkProtocol();
const msg = protocol.message('echo')!;

async function start(serverProtocol: Protocol): Promise<{ server: Server; client: Client }> {
  const server = createServer({ protocol: serverProtocol, handlers: { echo } });
  const { port } = await server.listen();
  return { server, client: createClient({ protocol, endpoints: [`127.0.0.1:${port}`] }) };
}

for (const [name, serverProtocol] of [
  ['the same protocol', protocol],
  ['another Row schema', parseProtocol(bulkIdlV2)],
] as const) {
  test(`callRaw returns the bytes call() decodes (server with ${name})`, async () => {
    const { server, client } = await start(serverProtocol);
    try {
      for (const n of [0, 3, 20_000]) {
        const request = { rows: rows(n), action: 'echo' };
        const bytes = await client.callRaw('echo', msg.request.toBuffer(request));
        assert.instance(bytes, Buffer);
        const decoded = await client.call('echo', request);
        assert.ok(JSON.stringify(msg.response.fromBuffer(bytes)) === JSON.stringify(decoded), `${n} rows`);
        assert.ok(bytes.equals(msg.response.toBuffer(decoded)), `${n} rows: bytes in the client's schema`);
      }
    } finally {
      await client.close();
      await server.close();
    }
  });
}

test('callRaw errors: declared errors decoded, bad bytes refused by the server, non-bytes refused locally', async () => {
  const { server, client } = await start(protocol);
  try {
    try {
      await client.callRaw('echo', msg.request.toBuffer({ rows: rows(2), action: 'declared' }));
      assert.unreachable('should fail');
    } catch (err) {
      const e = err as RpcError;
      assert.is(e.code, Code.UNKNOWN);
      assert.is((e.details as { count: number }).count, 2);
    }
    assert.is(await codeOf(client.callRaw('echo', Buffer.from([0x05, 0x01]))), Code.INVALID_ARGUMENT);
    assert.is(await codeOf(client.callRaw('echo', { rows: [] } as never)), Code.INVALID_ARGUMENT);
    assert.is(await codeOf(client.callRaw('nope', Buffer.alloc(0))), Code.UNIMPLEMENTED);
    const ok = await client.call('echo', { rows: rows(1), action: 'echo' });
    assert.is((ok as { rows: unknown[] }).rows.length, 1, 'the connection still works');
  } finally {
    await client.close();
    await server.close();
  }
});

test.run();
