/**
 * Avro schemas as TypeScript types: what a value of each schema is in JavaScript under avsc (as
 * avrpc configures it), printed in Prettier's layout. The mapping: `null`, `boolean`, `string` as
 * themselves; `int`, `float`, `double` as `number`; `long` per the `longs` mode; `bytes` and `fixed`
 * as `Buffer`; arrays `T[]`; maps `{ [key: string]: T }`; named types by their generated names;
 * unions as TypeScript unions of their branches, except the unions avsc wraps (see {@link wrapsUnion}).
 * Logical types are their underlying types (avrpc registers none with avsc).
 */
import { align, group, ifBreak, indent, join, line, softline, type Doc } from './layout.js';
import type { NamedModel, TypeRef } from './protocol-model.js';
import { propertyKey } from './ts-names.js';

/** How `long` values are typed: as the `longs` option the protocol is used with. */
export type LongsMode = 'number' | 'bigint' | 'string';

/** What printing a type needs to know about the protocol. */
export interface TypeContext {
  /** The generated TypeScript name of each named type, by Avro full name. */
  readonly names: ReadonlyMap<string, string>;
  /** The kind of each named type, by Avro full name. */
  readonly kinds: ReadonlyMap<string, NamedModel['kind']>;
  readonly longs: LongsMode;
}

/** A TypeScript type, as far as generated modules use them. */
export type TsType =
  | { readonly t: 'name'; readonly text: string; readonly reference: boolean }
  | { readonly t: 'array'; readonly element: TsType }
  | { readonly t: 'object'; readonly members: readonly TsMember[] }
  | { readonly t: 'union'; readonly types: readonly TsType[] };

/** A member of an object type: its key as printed (`id`, `'avrpc.echo.EchoError'`, `[key: string]`) and its type. */
export interface TsMember {
  readonly key: string;
  readonly type: TsType;
}

const keyword = (text: string): TsType => ({ t: 'name', text, reference: false });

/** A reference to a named type, e.g. `Item` or `Record<string, never>`. */
export const reference = (text: string): TsType => ({ t: 'name', text, reference: true });

/** A string literal type, e.g. an enum symbol. */
export const literal = (text: string): TsType => ({ t: 'name', text, reference: false });

/** An object type of `members`. */
export const objectType = (members: readonly TsMember[]): TsType => ({ t: 'object', members });

/** A union of `types` (just the type when there is one). */
export const unionType = (types: readonly TsType[]): TsType => (types.length === 1 ? types[0]! : { t: 'union', types });

/** The TypeScript type of values of `ref`. */
export function tsType(ref: TypeRef, ctx: TypeContext): TsType {
  switch (ref.kind) {
    case 'primitive':
      if (ref.name === 'long') return keyword(ctx.longs);
      if (ref.name === 'bytes') return reference('Buffer');
      return keyword(ref.name === 'int' || ref.name === 'float' || ref.name === 'double' ? 'number' : ref.name);
    case 'named':
      return reference(ctx.names.get(ref.fullName) ?? ref.fullName);
    case 'array':
      return { t: 'array', element: tsType(ref.items, ctx) };
    case 'map':
      return objectType([{ key: '[key: string]', type: tsType(ref.values, ctx) }]);
    case 'union': {
      if (!wrapsUnion(ref.branches, ctx)) return unionType(ref.branches.map((b) => tsType(b, ctx)));
      // A wrapped union's value is null, or an object whose one key names the branch: { 'avrpc.x.Item': item }.
      const branch = (b: TypeRef): TsType =>
        b.kind === 'primitive' && b.name === 'null'
          ? keyword('null')
          : objectType([{ key: propertyKey(branchName(b)), type: tsType(b, ctx) }]);
      return unionType(ref.branches.map(branch));
    }
  }
}

