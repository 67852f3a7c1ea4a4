import avro from 'avsc';
import { isStringLong } from './longs.js';

/** The parts of avsc's unwrapped union this module reads (its own fields, frozen by its constructor). */
interface UnwrappedUnion {
  readonly types: ReadonlyArray<avro.Type & { _check(val: unknown): boolean }>;
  /** Branch index by value bucket (see {@link bucketOf}). */
  readonly _bucketIndices: Readonly<Record<string, number | undefined>>;
  /** Branches avsc cannot bucket: here the longs of the `bigint` and `string` modes. */
  readonly _dynamicBranches: ReadonlyArray<{ index: number; type: { _check(val: unknown): boolean } }> | null;
}

type UnionCtor = new (types: avro.Type[], opts: unknown) => avro.Type;
const types = avro.types as unknown as { UnwrappedUnionType: UnionCtor; WrappedUnionType: UnionCtor };

/**
 * avsc's bucket of a value, except that every Uint8Array is `buffer` (avsc asks `Buffer.isBuffer`,
 * so a Uint8Array would be taken for a record).
 */
function bucketOf(val: unknown): string {
  if (val === null) return 'null';
  const t = typeof val;
  if (t !== 'object') return t;
  if (Array.isArray(val)) return 'array';
  return val instanceof Uint8Array ? 'buffer' : 'object';
}

/**
 * avsc's unwrapped union, choosing a value's branch as it does, with two differences. A Uint8Array
 * goes to the `bytes` or `fixed` branch. A value both a bucketed branch and a dynamic one (a long of
 * the exact modes) accept goes to the bucketed one, where avsc would throw "ambiguous conversion":
 * now that the `bigint` mode's long also takes safe-integer numbers, `5` in `union { long, double }`
 * stays the double it always was, and `5n` the long.
 */
class InputUnion extends types.UnwrappedUnionType {
  _getIndex(val: unknown): number | undefined {
    const self = this as unknown as UnwrappedUnion;
    const index = self._bucketIndices[bucketOf(val)];
    const dynamic = self._dynamicBranches;
    if (dynamic === null) return index;
    if (index !== undefined && self.types[index]!._check(val)) return index;
    for (const branch of dynamic) if (branch.type._check(val)) return branch.index;
    return index;
  }
}

/** avsc's bucket of a branch type (`getTypeBucket`), for the wrap decision below. */
function typeBucket(type: avro.Type): string {
  switch (type.typeName) {
    case 'double':
    case 'float':
    case 'int':
    case 'long':
      return 'number';
    case 'bytes':
    case 'fixed':
      return 'buffer';
    case 'enum':
      return 'string';
    case 'map':
    case 'error':
    case 'record':
      return 'object';
    default:
      return type.typeName;
  }
}

/**
 * Whether a union must be wrapped (`{"branch": value}`) because its branches' values could not be
 * told apart: avsc's rule (two branches of one bucket), plus, in the `string` longs mode, a long
 * beside a `string` or enum branch: a long decoded as `"5"` would encode again as the string.
 */
function ambiguous(branches: readonly avro.Type[]): boolean {
  const seen = new Set<string>();
  let stringLong = false;
  for (const type of branches) {
    if (type.typeName.startsWith('logical')) continue;
    if (isStringLong(type)) stringLong = true;
    const bucket = typeBucket(type);
    if (seen.has(bucket)) return true;
    seen.add(bucket);
  }
  return stringLong && seen.has('string');
}

/**
 * avsc `typeHook` for union schemas: builds the union's branches as avsc does and returns an
 * {@link InputUnion}, or avsc's wrapped union when `wrapUnions` or {@link ambiguous} says so.
 */
export function unionHook(schema: avro.Schema, opts: avro.ForSchemaOptions): avro.Type | undefined {
  if (!Array.isArray(schema)) return undefined;
  const branches = schema.map((s: avro.Schema) => avro.Type.forSchema(s, opts));
  const wrap = (opts as { wrapUnions?: unknown }).wrapUnions;
  const wrapped = wrap === true || wrap === 'always' ? true : wrap === false || wrap === 'never' ? false : ambiguous(branches);
  return wrapped ? new types.WrappedUnionType(branches, opts) : new InputUnion(branches, opts);
}
