/**
 * Random valid Avro protocols (JSON form) for the codegen layout tests: names of every length from
 * 1 to 70 characters (so that members, unions, object types and aliases land on both sides of the
 * 140-column line), unions of up to six branches, wrapped and unwrapped, nested arrays and maps,
 * enums of many symbols, reserved words as field names, docs of one and several lines, and messages
 * of every kind with up to four declared errors. Deterministic from the random source.
 */

type Json = Record<string, unknown>;
type Schema = string | Schema[] | Json;

const PRIMITIVES = ['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string'];
const WORDS = ['class', 'function', 'delete', 'default', 'new', 'type', 'interface', 'constructor', 'number', 'string'];

/** A protocol of a few named types and messages. */
export function randomProtocol(rnd: () => number, index: number): Json {
  const r = new Random(rnd, index);
  const types: Json[] = [];
  for (let i = r.int(1, 6); i > 0; i--) types.push(r.named(0, `fuzz.p${index}`));
  const messages: Record<string, Json> = {};
  for (let i = r.int(1, 6); i > 0; i--) messages[r.name('m')] = r.message();
  return { protocol: r.name('P'), namespace: `fuzz.p${index}`, types, messages, ...r.doc() };
}

class Random {
  /** Named types defined so far (full names), that later schemas may refer to. */
  private readonly defined: { name: string; kind: string }[] = [];
  private count = 0;

  constructor(
    private readonly rnd: () => number,
    private readonly index: number,
  ) {}

  int(min: number, max: number): number {
    return min + Math.floor(this.rnd() * (max - min + 1));
  }

  /** A unique identifier starting with `prefix`, of a random length. */
  name(prefix: string): string {
    const long = this.rnd() < 0.3 ? this.int(20, 70) : this.int(0, 12);
    return `${prefix}${this.count++}${'abcdefghijklmnopqrstuvwxyz'.repeat(3).slice(0, long)}`;
  }

  doc(): Json {
    const x = this.rnd();
    if (x < 0.5) return {};
    if (x < 0.8) return { doc: `Doc ${'word '.repeat(this.int(0, 40))}end.` };
    return { doc: `First line.\n  Indented second line.\n\nLast */ line.` };
  }

  /** A named type definition (record, error, enum or fixed), in another namespace now and then. */
  named(depth: number, enclosing: string, kind?: string): Json {
    const k = kind ?? ['record', 'record', 'enum', 'fixed'][this.int(0, 3)]!;
    const ns = this.rnd() < 0.2 ? { namespace: `fuzz.other${this.index}` } : {};
    const name = this.name(k[0]!.toUpperCase());
    const own = ns.namespace ?? enclosing;
    const full = `${own}.${name}`;
    const base = { type: k, name, ...ns, ...this.doc() };
    if (k === 'enum') {
      this.defined.push({ name: full, kind: k });
      return { ...base, symbols: Array.from({ length: this.int(1, 9) }, () => this.name('S')) };
    }
    if (k === 'fixed') {
      this.defined.push({ name: full, kind: k });
      return { ...base, size: this.int(1, 16) };
    }
    const fields = this.fields(depth + 1, own);
    this.defined.push({ name: full, kind: k });
    return { ...base, fields };
  }

  /** Up to five fields of distinct names, now and then a reserved word. */
  fields(depth: number, ns: string): Json[] {
    const used = new Set<string>();
    return Array.from({ length: this.int(0, 5) }, () => {
      let name = this.rnd() < 0.15 ? WORDS[this.int(0, WORDS.length - 1)]! : this.name('f');
      if (used.has(name)) name = this.name('f');
      used.add(name);
      return { name, type: this.schema(depth, ns), ...this.doc() };
    });
  }

  /** A schema of any kind; unions take no union branch and no two branches of one unnamed kind. */
  schema(depth: number, ns: string, inUnion = false): Schema {
    const x = this.rnd();
    if (depth > 3 || x < 0.3) {
      const p = PRIMITIVES[this.int(0, PRIMITIVES.length - 1)]!;
      return this.rnd() < 0.1 && (p === 'long' || p === 'int') ? { type: p, logicalType: 'timestamp-millis' } : p;
    }
    if (x < 0.45 && this.defined.length > 0) return this.defined[this.int(0, this.defined.length - 1)]!.name;
    if (x < 0.55) return { type: 'array', items: this.schema(depth + 1, ns) };
    if (x < 0.62) return { type: 'map', values: this.schema(depth + 1, ns) };
    if (x < 0.85 && !inUnion) return this.union(depth, ns);
    if (x < 0.9) return this.named(depth + 1, ns);
    return this.rnd() < 0.5 ? 'string' : 'long';
  }

  private union(depth: number, ns: string): Schema[] {
    const branches: Schema[] = [];
    const seen = new Set<string>();
    for (let i = this.int(2, 6); i > 0; i--) {
      const mark = this.defined.length;
      const s = this.schema(depth + 1, ns, true);
      // Branches are told apart by name: a named type's full name, else the type's name.
      const key =
        typeof s === 'string' || Array.isArray(s)
          ? `${s}`
          : typeof s.name === 'string'
            ? `${(s.namespace as string) ?? ns}.${s.name}`
            : `${s.type}`;
      if (seen.has(key)) {
        this.defined.length = mark; // the types a dropped branch defined are not defined
        continue;
      }
      seen.add(key);
      branches.push(s);
    }
    return branches;
  }

  message(): Json {
    const ns = `fuzz.p${this.index}`;
    const kind = this.rnd();
    const request = this.fields(1, ns);
    if (kind < 0.15) return { request, response: 'null', 'one-way': true, ...this.doc() };
    // avsc reads the response before the errors: it may use a type defined in the request, not in the errors.
    const response = this.schema(1, ns);
    const errors = Array.from({ length: this.int(0, 4) }, () =>
      this.rnd() < 0.5 ? this.named(1, ns, 'error') : (this.defined.find((d) => d.kind === 'error')?.name ?? this.named(1, ns, 'error')),
    );
    const seen = new Set<string>();
    const unique = errors.filter((e) => {
      const key = typeof e === 'string' ? e : `${(e.namespace as string) ?? ns}.${e.name}`;
      return !seen.has(key) && seen.add(key) !== undefined;
    });
    const stream = kind < 0.4 ? { stream: ['server', 'client', 'bidi'][this.int(0, 2)] } : {};
    return { request, response, errors: unique, ...stream, ...this.doc() };
  }
}
