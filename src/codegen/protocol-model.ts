/**
 * What the generator reads of a protocol: its named types in declaration order with full names
 * resolved as avsc resolves them (namespaces inherited, dotted names full), their docs and logical
 * type annotations (avsc keeps both in the protocol JSON; its types drop logical types it has no
 * implementation for, which is every one in avrpc), and its messages with their kinds from
 * {@link MessageDef}.
 */
import type { MessageDef, Protocol, StreamKind } from '../codec/protocol.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';

/** An Avro primitive type name. */
export type Primitive = 'null' | 'boolean' | 'int' | 'long' | 'float' | 'double' | 'bytes' | 'string';

/** A schema in a field, parameter, response or nested position. */
export type TypeRef =
  | { readonly kind: 'primitive'; readonly name: Primitive; readonly logical?: string }
  | { readonly kind: 'named'; readonly fullName: string }
  | { readonly kind: 'array'; readonly items: TypeRef }
  | { readonly kind: 'map'; readonly values: TypeRef }
  | { readonly kind: 'union'; readonly branches: readonly TypeRef[] };

/** A record's field or a message's parameter. */
export interface FieldModel {
  readonly name: string;
  readonly type: TypeRef;
  readonly doc: string | undefined;
}

/** A named type: record, error, enum or fixed. */
export interface NamedModel {
  readonly kind: 'record' | 'error' | 'enum' | 'fixed';
  readonly fullName: string;
  readonly doc: string | undefined;
  /** Records and errors. */
  readonly fields: readonly FieldModel[];
  /** Enums. */
  readonly symbols: readonly string[];
  /** Fixed: its size in bytes. */
  readonly size: number;
  /** A logical type annotation on the named type itself (e.g. a `decimal` fixed). */
  readonly logical: string | undefined;
}

/** One message. */
export interface MessageModel {
  readonly name: string;
  readonly doc: string | undefined;
  readonly kind: 'unary' | 'oneWay' | StreamKind;
  readonly request: readonly FieldModel[];
  readonly response: TypeRef;
  /** Full names of the declared errors, in `throws` order. */
  readonly errors: readonly string[];
}

/** A protocol as the generator sees it. */
export interface ProtocolModel {
  /** Full name, e.g. `avrpc.echo.Echo`. */
  readonly name: string;
  readonly types: readonly NamedModel[];
  readonly messages: readonly MessageModel[];
}

type Json = Record<string, unknown>;

const PRIMITIVES: ReadonlySet<string> = new Set<Primitive>(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);
const NAMED_KINDS: ReadonlySet<string> = new Set(['record', 'error', 'enum', 'fixed']);

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const docOf = (v: Json): string | undefined => (typeof v.doc === 'string' ? v.doc : undefined);

/** avsc's `qualify`: a dotted name is full (a leading dot means the null namespace), else it joins `ns`; primitives have none. */
function qualify(name: string, ns: string | undefined): string {
  if (PRIMITIVES.has(name.slice(name.lastIndexOf('.') + 1))) return name.slice(name.lastIndexOf('.') + 1);
  if (name.includes('.')) return name.replace(/^\./, '');
  return ns ? `${ns}.${name}` : name;
}

/** Reads `protocol` (its JSON text and its messages' kinds). */
export function readProtocol(protocol: Protocol): ProtocolModel {
  const json = JSON.parse(protocol.text) as Json;
  const reader = new SchemaReader();
  const ns = typeof json.namespace === 'string' ? json.namespace : undefined;
  for (const t of Array.isArray(json.types) ? json.types : []) reader.type(t, ns);
  const declared = isObject(json.messages) ? json.messages : {};
  const messages = protocol.messages.map((def) => readMessage(reader, def, declared[def.name], ns));
  return { name: protocol.name, types: reader.named, messages };
}

