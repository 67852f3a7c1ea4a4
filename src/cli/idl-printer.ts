/**
 * Prints an Avro protocol (its JSON form, as exchanged in handshakes) as Avro IDL: named types
 * first, each before the types that use it, then the messages. What `avrpc describe` shows; avsc's
 * `readProtocol` parses it back to an equivalent protocol.
 */

type Schema = string | Schema[] | SchemaObject;
interface SchemaObject {
  type: Schema;
  [key: string]: unknown;
}
interface Field {
  name: string;
  type: Schema;
  default?: unknown;
  doc?: string;
  [key: string]: unknown;
}
interface MessageJson {
  request?: Field[];
  response?: Schema;
  errors?: Schema[];
  'one-way'?: boolean;
  doc?: string;
  [key: string]: unknown;
}
interface ProtocolJson {
  protocol: string;
  namespace?: string;
  doc?: string;
  types?: Schema[];
  messages?: Record<string, MessageJson>;
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);
const NAMED = new Set(['record', 'error', 'enum', 'fixed']);
/** Schema attributes the IDL syntax expresses itself; any other becomes an `@annotation`. */
const STRUCTURAL = new Set(['type', 'name', 'namespace', 'fields', 'symbols', 'size', 'items', 'values', 'doc', 'aliases', 'default']);
/** Words that must be escaped with backticks when used as names. */
const KEYWORDS = new Set([
  'array',
  'boolean',
  'double',
  'enum',
  'error',
  'false',
  'fixed',
  'float',
  'idl',
  'import',
  'int',
  'long',
  'map',
  'oneway',
  'bytes',
  'schema',
  'string',
  'null',
  'protocol',
  'record',
  'throws',
  'true',
  'union',
  'void',
  'date',
  'time_ms',
  'timestamp_ms',
  'decimal',
  'uuid',
  'local_timestamp_ms',
]);

/** Renders `protocol` (an Avro protocol in JSON form, object or text) as IDL text. */
export function protocolToIdl(protocol: object | string): string {
  const p = (typeof protocol === 'string' ? JSON.parse(protocol) : protocol) as ProtocolJson;
  const printer = new IdlPrinter(p.namespace ?? '');
  for (const t of p.types ?? []) printer.define(t, p.namespace ?? '');
  for (const m of Object.values(p.messages ?? {})) {
    for (const f of m.request ?? []) printer.define(f.type, p.namespace ?? '');
    if (m.response !== undefined) printer.define(m.response, p.namespace ?? '');
    for (const e of m.errors ?? []) printer.define(e, p.namespace ?? '');
  }
  const out: string[] = [];
  if (p.doc !== undefined) out.push(docComment(p.doc, ''));
  if (p.namespace) out.push(`@namespace(${JSON.stringify(p.namespace)})`);
  out.push(`protocol ${ident(p.protocol)} {`);
  // A blank line between declarations, none after the last one.
  const blocks = [...printer.definitions, ...Object.entries(p.messages ?? {}).map(([name, m]) => printer.message(name, m))];
  if (blocks.length > 0) out.push(blocks.join('\n\n'));
  out.push('}');
  return `${out.join('\n')}\n`;
}

class IdlPrinter {
  /** Named type declarations, in dependency order. */
  readonly definitions: string[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly protocolNamespace: string) {}

  /** Declares every named type inside `schema` (depth first, so dependencies come first). */
  define(schema: Schema, ns: string): void {
    if (typeof schema === 'string') return;
    if (Array.isArray(schema)) return schema.forEach((s) => this.define(s, ns));
    const type = schema.type;
    if (typeof type !== 'string' || !NAMED.has(type)) {
      if (type === 'array') this.define(schema.items as Schema, ns);
      else if (type === 'map') this.define(schema.values as Schema, ns);
      else if (typeof type !== 'string') this.define(type, ns);
      return;
    }
    const full = fullName(schema, ns);
    if (this.seen.has(full)) return;
    this.seen.add(full);
    const own = namespaceOf(full);
    for (const f of (schema.fields as Field[] | undefined) ?? []) this.define(f.type, own);
    this.definitions.push(this.declaration(schema, full));
  }

