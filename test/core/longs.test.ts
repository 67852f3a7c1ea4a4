import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, type Protocol } from '../../src/index.js';
import { loadEcho, rejection, startServer } from '../helpers/echo-fixture.js';

/** 64-bit `long` values survive a real round trip when the protocol is loaded with `longs: 'bigint'`. */
const test = suite('64-bit longs');
let big: Protocol;
let num: Protocol;

test.before(async () => {
  big = await loadEcho('echo.avdl', 'bigint');
  num = await loadEcho('echo.avdl', 'number');
});

const bigItem = (id: bigint) => ({ id, name: 'big', tags: [], score: 0, blob: Buffer.alloc(0) });
const EXTREMES = [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, -(2n ** 53n) - 1n, 0n, 1n, -1n];

test('loadProtocol(path, { longs: "bigint" }) round-trips 2^63-1 and the other extremes exactly', async () => {
  const seen: unknown[] = [];
  const started = await startServer({
    protocol: big,
    handlers: {
      echo: (req: { item: { id: bigint } }) => {
        seen.push(req.item.id);
        return req.item;
      },
    },
  });
  const client = createClient({ protocol: big, endpoints: [started.endpoint] });
  try {
    for (const id of EXTREMES) {
      const r = await client.call<{ id: bigint }>('echo', { item: bigItem(id) });
      assert.is(typeof r.id, 'bigint');
      assert.is(r.id, id);
    }
    assert.equal(seen, EXTREMES, 'the handler saw the exact values too');
    assert.is(big.fingerprint.toString('hex'), num.fingerprint.toString('hex'), 'same protocol on the wire');
  } finally {
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('a bigint client and a number server interoperate for safe values and refuse unsafe ones with a code', async () => {
  const started = await startServer({ protocol: num, handlers: { echo: (req: { item: unknown }) => req.item } });
  const client = createClient({ protocol: big, endpoints: [started.endpoint] });
  try {
    const r = await client.call<{ id: bigint }>('echo', { item: bigItem(2n ** 52n + 3n) });
    assert.is(r.id, 2n ** 52n + 3n);
    // The number server cannot represent 2^63-1: it must refuse, not round it.
    const err = await rejection(client.call('echo', { item: bigItem(2n ** 63n - 1n) }));
    assert.is(err.code, Code.INVALID_ARGUMENT, `${err.codeName}: ${err.message}`);
  } finally {
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test('a number client refuses to send a value beyond 2^53 instead of losing precision', async () => {
  const started = await startServer({ protocol: big, handlers: { echo: (req: { item: unknown }) => req.item } });
  const client = createClient({ protocol: num, endpoints: [started.endpoint] });
  try {
    const err = await rejection(client.call('echo', { item: { id: 2 ** 60, name: 'x', tags: [], score: 0, blob: Buffer.alloc(0) } }));
    assert.is(err.code, Code.INVALID_ARGUMENT);
    const ok = await client.call<{ id: number }>('echo', {
      item: { id: 2 ** 52 + 3, name: 'x', tags: [], score: 0, blob: Buffer.alloc(0) },
    });
    assert.is(ok.id, 2 ** 52 + 3);
  } finally {
    await client.close();
    await started.server.close({ graceMs: 1000 });
  }
});

test.run();
