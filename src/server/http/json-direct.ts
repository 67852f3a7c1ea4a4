/**
 * Avro JSON straight to and from the server's values, for the types where that is plain: a reader of
 * `JSON.parse` output (here) and a printer of a handler's value (json-writer.ts), each built once
 * per type. They give what the general path (codec/avro-json.ts: checked JSON, avsc's coercing copy,
 * then an Avro binary round trip into the server's types) gives for valid input, at a fraction of
 * its cost; anything they do not expect (a wrapped union, a long as a string, an unknown field, a
 * logical type) is a {@link Miss}, and the caller takes the general path, which also words the errors.
 */
import type avro from 'avsc';
import { isStringLong } from '../../codec/longs.js';
import type { BytesMode, Shape } from '../../codec/json-input.js';

/** The value is not one the direct path handles: use the general one. Thrown without a stack. */
export class Miss {}
const MISS = new Miss();

/** JSON (as `JSON.parse` gives it) to a value of the server's type; throws {@link Miss}. */
export type DirectReader = (json: unknown) => unknown;

type LongKind = 'number' | 'bigint' | 'string';
const longKind = (t: Shape): LongKind => (t.typeName === 'long' ? 'number' : isStringLong(t as unknown as avro.Type) ? 'string' : 'bigint');

/**
 * `s` when it is well-formed UTF-16; a lone surrogate is a {@link Miss} (avsc encodes it as three
 * bytes that decode as three U+FFFD: the general path gives exactly that).
 */
export const wellFormed = (s: string): string => ((s as unknown as { isWellFormed(): boolean }).isWellFormed() ? s : miss());
// eslint-disable-next-line no-control-regex -- the range starts at U+0000 on purpose
const ABOVE_LATIN1 = /[^\u0000-\u00ff]/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** A plain JSON object (not null, not an array). */
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The `[null, X]` or `[X, null]` union's X, else undefined. */
export function nullable(t: Shape): avro.Type | undefined {
  if (t.typeName !== 'union:unwrapped' || t.types!.length !== 2) return undefined;
  const [a, b] = t.types! as unknown as Shape[];
  if (a!.typeName === 'null' && b!.typeName !== 'null') return t.types![1];
  if (b!.typeName === 'null' && a!.typeName !== 'null') return t.types![0];
  return undefined;
}

/** A reader for `type` (a server protocol's), or undefined when the direct path does not handle it. */
export function directReader(type: avro.Type, bytes: BytesMode): DirectReader | undefined {
  const t = type as unknown as Shape;
  switch (t.typeName) {
    case 'null':
      return (j) => (j === null ? null : miss());
    case 'boolean':
      return (j) => (typeof j === 'boolean' ? j : miss());
    case 'int':
      return (j) => (typeof j === 'number' && (j | 0) === j ? j | 0 : miss());
    case 'long':
    case 'abstract:long': {
      const kind = longKind(t);
      if (kind === 'number') return (j) => (Number.isSafeInteger(j) ? j : miss());
      if (kind === 'bigint') return (j) => (Number.isSafeInteger(j) ? BigInt(j as number) : miss());
      return (j) => (Number.isSafeInteger(j) ? String(j) : miss());
    }
    case 'float':
      return (j) => (typeof j === 'number' ? Math.fround(j) : miss());
    case 'double':
      return (j) => (typeof j === 'number' ? j : miss());
    case 'string':
      return (j) => (typeof j === 'string' ? wellFormed(j) : miss());
    case 'bytes':
    case 'fixed': {
      const size = t.size;
      return (j) => {
        if (typeof j !== 'string') return miss();
        let b: Buffer;
        if (bytes === 'base64') {
          if (!BASE64.test(j)) return miss();
          b = Buffer.from(j, 'base64');
        } else {
          if (ABOVE_LATIN1.test(j)) return miss();
          b = Buffer.from(j, 'latin1');
        }
        return size === undefined || b.length === size ? b : miss();
      };
    }
    case 'enum': {
      const symbols = new Set(t.symbols);
      return (j) => (typeof j === 'string' && symbols.has(j) ? j : miss());
    }
    case 'array': {
      const item = directReader(t.itemsType!, bytes);
      if (item === undefined) return undefined;
      return (j) => {
        if (!Array.isArray(j)) return miss();
        const out = new Array<unknown>(j.length);
        for (let i = 0; i < j.length; i++) out[i] = item(j[i]);
        return out;
      };
    }
    case 'map': {
      const value = directReader(t.valuesType!, bytes);
      if (value === undefined) return undefined;
      return (j) => {
        if (!isObject(j)) return miss();
        const out: Record<string, unknown> = {};
        for (const k of Object.keys(j)) {
          if (k === '__proto__') return miss();
          out[wellFormed(k)] = value(j[k]);
        }
        return out;
      };
    }
    case 'record': {
      const fields = t.fields!;
      const readers = fields.map((f) => directReader(f.type, bytes));
      if (readers.some((r) => r === undefined)) return undefined;
      const defaults = fields.map((f) => f.defaultValue() !== undefined);
      // Compiled per record type (as avsc compiles its own): each field read by its name, a
      // monomorphic load where a loop's `j[names[i]]` is a megamorphic one, and no spread call.
      // Missing: the constructor puts the default in (as decoding does); no default is an error.
      // An unknown key (avsc would ignore it): the general path names it.
      const args = fields.map((_, i) => `a${i}`);
      const reads = fields.map(
        (f, i) =>
          `v = j[${JSON.stringify(f.name)}]; if (v === undefined) { if (!${defaults[i]}) return miss(); } else { seen++; a${i} = r[${i}](v); }`,
      );
      const source = `return function readRecord(j) {
  if (!isObject(j)) return miss();
  let seen = 0, v${args.map((a) => `, ${a}`).join('')};
  ${reads.join('\n  ')}
  if (Object.keys(j).length !== seen) return miss();
  return new Record(${args.join(', ')});
};`;
      return new Function('isObject', 'miss', 'r', 'Record', source)(isObject, miss, readers, t.recordConstructor) as DirectReader;
    }
    default: {
      const inner = nullable(t);
      const read = inner === undefined ? undefined : directReader(inner, bytes);
      if (read === undefined) return undefined;
      const branch = (inner as unknown as Shape).branchName!;
      return (j) => {
        if (j === null) return null;
        if (!isObject(j)) return miss();
        const v = j[branch];
        return v !== undefined && Object.keys(j).length === 1 ? read(v) : miss();
      };
    }
  }
}

/** Throws {@link Miss}. */
export function miss(): never {
  throw MISS;
}

/**
 * JSON text as `JSON.parse` reads it; undefined when it does not parse (the general parser words the
 * error). Exact for what the readers take: an integer literal beyond 2^53 parses rounded, but a long
 * reader takes only safe integers, so such a value is a {@link Miss} and the general parser, which
 * keeps it as a BigInt, reads it; where a double wants it, both round it the same way.
 */
export function parseDirect(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
