/**
 * `--bytes base64` on output: a value already in Avro's JSON form (bytes and fixed as strings of code
 * points 0-255, unions as null or `{"branch": value}`) with its bytes and fixed rewritten as base64.
 * Input goes the other way in json-input.ts, where each value is checked anyway.
 */
import type avro from 'avsc';
import type { BytesMode } from './json-input.js';

interface Shape {
  typeName: string;
  fields?: Array<{ name: string; type: avro.Type }>;
  types?: avro.Type[];
  itemsType?: avro.Type;
  valuesType?: avro.Type;
  underlyingType?: avro.Type;
  branchName?: string;
}

/** `json` (Avro JSON form of a value of `type`) with bytes written as `bytes` says; unchanged for latin1. */
export function bytesForOutput(type: avro.Type, json: unknown, bytes: BytesMode): unknown {
  return bytes === 'latin1' ? json : toBase64(type, json);
}

function toBase64(type: avro.Type, json: unknown): unknown {
  const t = type as unknown as Shape;
  if (json === null || json === undefined) return json;
  switch (t.typeName) {
    case 'bytes':
    case 'fixed':
      return Buffer.from(json as string, 'latin1').toString('base64');
    case 'array':
      return (json as unknown[]).map((item) => toBase64(t.itemsType!, item));
    case 'map': {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(json as Record<string, unknown>)) define(out, k, toBase64(t.valuesType!, v));
      return out;
    }
    case 'record':
    case 'error': {
      const obj = json as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const field of t.fields!) if (field.name in obj) define(out, field.name, toBase64(field.type, obj[field.name]));
      return out;
    }
    case 'union:unwrapped':
    case 'union:wrapped': {
      // In JSON form a union is null (handled above) or {"branch": value}.
      const [key, value] = Object.entries(json as Record<string, unknown>)[0]!;
      const branch = t.types!.find((b) => (b as unknown as Shape).branchName === key);
      return { [key]: branch === undefined ? value : toBase64(branch, value) };
    }
    default:
      return t.underlyingType !== undefined ? toBase64(t.underlyingType, json) : json;
  }
}

/** Like assignment, but a key `__proto__` stays an ordinary property. */
function define(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}