/**
 * Whether avsc represents values of the union of `branches` wrapped (`{ branchName: value }`): its
 * default `wrapUnions: 'auto'` wraps a union when two branches fall in the same bucket of
 * JavaScript values (two records, `int` and `long`, an enum and `string`, a map and a record...),
 * since an unwrapped value could not tell which branch it is. avsc puts a `long` of a custom
 * implementation (avrpc's bigint longs) in a bucket of its own: with `longs: 'bigint'`, `union {
 * int, long }` is not wrapped. avrpc wraps a string-mode long beside a `string` or an enum.
 */
export function wrapsUnion(branches: readonly TypeRef[], ctx: Pick<TypeContext, 'kinds' | 'longs'>): boolean {
  const buckets = branches.map((b) => bucket(b, ctx));
  return new Set(buckets).size < buckets.length;
}

function bucket(ref: TypeRef, ctx: Pick<TypeContext, 'kinds' | 'longs'>): string {
  switch (ref.kind) {
    case 'primitive':
      // The string mode's longs are strings: beside a `string` or an enum branch, the union is wrapped (codec/unions.ts).
      if (ref.name === 'long') return ctx.longs === 'number' ? 'number' : ctx.longs === 'string' ? 'string' : 'abstract:long';
      return ['int', 'float', 'double'].includes(ref.name) ? 'number' : ref.name === 'bytes' ? 'buffer' : ref.name;
    case 'named': {
      const kind = ctx.kinds.get(ref.fullName);
      return kind === 'enum' ? 'string' : kind === 'fixed' ? 'buffer' : 'object';
    }
    case 'map':
      return 'object';
    default:
      return ref.kind;
  }
}

/** The key avsc gives a branch of a wrapped union: a named type's full name, else its type name. */
function branchName(ref: TypeRef): string {
  return ref.kind === 'named' ? ref.fullName : ref.kind === 'primitive' ? ref.name : ref.kind;
}

/**
 * `type` in Prettier's layout, where it stands after `key: ` or `= ` (a property's or an alias's
 * type): a union that does not fit moves to the next line, and breaks one branch a line if it still
 * does not fit there.
 */
export function printType(type: TsType): Doc {
  return type.t === 'union' && !hugs(type) ? group(indent([softline, unionMembers(type)])) : print(type);
}

function print(type: TsType): Doc {
  switch (type.t) {
    case 'name':
      return type.text;
    case 'object':
      return printObject(type.members);
    case 'array': {
      const e = type.element;
      if (e.t !== 'union') return [print(e), '[]'];
      // A union element needs parentheses, and breaks inside them: `(\n  | A\n  | B\n)[]`.
      return ['(', hugs(e) ? print(e) : group([indent([softline, unionMembers(e)]), softline]), ')[]'];
    }
    case 'union':
      return hugs(type) ? join(' | ', type.types.map(print)) : unionMembers(type);
  }
}

/** An object type literal: `{ a: A; b: B }` when it fits, else one member a line, each ending with `;`. */
export function printObject(members: readonly TsMember[]): Doc {
  if (members.length === 0) return '{}';
  const printed = members.map((m) => [m.key, ': ', printType(m.type)]);
  return group(['{', indent([line, join([';', line], printed)]), ifBreak(';'), line, '}']);
}

/** A union's branches: `A | B` flat, else `| A` and `| B` on lines of their own. */
function unionMembers(type: TsType & { t: 'union' }): Doc {
  return group(type.types.map((t, i) => [i === 0 ? ifBreak('| ') : [line, '| '], align(2, print(t))]));
}

/**
 * Prettier never breaks a union of one object-like type (a type name or an object literal) with
 * `null`s (`Item | null`): it "hugs" it.
 */
function hugs(type: TsType & { t: 'union' }): boolean {
  const objects = type.types.filter((t) => t.t === 'object' || (t.t === 'name' && t.reference));
  return objects.length === 1 && type.types.every((t) => t === objects[0] || (t.t === 'name' && t.text === 'null'));
}
