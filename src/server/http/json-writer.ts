/**
 * The direct printers of json-direct.ts's scheme: a handler's value (valid already: the server
 * checked it) printed as Avro JSON straight into {@link JsonBytes}, one printer built per type. What
 * they do not expect is a {@link Miss} and the route prints through the general path.
 */
import type avro from 'avsc';
import type { BytesMode, Shape } from '../../codec/json-input.js';
import { JsonBytes } from './json-bytes.js';
import { isObject, miss, nullable } from './json-direct.js';

/** Prints a value of the server's type (already valid) as Avro JSON into `out`; throws {@link Miss}. */
export type DirectWriter = (value: unknown, out: JsonBytes) => void;

/** The string mode's long, as longs.ts spells it (what its values are once valid). */
const DECIMAL = /^(?:0|-?[1-9]\d{0,18})$/;
const NULL = ascii('null');
const TRUE = ascii('true');
const FALSE = ascii('false');
const INT32_MAX = 0x7fffffff;

function ascii(s: string): Uint8Array {
  return Buffer.from(s, 'latin1');
}

/** A number as `JSON.stringify` prints it: NaN and the infinities as null. */
function number(v: number, out: JsonBytes): void {
  if (v === (v | 0)) out.int(v);
  else if (Number.isFinite(v)) out.ascii(String(v));
  else out.raw(NULL);
}

/** A printer for `type` (a server protocol's), or undefined when the direct path does not handle it. */
export function directWriter(type: avro.Type, bytes: BytesMode): DirectWriter | undefined {
  const t = type as unknown as Shape;
  switch (t.typeName) {
    case 'null':
      return (v, out) => (v === null ? out.raw(NULL) : miss());
    case 'boolean':
      return (v, out) => out.raw(v === true ? TRUE : v === false ? FALSE : miss());
    case 'int':
      return (v, out) => (typeof v === 'number' && (v | 0) === v ? out.int(v) : miss());
    case 'long':
    case 'abstract:long':
      // Valid already: a safe integer, a bigint, or a decimal string.
      return (v, out) => {
        if (typeof v === 'number' && Number.isSafeInteger(v)) {
          if (v <= INT32_MAX && v >= -INT32_MAX) out.int(v);
          else out.ascii(String(v));
        } else if (typeof v === 'bigint') out.ascii(v.toString());
        else if (typeof v === 'string' && DECIMAL.test(v)) out.ascii(v);
        else miss();
      };
    case 'float':
      return (v, out) => (typeof v === 'number' ? number(Math.fround(v), out) : miss());
    case 'double':
      return (v, out) => (typeof v === 'number' ? number(v, out) : miss());
    case 'string':
    case 'enum':
      return (v, out) => (typeof v === 'string' ? out.string(v) : miss());
    case 'bytes':
    case 'fixed':
      if (bytes === 'base64')
        return (v, out) => {
          if (!(v instanceof Uint8Array)) return miss();
          out.byte(0x22);
          out.ascii(Buffer.from(v.buffer, v.byteOffset, v.length).toString('base64'));
          out.byte(0x22);
        };
      return (v, out) => (v instanceof Uint8Array ? out.latin1Bytes(v) : miss());
    case 'array': {
      const item = directWriter(t.itemsType!, bytes);
      if (item === undefined) return undefined;
      return (v, out) => {
        if (!Array.isArray(v)) return miss();
        out.byte(0x5b);
        for (let i = 0; i < v.length; i++) {
          if (i > 0) out.byte(0x2c);
          item(v[i], out);
        }
        out.byte(0x5d);
      };
    }
    case 'map': {
      const value = directWriter(t.valuesType!, bytes);
      if (value === undefined) return undefined;
      return (v, out) => {
        if (!isObject(v)) return miss();
        out.byte(0x7b);
        let first = true;
        for (const k of Object.keys(v)) {
          if (!first) out.byte(0x2c);
          first = false;
          out.string(k);
          out.byte(0x3a);
          value(v[k], out);
        }
        out.byte(0x7d);
      };
    }
    case 'record': {
      const fields = t.fields!;
      const writers = fields.map((f) => directWriter(f.type, bytes));
      if (writers.some((w) => w === undefined)) return undefined;
      if (fields.length === 0) return (v, out) => (isObject(v) ? out.raw(ascii('{}')) : miss());
      const defaults = fields.map((f) => () => f.defaultValue() as unknown);
      // Each field's `{"name":` or `,"name":` as bytes.
      const heads = fields.map((f, i) => Buffer.from(`${i === 0 ? '{' : ','}${JSON.stringify(f.name)}:`, 'utf8'));
      // Compiled per record type, as the reader is: each field loaded by its name (a monomorphic
      // load). As the encoder does: an undefined field with a default is its default.
      const writes = fields.map(
        (f, i) => `x = v[${JSON.stringify(f.name)}]; if (x === undefined) x = d[${i}](); out.raw(h[${i}]); w[${i}](x, out);`,
      );
      const source = `return function writeRecord(v, out) {
  if (!isObject(v)) return miss();
  let x;
  ${writes.join('\n  ')}
  out.byte(0x7d);
};`;
      return new Function('isObject', 'miss', 'w', 'd', 'h', source)(isObject, miss, writers, defaults, heads) as DirectWriter;
    }
    default: {
      const inner = nullable(t);
      const write = inner === undefined ? undefined : directWriter(inner, bytes);
      if (write === undefined) return undefined;
      const head = Buffer.from(`{${JSON.stringify((inner as unknown as Shape).branchName)}:`, 'utf8');
      return (v, out) => {
        if (v === null) return out.raw(NULL);
        out.raw(head);
        write(v, out);
        out.byte(0x7d);
      };
    }
  }
}
