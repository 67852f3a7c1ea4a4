/**
 * Uint8Array is accepted wherever Avro `bytes` or `fixed` are encoded: request fields, responses,
 * declared errors, stream elements, inline and in offload workers, small and sent by reference
 * (>= 64 KiB). A window of a larger ArrayBuffer encodes its own bytes only; decoded values are Buffers.
 */
import avro from 'avsc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, parseProtocol, type Client, type Server } from '../../src/index.js';
import { SPLICE_MIN_BYTES } from '../../src/framing/splices.js';
import { rejection } from '../helpers/echo-fixture.js';
import { DATA_IDL, blob, chunks, make, num, total, window } from './data-handlers.js';

const test = suite('Uint8Array for bytes and fixed');
const protocol = parseProtocol(DATA_IDL);
const MESSAGES = ['blob', 'make', 'chunks', 'total', 'num'];

interface Running {
  server: Server;
  client: Client;
}
const running: Record<'inline' | 'worker', Running | undefined> = { inline: undefined, worker: undefined };

async function start(where: 'inline' | 'worker'): Promise<Running> {
  const server = createServer({
    protocol,
    handlers: where === 'inline' ? { blob, make, chunks, total, num } : {},
    ...(where === 'worker'
      ? { workers: { module: new URL('./data-handlers.js', import.meta.url), messages: MESSAGES, threads: 1, offload: 'always' } }
      : {}),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, client: createClient({ protocol, endpoints: [`127.0.0.1:${port}`] }) };
}

test.before(async () => {
  running.inline = await start('inline');
  running.worker = await start('worker');
});

test.after(async () => {
  for (const r of Object.values(running)) {
    await r?.client.close();
    await r?.server.close({ graceMs: 1000 });
  }
});

const bytes = (...b: number[]): Uint8Array => window(Uint8Array.from(b));

/** Buffer `b` as plain numbers, after checking it is a Buffer (decoded values are). */
function decoded(b: unknown, what: string): number[] {
  assert.ok(Buffer.isBuffer(b), `${what} decodes as a Buffer`);
  return [...(b as Buffer)];
}

interface Blob {
  data: Buffer;
  hash: Buffer;
  maybe: Buffer | null;
  parts: Buffer[];
  named: Record<string, Buffer>;
}

const request = {
  blob: {
    data: bytes(1, 2, 3),
    hash: bytes(9, 8, 7, 6),
    maybe: bytes(5),
    parts: [bytes(), bytes(0xff, 0)],
    named: { k: bytes(4, 4, 4, 4) },
  },
};

for (const where of ['inline', 'worker'] as const) {
  test(`${where}: a request, its response and a declared error of Uint8Array windows encode exactly their bytes`, async () => {
    assert.is(request.blob.data.byteOffset, 3, 'the input is a window of a larger buffer');
    const { client } = running[where]!;
    const r = await client.call<Blob>('blob', { ...request, fail: false });
    assert.equal(decoded(r.data, 'data'), [1, 2, 3]);
    assert.equal(decoded(r.hash, 'fixed'), [9, 8, 7, 6]);
    assert.equal(decoded(r.maybe, 'a union branch'), [5]);
    assert.equal(
      r.parts.map((p, i) => decoded(p, `parts.${i}`)),
      [[], [0xff, 0]],
    );
    assert.equal(decoded(r.named.k, 'a map value'), [4, 4, 4, 4]);

    const err = await rejection(client.call('blob', { ...request, fail: true }));
    assert.is(err.code, Code.UNKNOWN, err.message);
    assert.is(err.errorType, 'avrpc.data.BlobError');
    const details = err.details as { data: Buffer; hash: Buffer };
    assert.equal(
      [decoded(details.data, 'error data'), decoded(details.hash, 'error fixed')],
      [
        [1, 2, 3],
        [9, 8, 7, 6],
      ],
    );
    // The thrown value's message shows its bytes as hex, not a Uint8Array's numbered keys.
    assert.is(err.message, 'BlobError: {"data":"010203","hash":"09080706"}');
  });

  test(`${where}: a large window (by reference, >= 64 KiB) goes as its own bytes both ways`, async () => {
    const { client } = running[where]!;
    const size = SPLICE_MIN_BYTES + 5;
    const big = window(new Uint8Array(size).fill(0x5a));
    assert.ok(big.buffer.byteLength > size);
    const echoed = await client.call<Blob>('blob', { blob: { ...request.blob, data: big }, fail: false });
    assert.is(echoed.data.length, size);
    assert.ok(
      echoed.data.every((b) => b === 0x5a),
      'no byte of the padding around the window',
    );
    const made = await client.call<Blob>('make', { size, fill: 0x33 });
    assert.ok(Buffer.isBuffer(made.data));
    assert.is(made.data.length, size);
    assert.ok(made.data.every((b) => b === 0x33));
  });

  test(`${where}: stream elements of Uint8Array windows, both directions`, async () => {
    const { client } = running[where]!;
    const got: number[][] = [];
    for await (const chunk of client.serverStream<Buffer>('chunks', { count: 3, size: 4 })) got.push(decoded(chunk, 'an element'));
    assert.equal(got, [
      [0, 1, 2, 3],
      [1, 2, 3, 4],
      [2, 3, 4, 5],
    ]);
    const sent = [bytes(1, 2), bytes(), window(new Uint8Array(SPLICE_MIN_BYTES + 1))].map((chunk) => ({ chunk }));
    assert.is(await client.clientStream<number>('total', sent), 2 + SPLICE_MIN_BYTES + 1);
  });
}

test('a fixed of the wrong size and a typed array that is not a Uint8Array are INVALID_ARGUMENT naming the field', async () => {
  const { client } = running.inline!;
  const short = await rejection(client.call('blob', { blob: { ...request.blob, hash: bytes(1, 2, 3) }, fail: false }));
  assert.is(short.code, Code.INVALID_ARGUMENT);
  assert.match(short.message, /^invalid request for blob: blob\.hash: .* is not a valid avrpc\.data\.Hash$/);
  const wide = await rejection(client.call('blob', { blob: { ...request.blob, data: new Uint16Array([1]) }, fail: false }));
  assert.is(wide.code, Code.INVALID_ARGUMENT);
  assert.match(wide.message, /^invalid request for blob: blob\.data: .* is not a valid bytes$/);
});

test('avsc itself is not patched: its own bytes and fixed types still refuse a Uint8Array', () => {
  assert.ok(protocol.type('Hash')!.isValid(new Uint8Array(4)), 'the protocol type takes it');
  assert.is(avro.Type.forSchema({ type: 'fixed', name: 'H', size: 4 }).isValid(new Uint8Array(4)), false);
  assert.is(avro.Type.forSchema('bytes').isValid(new Uint8Array(1)), false);
});

test.run();
