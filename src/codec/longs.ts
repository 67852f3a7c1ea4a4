import avro from 'avsc';

/**
 * How Avro `long` values appear in JavaScript (`ProtocolOptions.longs`): `'number'` (exact up to
 * 2^53, larger values refused), `'bigint'` (every 64-bit value exact), `'string'` (decimal strings,
 * every 64-bit value exact, for services whose values go on to JSON).
 */
export type LongsMode = 'number' | 'bigint' | 'string';

/** The modes, for option checks. */
export const LONGS_MODES: readonly LongsMode[] = ['number', 'bigint', 'string'];

const MIN = -(2n ** 63n);
const MAX = 2n ** 63n - 1n;
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * A long in decimal as the string mode takes it: `0`, or digits without a leading zero after an
 * optional `-`; at most 19 digits, so the range check never converts a huge string. No sign `+`,
 * space, exponent or `-0`: one spelling per value, the one decoding gives.
 */
const DECIMAL = /^(?:0|-?[1-9]\d{0,18})$/;

/**
 * The value of a long to encode: a bigint in range, a safe-integer number, or (when `strings`) a
 * decimal string as {@link DECIMAL} spells it; `undefined` for anything else. Never throws.
 */
export function longValue(value: unknown, strings: boolean): bigint | undefined {
  if (typeof value === 'bigint') return value >= MIN && value <= MAX ? value : undefined;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : undefined;
  if (strings && typeof value === 'string' && DECIMAL.test(value)) {
    const n = BigInt(value);
    return n <= MAX && n >= MIN ? n : undefined;
  }
  return undefined;
}

/**
 * A long read from a schema's JSON (a field default, avsc's JSON coercion, an `int` promoted to
 * `long` by schema resolution): an integer number in range (a default may be a double beyond 2^53:
 * it means that double's exact value), a bigint, or a decimal string. Throws otherwise.
 */
function fromJson(value: unknown): bigint {
  const n = typeof value === 'number' && Number.isInteger(value) && Math.abs(value) <= 2 ** 63 ? BigInt(value) : longValue(value, true);
  if (n === undefined || n < MIN || n > MAX) throw new Error(`not a long: ${String(value)}`);
  return n;
}

/** A long's JSON form in both exact modes: a number when it is safe, else its decimal string. */
function toJson(n: bigint): number | string {
  return n >= MIN_SAFE && n <= MAX_SAFE ? Number(n) : n.toString();
}

function toBytes(n: bigint): Buffer {
  const buf = Buffer.allocUnsafe(8);
  buf.writeBigInt64LE(n);
  return buf;
}

const compare = (a: bigint, b: bigint): number => (a === b ? 0 : a < b ? -1 : 1);

/** A `long` type whose values are BigInts (safe-integer numbers accepted on encode), so 64-bit ids survive unchanged. */
const bigintLong = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (v: bigint | number) => toBytes(BigInt(v)),
  fromJSON: fromJson,
  toJSON: (v: bigint | number) => toJson(BigInt(v)),
  isValid: (v: unknown) => longValue(v, false) !== undefined,
  compare: (a: bigint | number, b: bigint | number) => compare(BigInt(a), BigInt(b)),
});

/** A `long` type whose values are decimal strings (safe-integer numbers and BigInts accepted on encode). */
const stringLong = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE().toString(),
  toBuffer: (v: unknown) => toBytes(longValue(v, true)!), // isValid passed first
  fromJSON: (v: unknown) => fromJson(v).toString(),
  toJSON: (v: unknown) => toJson(longValue(v, true)!),
  isValid: (v: unknown) => longValue(v, true) !== undefined,
  compare: (a: unknown, b: unknown) => compare(longValue(a, true)!, longValue(b, true)!),
});

/**
 * The avsc registry entries of a mode: its `long` type (none for `number`, avsc's own). A new object
 * per call: avsc adds the protocol's named types to it.
 */
export function longsRegistry(mode: LongsMode): Record<string, avro.Type> {
  if (mode === 'bigint') return { long: bigintLong };
  if (mode === 'string') return { long: stringLong };
  return {};
}

/** True for the long type of the string mode (its values share the `string` bucket of unions). */
export function isStringLong(type: avro.Type): boolean {
  return type === stringLong;
}

/**
 * avsc `typeHook`: a `long` written as an object (`{"type": "long", "logicalType": "timestamp-millis"}`:
 * avrpc registers no logical types) is the registry's `long` too (a mode's, the CLI's JSON long);
 * avsc would build its own number long for it, which a bigint or string value does not fit.
 */
export function longHook(schema: avro.Schema, opts: avro.ForSchemaOptions): avro.Type | undefined {
  if (schema === null || typeof schema !== 'object' || (schema as { type?: unknown }).type !== 'long') return undefined;
  return (opts.registry as Record<string, avro.Type> | undefined)?.['long'];
}