function readMessage(reader: SchemaReader, def: MessageDef, raw: unknown, ns: string | undefined): MessageModel {
  const m = isObject(raw) ? raw : {};
  const request = (Array.isArray(m.request) ? m.request : []).map((f) => reader.field(f, ns));
  const response = def.oneWay || m.response === undefined ? reader.type('null', ns) : reader.type(m.response, ns);
  const errors = (Array.isArray(m.errors) ? m.errors : []).map((e) => reader.type(e, ns)).filter((e) => e.kind === 'named');
  const kind = def.stream ?? (def.oneWay ? 'oneWay' : 'unary');
  return { name: def.name, doc: docOf(m), kind, request, response, errors: errors.map((e) => e.fullName) };
}

/** Walks schemas, collecting named type definitions (depth first, each before the types inside it). */
class SchemaReader {
  readonly named: NamedModel[] = [];

  /** The reference a schema stands for, defining the named types it declares. */
  type(schema: unknown, ns: string | undefined): TypeRef {
    if (typeof schema === 'string') {
      const name = qualify(schema, ns);
      return PRIMITIVES.has(name) ? { kind: 'primitive', name: name as Primitive } : { kind: 'named', fullName: name };
    }
    if (Array.isArray(schema)) return { kind: 'union', branches: schema.map((s) => this.type(s, ns)) };
    if (!isObject(schema)) throw unexpected(schema);
    const t = schema.type;
    if (t === 'array') return { kind: 'array', items: this.type(schema.items, ns) };
    if (t === 'map') return { kind: 'map', values: this.type(schema.values, ns) };
    if (typeof t === 'string' && NAMED_KINDS.has(t)) return this.define(schema, t as NamedModel['kind'], ns);
    const inner = this.type(t, ns);
    // `{"type": "long", "logicalType": "timestamp-millis"}`: the underlying type, with the annotation noted.
    const logical = logicalNote(schema);
    return inner.kind === 'primitive' && logical !== undefined ? { ...inner, logical } : inner;
  }

  field(raw: unknown, ns: string | undefined): FieldModel {
    if (!isObject(raw) || typeof raw.name !== 'string') throw unexpected(raw);
    return { name: raw.name, type: this.type(raw.type, ns), doc: docOf(raw) };
  }

  private define(schema: Json, kind: NamedModel['kind'], ns: string | undefined): TypeRef {
    const own = typeof schema.namespace === 'string' ? schema.namespace : ns;
    const fullName = qualify(String(schema.name), own);
    // Names inside a record resolve in its namespace: the attribute's, else its dotted name's, else the enclosing one.
    const dotted = /^(.*)\.[^.]+$/.exec(String(schema.name));
    const inner = typeof schema.namespace === 'string' ? schema.namespace : dotted !== null ? dotted[1] : ns;
    const model = {
      kind,
      fullName,
      doc: docOf(schema),
      fields: [] as FieldModel[],
      symbols: Array.isArray(schema.symbols) ? schema.symbols.map(String) : [],
      size: typeof schema.size === 'number' ? schema.size : 0,
      logical: logicalNote(schema),
    };
    this.named.push(model);
    if (Array.isArray(schema.fields)) for (const f of schema.fields) model.fields.push(this.field(f, inner));
    return { kind: 'named', fullName };
  }
}

/** `timestamp-millis`, or `decimal(9, 2)` with a decimal's precision and scale; undefined without a logical type. */
function logicalNote(schema: Json): string | undefined {
  if (typeof schema.logicalType !== 'string') return undefined;
  const params = ['precision', 'scale'].filter((k) => typeof schema[k] === 'number').map((k) => String(schema[k]));
  return params.length > 0 ? `${schema.logicalType}(${params.join(', ')})` : schema.logicalType;
}

/** The namespace part of a full name (`''` for none). */
export function namespaceOf(fullName: string): string {
  const i = fullName.lastIndexOf('.');
  return i < 0 ? '' : fullName.slice(0, i);
}

/** The simple name part of a full name. */
export function simpleName(fullName: string): string {
  return fullName.slice(fullName.lastIndexOf('.') + 1);
}

function unexpected(schema: unknown): RpcError {
  return new RpcError(Code.INVALID_ARGUMENT, `avrpc gen: unexpected schema ${JSON.stringify(schema)?.slice(0, 200)}`);
}
