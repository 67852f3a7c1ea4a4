/**
 * Checks a value read from Avro JSON against its type before avsc's coercing copy sees it, naming
 * the path of the first bad value. avsc's copy has no path in its errors and gets some inputs wrong:
 * a missing record reads `undefined.field` (a TypeError), bytes above \xff lose their high byte
 * (`Buffer.from(s, 'binary')`), and the BigInts that `parseJson` makes of large integer literals are
 * refused even where a double wants them.
 */
import type avro from 'avsc';

/** A value at `path` does not fit its type; `path` is dotted field names, map keys and `[i]`. */
export class JsonInputError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;
const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;

/** A record field as avsc exposes it (the parts the JSON readers and writers use). */
export interface Field {
  name: string;
  type: avro.Type;
  defaultValue(): unknown;
}
/** An avsc type seen through the properties its kinds expose (the JSON readers and writers use these). */
export interface Shape {
  typeName: string;
  fields?: Field[];
  types?: avro.Type[];
  symbols?: string[];
  size?: number;
  itemsType?: avro.Type;
  valuesType?: avro.Type;
  underlyingType?: avro.Type;
  branchName?: string;
  recordConstructor?: new (...args: unknown[]) => object;
}

/**
 * How bytes and fixed values are written in JSON: `latin1` is Avro's JSON encoding (a string of code
 * points 0-255, one per byte); `base64` is what grpcurl users expect of bytes (`--bytes base64`).
 */
export type BytesMode = 'latin1' | 'base64';

/** The choices of `--bytes`. */
export const BYTES_MODES: readonly BytesMode[] = ['latin1', 'base64'];

/**
 * `json` checked against `type`, with integer literals beyond 2^53 (BigInt) turned into numbers
 * where a float or double is expected, base64 bytes (in `base64` mode) turned into Avro's strings
 * of code points, and union branches named by their simple name (`Tag` for `avrpc.other.Tag`, where
 * no other branch has that simple name) turned into the full name. Throws JsonInputError for the
 * first value that does not fit.
 */
