/**
 * Issue 14: every Avro decode is bounded by the bytes actually present. A property test over generated
 * writer/reader schema pairs (fields the reader lacks, renamed, nested, unions) and adversarial
 * encodings (block counts of 2^40, negative counts with huge or negative sizes, huge string lengths,
 * truncations): the decode through the resolver returns or throws, and its work, counted (not timed),
 * stays within a bound linear in the bytes. The cases run in a worker: on avsc's own skip paths a
 * 2^40 count loops for hours, and the worker is then ended and the test fails (a hang detector, not a
 * timing threshold). Deterministic from its seed: AVRPC_DECODE_SEED=<n> replays a run.
 */
import { Worker } from 'node:worker_threads';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import avro from 'avsc';
import { MAX_ZERO_SIZE_ITEMS } from '../../src/framing/avro-limits.js';
import { decodeExact } from '../../src/connection/payload.js';
import type { Summary } from './bounded-decode-cases.js';
import { varint } from '../helpers/avro-gen.js';

const test = suite('codec: bounded decode');
const SEED = Number(process.env['AVRPC_DECODE_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const CASES = 2000;
/** Hang detector: a bounded run of all the cases takes about 10 s on a busy 2-core machine. */
const HANG_GUARD_MS = 120_000;

function runInWorker(seed: number, count: number): Promise<Summary> {
  const worker = new Worker(new URL('./bounded-decode-cases.js', import.meta.url), { workerData: { seed, count } });
  let last = -1;
  return new Promise<Summary>((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`decode of case ${last} never ended (seed ${seed})`)), HANG_GUARD_MS);
    worker.on('message', (m: { progress?: number; done?: Summary }) => {
      if (m.progress !== undefined) last = m.progress;
      if (m.done !== undefined) {
        clearTimeout(guard);
        resolve(m.done);
      }
    });
    worker.on('error', (err) => {
      clearTimeout(guard);
      reject(err);
    });
  }).finally(() => worker.terminate());
}

test(`generated schema pairs and lying encodings: every decode returns or throws, with work linear in its bytes (seed ${SEED})`, async () => {
  const s = await runInWorker(SEED, CASES);
  console.log(
    `\n  seed ${SEED}: ${s.cases} decoded (${s.values} values, ${s.errors} errors), ${s.unresolved} pairs unresolved; most work ${s.maxWork} steps`,
  );
  assert.equal(s.overBound.slice(0, 3), [], 'work within the bound');
  assert.equal(s.oddThrows.slice(0, 3), [], 'failures are Errors');
  assert.ok(s.cases > CASES * 0.8, 'most generated pairs resolve');
  assert.ok(s.errors > s.cases / 2, 'lying encodings are refused');
});

const skipper = (extra: avro.Schema) => {
  const writer = avro.Type.forSchema({
    type: 'record',
    name: 'W',
    fields: [
      { name: 'a', type: 'int' },
      { name: 'x', type: extra },
    ],
  });
  const reader = avro.Type.forSchema({ type: 'record', name: 'W', fields: [{ name: 'a', type: 'int' }] });
  return { reader, resolver: reader.createResolver(writer), writer };
};

test('a skipped array whose negative block size points backwards is refused (avsc walked back to the same block forever)', async () => {
  // In a worker: on avsc's own skip this never ends.
  const worker = new Worker(
    `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.limits).then(async () => {
      const avro = (await import('avsc')).default;
      const w = avro.Type.forSchema({ type: 'record', name: 'W', fields: [{ name: 'a', type: 'int' }, { name: 'x', type: { type: 'array', items: 'long' } }] });
      const r = avro.Type.forSchema({ type: 'record', name: 'W', fields: [{ name: 'a', type: 'int' }] });
      // a = 1, then a block of -1 items whose byte size is -2: back over the count and the size.
      try { r.fromBuffer(Buffer.from([2, 1, 3]), r.createResolver(w)); parentPort.postMessage('value'); }
      catch (err) { parentPort.postMessage(err.message); }
    });
  `,
    { eval: true, workerData: { limits: new URL('../../src/framing/avro-limits.js', import.meta.url).href } },
  );
  try {
    const outcome = await new Promise<string>((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error('the skip never ended')), HANG_GUARD_MS);
      worker.once('message', (m: string) => {
        clearTimeout(guard);
        resolve(m);
      });
      worker.once('error', (err) => {
        clearTimeout(guard);
        reject(err);
      });
    });
    assert.match(outcome, /malformed Avro: block claims -2 bytes/);
  } finally {
    await worker.terminate();
  }
});

