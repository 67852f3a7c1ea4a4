/**
 * Worker side of bounded-decode.test.ts: generates writer/reader schema pairs and adversarial
 * encodings, decodes each through the resolver and counts the work done (every avsc Tap read or skip,
 * and every `null` read or skip, which touches no byte). Runs in a worker so that a decode that never
 * ends (as on avsc's unbounded skip paths) is reported by the test instead of freezing it. Posts
 * `{ progress }` before each case and `{ done: summary }` at the end.
 */
import { parentPort, workerData } from 'node:worker_threads';
import avro from 'avsc';
import { MAX_ZERO_SIZE_ITEMS } from '../../src/framing/avro-limits.js';
import { viewBytesHook } from '../../src/codec/view-bytes.js';
import { decodeExact } from '../../src/connection/payload.js';
import {
  derive,
  gen,
  genType,
  lyingValue,
  mayHoldZeroSize,
  mutateBytes,
  nodes,
  varint,
  wideRecord,
  type Schema,
} from '../helpers/avro-gen.js';
import { seeded } from '../helpers/prng.js';

/** What the worker reports. */
export interface Summary {
  cases: number;
  values: number;
  errors: number;
  /** Cases whose schemas did not resolve (generator corner cases), not decoded. */
  unresolved: number;
  /** Cases whose work exceeded their bound: index, kind, work, bound. */
  overBound: string[];
  /** Errors that are not Errors (a decode must throw an Error, never anything else). */
  oddThrows: string[];
  maxWork: number;
}

let work = 0;

/** Counts every Tap read and skip (found through an int read: avsc does not export Tap). */
function installCounters(): void {
  const intProto = Object.getPrototypeOf(avro.Type.forSchema('int')) as { _read(tap: object): unknown };
  const original = intProto._read;
  let tapProto: Record<string, unknown> | undefined;
  intProto._read = function (this: unknown, tap: object) {
    tapProto = Object.getPrototypeOf(tap) as Record<string, unknown>;
    return original.call(this, tap);
  };
  avro.Type.forSchema('int').fromBuffer(Buffer.from([2]));
  intProto._read = original;
  for (const name of Object.keys(tapProto!)) {
    const fn = tapProto![name];
    if (typeof fn !== 'function' || !/^(read|skip)/.test(name)) continue;
    tapProto![name] = function (this: unknown, ...args: unknown[]) {
      work++;
      return (fn as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  // null touches no byte: count it too (before any resolver copies its `_read`).
  const nullProto = Object.getPrototypeOf(avro.Type.forSchema('null')) as { _read(): null; _skip(): void };
  nullProto._read = () => {
    work++;
    return null;
  };
  nullProto._skip = () => {
    work++;
  };
}

export function runCases(seed: number, count: number, progress: (i: number) => void): Summary {
  installCounters();
  const rnd = seeded(seed);
  const s: Summary = { cases: 0, values: 0, errors: 0, unresolved: 0, overBound: [], oddThrows: [], maxWork: 0 };
  for (let i = 0; i < count; i++) {
    progress(i);
    const g = gen(rnd, `T${i}_`);
    // The peer's (writer's) record: generated fields, plus one the reader lacks whose value lies.
    const inner = genType(g, 1);
    // One case in ten: an array of a wide record (many null fields) sent honestly, item after item.
    const wide = rnd() < 0.1;
    const withInt = rnd() < 0.8;
    const wideItems = wideRecord(g, 500 + Math.floor(rnd() * 500), withInt) as { name: string };
    const extra: Schema = wide
      ? { type: 'array', items: wideItems }
      : genType(g, 1, (['array', 'map', 'string', 'bytes', 'record', 'union'] as const)[Math.floor(rnd() * 6)]);
    const writerSchema: Schema = {
      type: 'record',
      name: `W${i}`,
      fields: [
        { name: 'a', type: inner },
        { name: 'x', type: extra },
      ],
    };
    const readerSchema = derive(g, { type: 'record', name: `W${i}`, fields: [{ name: 'a', type: inner }] });
    const keepX = rnd() < 0.25; // sometimes the reader has x too: the read and resolve paths, not the skip path
    // A reader of the wide record keeps only its int (as a later version would).
    const readerX = wide ? { type: 'array', items: { ...wideItems, fields: [{ name: 'v', type: 'int', default: 0 }] } } : derive(g, extra);
    const fullReader: Schema = keepX
      ? { ...(readerSchema as object), fields: [...(readerSchema as { fields: object[] }).fields, { name: 'x', type: readerX }] }
      : readerSchema;
    let reader: avro.Type;
    let writer: avro.Type;
    let resolver: avro.Resolver;
    try {
      reader = avro.Type.forSchema(fullReader as avro.Schema, { typeHook: viewBytesHook });
      writer = avro.Type.forSchema(writerSchema as avro.Schema, { typeHook: viewBytesHook });
      resolver = reader.createResolver(writer);
    } catch {
      s.unresolved++;
      continue;
    }
    const a = avro.Type.forSchema(inner as avro.Schema, { typeHook: viewBytesHook }).toBuffer(
      avro.Type.forSchema(inner as avro.Schema, { typeHook: viewBytesHook }).random(),
    );
    const r = rnd();
    let bytes: Buffer;
    let kind: string;
    if (wide) {
      const items = 2000 + Math.floor(rnd() * 2000);
      bytes = Buffer.concat([a, varint(items), Buffer.alloc(withInt ? items : 0, 2), Buffer.from([0])]);
      kind = 'wide x';
    } else if (r < 0.6) {
      bytes = Buffer.concat([a, lyingValue(g, extra)]);
      kind = 'lying x';
    } else if (r < 0.85) {
      bytes = mutateBytes(g, writer.toBuffer(writer.random()));
      kind = 'mutated';
    } else {
      bytes = Buffer.concat([lyingValue(g, inner), a]);
      kind = 'lying a';
    }
    s.cases++;
    work = 0;
    try {
      decodeExact(reader, bytes, 0, resolver);
      s.values++;
    } catch (err) {
      if (!(err instanceof Error)) s.oddThrows.push(`case ${i}: threw ${String(err)}`);
      s.errors++;
    }
    // Each item that is not zero-size costs a byte at least, and zero-size ones have a fixed allowance:
    // work per item is bounded by the reader's schema, whatever the size of the writer's (plus one
    // writer value read past the end).
    const slack = mayHoldZeroSize(writerSchema) ? MAX_ZERO_SIZE_ITEMS : 0;
    const bound = 4 * ((nodes(fullReader) + 1) * (bytes.length + 1 + slack) + nodes(writerSchema));
    if (work > bound)
      s.overBound.push(`case ${i} (${kind}, ${bytes.length} bytes, ${JSON.stringify(writerSchema).slice(0, 200)}): ${work} > ${bound}`);
    s.maxWork = Math.max(s.maxWork, work);
  }
  return s;
}

if (parentPort !== null) {
  const { seed, count } = workerData as { seed: number; count: number };
  const port = parentPort;
  port.postMessage({ done: runCases(seed, count, (i) => port.postMessage({ progress: i })) });
}