  private declaration(s: SchemaObject, full: string): string {
    const ns = namespaceOf(full);
    const head: string[] = [];
    if (typeof s.doc === 'string') head.push(docComment(s.doc, '  '));
    if (ns !== this.protocolNamespace) head.push(`  @namespace(${JSON.stringify(ns)})`);
    if (Array.isArray(s.aliases)) head.push(`  @aliases(${JSON.stringify(s.aliases)})`);
    head.push(...annotations(s).map((a) => `  ${a}`));
    const name = ident(shortName(full));
    let body: string;
    if (s.type === 'enum') {
      const dflt = typeof s.default === 'string' ? ` = ${ident(s.default)};` : '';
      body = `  enum ${name} {\n    ${(s.symbols as string[]).map(ident).join(', ')}\n  }${dflt}`;
    } else if (s.type === 'fixed') {
      body = `  fixed ${name}(${String(s.size)});`;
    } else {
      const fields = (s.fields as Field[]).map((f) => `    ${this.field(f, ns)}`);
      body = `  ${s.type as string} ${name} {\n${fields.join('\n')}\n  }`;
    }
    return [...head, body].join('\n');
  }

  private field(f: Field, ns: string): string {
    const parts: string[] = [];
    if (typeof f.doc === 'string') parts.push(`${docComment(f.doc, '')} `);
    parts.push(this.type(f.type, ns), ' ');
    for (const [k, v] of Object.entries(f)) {
      if (!['name', 'type', 'default', 'doc'].includes(k)) parts.push(`@${k}(${JSON.stringify(v)}) `);
    }
    parts.push(ident(f.name));
    if (f.default !== undefined) parts.push(` = ${JSON.stringify(f.default)}`);
    return `${parts.join('')};`;
  }

  /** A reference to `schema` in a field, parameter or response position. */
  type(schema: Schema, ns: string): string {
    if (typeof schema === 'string')
      return PRIMITIVES.has(schema) ? schema : this.reference(schema.includes('.') ? schema : qualify(schema, ns), ns);
    if (Array.isArray(schema)) return `union { ${schema.map((s) => this.type(s, ns)).join(', ')} }`;
    const t = schema.type;
    if (typeof t === 'string' && NAMED.has(t)) return this.reference(fullName(schema, ns), ns);
    const notes = annotations(schema)
      .map((a) => `${a} `)
      .join('');
    if (t === 'array') return `${notes}array<${this.type(schema.items as Schema, ns)}>`;
    if (t === 'map') return `${notes}map<${this.type(schema.values as Schema, ns)}>`;
    return `${notes}${this.type(t, ns)}`;
  }

  /** A message; its attributes beyond the structural ones, `@stream("server")` among them, as annotations before it. */
  message(name: string, m: MessageJson): string {
    const ns = this.protocolNamespace;
    const lines: string[] = [];
    if (typeof m.doc === 'string') lines.push(docComment(m.doc, '  '));
    const notes = Object.entries(m)
      .filter(([k]) => !['request', 'response', 'errors', 'one-way', 'doc'].includes(k))
      .map(([k, v]) => `@${k}(${JSON.stringify(v)}) `)
      .join('');
    const response = m.response === undefined || m.response === 'null' ? 'void' : this.type(m.response, ns);
    const params = (m.request ?? []).map((f) => this.field(f, ns).slice(0, -1)).join(', ');
    const throws = (m.errors ?? []).filter((e) => e !== 'string').map((e) => this.type(e, ns));
    const tail = `${throws.length > 0 ? ` throws ${throws.join(', ')}` : ''}${m['one-way'] === true ? ' oneway' : ''}`;
    lines.push(`  ${notes}${response} ${ident(name)}(${params})${tail};`);
    return lines.join('\n');
  }

  /** Short names only where IDL resolves them the same way: the protocol's namespace, in its context. */
  private reference(full: string, context: string): string {
    const ns = namespaceOf(full);
    return ns === this.protocolNamespace && context === ns ? ident(shortName(full)) : full.split('.').map(ident).join('.');
  }
}

/** Attributes beyond the structural ones, e.g. `@logicalType("timestamp-millis")`. */
function annotations(s: SchemaObject): string[] {
  return Object.entries(s)
    .filter(([k]) => !STRUCTURAL.has(k))
    .map(([k, v]) => `@${k}(${JSON.stringify(v)})`);
}

function fullName(s: SchemaObject, ns: string): string {
  const name = String(s.name);
  if (name.includes('.')) return name;
  return qualify(name, typeof s.namespace === 'string' ? s.namespace : ns);
}

function qualify(name: string, ns: string): string {
  return ns ? `${ns}.${name}` : name;
}

function namespaceOf(full: string): string {
  const i = full.lastIndexOf('.');
  return i < 0 ? '' : full.slice(0, i);
}

function shortName(full: string): string {
  return full.slice(full.lastIndexOf('.') + 1);
}

function ident(name: string): string {
  return KEYWORDS.has(name) ? `\`${name}\`` : name;
}

function docComment(doc: string, indent: string): string {
  return `${indent}/** ${doc.replace(/\*\//g, '*\\/')} */`;
}