test('claims beyond the bytes are refused on the read, skip and resolve paths, before any item is read', () => {
  const huge = varint(2 ** 40);
  for (const extra of [
    { type: 'array', items: 'long' },
    { type: 'map', values: 'long' },
    { type: 'array', items: { type: 'array', items: 'int' } },
  ] as avro.Schema[]) {
    const { reader, resolver, writer } = skipper(extra);
    const bytes = Buffer.concat([Buffer.from([2]), huge]);
    assert.throws(
      () => decodeExact(reader, bytes, 0, resolver),
      /malformed Avro: block claims 1099511627776 items with 0 bytes left/,
      'skip',
    );
    assert.throws(() => decodeExact(writer, bytes, 0, undefined), /malformed Avro: block claims/, 'read');
    assert.throws(
      () => decodeExact(writer, bytes, 0, writer.createResolver(skipper(extra).writer)),
      /malformed Avro: block claims/,
      'resolve',
    );
  }
  // Negative counts: the byte size must lie within the buffer.
  const { reader, resolver } = skipper({ type: 'array', items: 'long' });
  assert.throws(
    () => decodeExact(reader, Buffer.concat([Buffer.from([2]), varint(-5), varint(2 ** 40)]), 0, resolver),
    /block claims 1099511627776 bytes/,
  );
  // A valid negative-count block is skipped by its size.
  assert.is(
    (decodeExact(reader, Buffer.concat([Buffer.from([2]), varint(-2), varint(2), Buffer.from([4, 6, 0])]), 0, resolver) as { a: number }).a,
    1,
  );
  // Huge and negative string lengths: refused, not read as empty or default values.
  for (const len of [2 ** 40, -1]) {
    const s = skipper('string');
    assert.throws(() => decodeExact(s.reader, Buffer.concat([Buffer.from([2]), varint(len)]), 0, s.resolver), /truncated payload/);
    assert.throws(() => decodeExact(s.writer, Buffer.concat([Buffer.from([2]), varint(len)]), 0, undefined), /truncated payload/);
  }
});

test('zero-size items may outnumber the bytes, up to the allowance per decode, on every path', () => {
  for (const items of ['null', { type: 'record', name: 'Empty', fields: [] }, { type: 'fixed', name: 'F0', size: 0 }] as avro.Schema[]) {
    const { reader, resolver, writer } = skipper({ type: 'array', items });
    const ok = Buffer.concat([Buffer.from([2]), varint(MAX_ZERO_SIZE_ITEMS), Buffer.from([0])]);
    assert.is((decodeExact(writer, ok, 0, undefined) as { x: unknown[] }).x.length, MAX_ZERO_SIZE_ITEMS);
    assert.is((decodeExact(reader, ok, 0, resolver) as { a: number }).a, 1);
    // Spread over blocks, or nested, the allowance is the decode's, not the block's.
    const twice = Buffer.concat([Buffer.from([2]), varint(MAX_ZERO_SIZE_ITEMS), varint(MAX_ZERO_SIZE_ITEMS), Buffer.from([0])]);
    assert.throws(() => decodeExact(writer, twice, 0, undefined), /zero-size items beyond the bytes/);
    assert.throws(() => decodeExact(reader, twice, 0, resolver), /zero-size items beyond the bytes/);
  }
  const nested = skipper({ type: 'array', items: { type: 'array', items: 'null' } });
  const blocks = Buffer.concat([
    Buffer.from([2]),
    varint(8),
    ...Array.from({ length: 8 }, () => Buffer.concat([varint(MAX_ZERO_SIZE_ITEMS / 4), Buffer.from([0])])),
    Buffer.from([0]),
  ]);
  assert.throws(
    () => decodeExact(nested.writer, blocks, 0, undefined),
    /zero-size items beyond the bytes/,
    'an array of arrays of null cannot claim 8 x 16384 nulls in 34 bytes',
  );
  assert.throws(() => decodeExact(nested.reader, blocks, 0, nested.resolver), /zero-size items beyond the bytes/);
});

test('an invalid union index on a skipped field is a clear error', () => {
  const { reader, resolver } = skipper(['null', 'string']);
  assert.throws(() => decodeExact(reader, Buffer.from([2, 8]), 0, resolver), /malformed Avro: invalid union index 4/);
});

test.run();