export function checkJsonInput(type: avro.Type, json: unknown, path = '', bytes: BytesMode = 'latin1'): unknown {
  const t = type as unknown as Shape;
  const fail = (problem: string): never => {
    throw new JsonInputError(path, path === '' ? problem : `${path}: ${problem}`);
  };
  const at = (name: string): string => (path === '' ? name : `${path}.${name}`);
  switch (t.typeName) {
    case 'null':
      return json === null ? json : fail(`expected null, got ${describe(json)}`);
    case 'boolean':
      return typeof json === 'boolean' ? json : fail(`expected a boolean, got ${describe(json)}`);
    case 'string':
      return typeof json === 'string' ? json : fail(`expected a string, got ${describe(json)}`);
    case 'int':
      if (typeof json === 'bigint' || (typeof json === 'number' && Number.isInteger(json) && (json < INT_MIN || json > INT_MAX))) {
        return fail(`${String(json)} is out of range for int (${INT_MIN} to ${INT_MAX})`);
      }
      return typeof json === 'number' && Number.isInteger(json) ? json : fail(`expected an int, got ${describe(json)}`);
    case 'long':
    case 'abstract:long': {
      if (typeof json === 'number' && Number.isInteger(json)) return json;
      if (typeof json === 'string' && /^-?\d+$/.test(json)) json = BigInt(json);
      if (typeof json !== 'bigint') return fail(`expected a long, got ${describe(json)}`);
      return json >= LONG_MIN && json <= LONG_MAX ? json : fail(`${json} is out of range for long (64 bits)`);
    }
    case 'float':
    case 'double':
      // A large integer literal is valid JSON for a double: it only loses digits, as in JSON.parse.
      if (typeof json === 'bigint') return Number(json);
      return typeof json === 'number' ? json : fail(`expected a ${t.typeName}, got ${describe(json)}`);
    case 'bytes':
    case 'fixed': {
      if (bytes === 'base64') {
        if (typeof json !== 'string') return fail(`expected ${t.typeName} as a base64 string, got ${describe(json)}`);
        json = fromBase64(json, fail);
      }
      if (typeof json !== 'string') return fail(`expected ${t.typeName} as a string of code points 0-255, got ${describe(json)}`);
      // eslint-disable-next-line no-control-regex -- the range starts at U+0000 on purpose
      const high = /[^\u0000-\u00ff]/.exec(json);
      if (high !== null) {
        const hex = high[0].codePointAt(0)!.toString(16).padStart(4, '0');
        return fail(
          `character \\u${hex} at index ${high.index} is above \\u00ff: ${t.typeName} are JSON strings of code points 0-255, one per byte`,
        );
      }
      if (t.size !== undefined && json.length !== t.size) return fail(`expected ${t.size} bytes for fixed, got ${json.length}`);
      return json;
    }
    case 'enum':
      return typeof json === 'string' && t.symbols!.includes(json)
        ? json
        : fail(`expected one of ${t.symbols!.join(', ')}, got ${describe(json)}`);
    case 'array':
      if (!Array.isArray(json)) return fail(`expected an array, got ${describe(json)}`);
      return json.map((item, i) => checkJsonInput(t.itemsType!, item, `${path}[${i}]`, bytes));
    case 'map': {
      if (!isObject(json)) return fail(`expected an object (map), got ${describe(json)}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(json)) define(out, k, checkJsonInput(t.valuesType!, v, at(k), bytes));
      return out;
    }
    case 'record':
    case 'error': {
      if (!isObject(json))
        return fail(`expected ${path === '' ? 'the parameters as one JSON object' : 'an object (record)'}, got ${describe(json)}`);
      const out: Record<string, unknown> = {};
      for (const field of t.fields!) {
        const v = json[field.name];
        if (v === undefined) {
          if (field.defaultValue() === undefined)
            throw new JsonInputError(at(field.name), `missing field ${at(field.name)} (${typeLabel(field.type)})`);
          continue;
        }
        define(out, field.name, checkJsonInput(field.type, v, at(field.name), bytes));
      }
      // avsc ignores unknown keys: a misspelt field with a default would silently take the default.
      const unknown = Object.keys(json).find((k) => !t.fields!.some((f) => f.name === k));
      if (unknown !== undefined) {
        throw new JsonInputError(
          at(unknown),
          `unknown field ${at(unknown)} (${t.fields!.length === 0 ? 'it has no fields' : `fields: ${t.fields!.map((f) => f.name).join(', ')}`})`,
        );
      }
      return out;
    }
    case 'union:unwrapped':
    case 'union:wrapped': {
      const branches = t.types!;
      if (json === null && branches.some((b) => b.typeName === 'null')) return null;
      const names = branches.filter((b) => b.typeName !== 'null').map((b) => b.branchName!);
      const keys = isObject(json) ? Object.keys(json) : [];
      const branch = keys.length === 1 ? branchNamed(branches, keys[0]!, fail) : undefined;
      if (branch === undefined)
        return fail(
          `expected ${names.length < branches.length ? 'null or ' : ''}{"<branch>": value} with <branch> one of ${names.join(', ')}, got ${describe(json)}`,
        );
      const value = (json as Record<string, unknown>)[keys[0]!];
      return { [branch.branchName!]: checkJsonInput(branch as unknown as avro.Type, value, at(keys[0]!), bytes) };
    }
    default:
      // Logical types (none are registered by the CLI) check as their underlying type.
      return t.underlyingType !== undefined ? checkJsonInput(t.underlyingType, json, path, bytes) : json;
  }
}

/**
 * The branch `key` names: by its full branch name, else by the simple name of a named type when
 * only one branch has it (`{"Tag": ...}` for `avrpc.other.Tag`). Two branches of that simple name
 * (`a.Tag`, `b.Tag`) are refused naming both, rather than picking one.
 */
function branchNamed(branches: avro.Type[], key: string, fail: (problem: string) => never): Shape | undefined {
  const all = branches as unknown as Shape[];
  const exact = all.find((b) => b.branchName === key);
  if (exact !== undefined || key.includes('.')) return exact;
  const simple = all.filter((b) => b.branchName!.includes('.') && b.branchName!.slice(b.branchName!.lastIndexOf('.') + 1) === key);
  if (simple.length > 1)
    return fail(`${key} names ${simple.length} branches (${simple.map((b) => b.branchName).join(', ')}): use the full name`);
  return simple[0];
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (padding required, no whitespace) to Avro's string of code points 0-255. */
function fromBase64(text: string, fail: (problem: string) => never): string {
  if (!BASE64.test(text)) return fail(`not base64 (--bytes base64): ${describe(text)}`);
  return Buffer.from(text, 'base64').toString('latin1');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Like assignment, but a key `__proto__` from the input stays an ordinary property. */
function define(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function typeLabel(type: avro.Type): string {
  const t = type as unknown as Shape & { name?: string };
  return t.name ?? (t.typeName === 'abstract:long' ? 'long' : t.typeName);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `a string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return `${typeof v === 'bigint' ? 'integer' : typeof v} ${String(v)}`;
}
