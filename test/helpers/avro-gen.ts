/**
 * Test helper: generated Avro schemas, reader schemas derived from them as another version of a
 * protocol would be (fields dropped, renamed, added with defaults, types promoted, unions widened), and
 * adversarial encodings (block counts of 2^40, negative counts with huge or negative sizes, huge or
 * negative string lengths, truncations). Used by the bounded-decode property test, the hostile-peer
 * protocol tests and the fuzz test. Deterministic from the `rnd` it is given.
 */

/** An Avro schema in JSON form. */
export type Schema = string | Schema[] | { [key: string]: unknown };

/** Generation state: a counter for unique type names, and the random source. */
export interface Gen {
  rnd: () => number;
  names: number;
  /** Prefix of generated type names (unique per generator, so several can share a protocol). */
  prefix: string;
}

export function gen(rnd: () => number, prefix = 'G'): Gen {
  return { rnd, names: 0, prefix };
}

const int = (g: Gen, n: number): number => Math.floor(g.rnd() * n);

const PRIMITIVES = ['null', 'boolean', 'int', 'long', 'float', 'double', 'string', 'bytes'];
/** Every kind a generated type may be. */
export const KINDS = [...PRIMITIVES, 'fixed', 'enum', 'array', 'map', 'union', 'record'] as const;
export type Kind = (typeof KINDS)[number];

/** A generated type of `kind` (a random kind if omitted), nested at most `maxDepth` deep. */
export function genType(g: Gen, depth = 0, kind?: Kind, maxDepth = 3): Schema {
  const k: Kind = kind ?? (depth >= maxDepth ? KINDS[int(g, 10)]! : KINDS[int(g, KINDS.length)]!);
  const name = () => `${g.prefix}${g.names++}`;
  switch (k) {
    case 'fixed':
      return { type: 'fixed', name: name(), size: int(g, 4) };
    case 'enum':
      return { type: 'enum', name: name(), symbols: ['A', 'B', 'C'] };
    case 'array':
      return { type: 'array', items: genType(g, depth + 1, undefined, maxDepth) };
    case 'map':
      return { type: 'map', values: genType(g, depth + 1, undefined, maxDepth) };
    case 'union': {
      // Two branches of different kinds, no nested union; often with null.
      const first = g.rnd() < 0.5 ? 'null' : PRIMITIVES[1 + int(g, 7)]!;
      let second: Schema;
      do second = genType(g, depth + 1, undefined, maxDepth);
      while (Array.isArray(second) || branchName(second) === first);
      return [first, second];
    }
    case 'record': {
      const fields = Array.from({ length: int(g, 4) }, (_, i) => ({ name: `f${i}`, type: genType(g, depth + 1, undefined, maxDepth) }));
      return { type: 'record', name: name(), fields };
    }
    default:
      return k;
  }
}

function branchName(s: Schema): string {
  if (typeof s === 'string') return s;
  if (Array.isArray(s)) return 'union';
  const t = s['type'] as string;
  return t === 'record' || t === 'enum' || t === 'fixed' || t === 'error' ? (s['name'] as string) : t;
}

/**
 * A reader schema that resolves `writer`, as a later or earlier version would: fields dropped (the
 * reader then skips them), renamed with an alias, added with a default; int read as long or double,
 * float as double, string as bytes; enums with more symbols; unions with one more branch.
 */
export function derive(g: Gen, writer: Schema): Schema {
  if (typeof writer === 'string') {
    const r = g.rnd();
    if (writer === 'int') return r < 0.3 ? 'long' : r < 0.4 ? 'double' : 'int';
    if (writer === 'float' && r < 0.3) return 'double';
    if (writer === 'string' && r < 0.2) return 'bytes';
    return writer;
  }
  if (Array.isArray(writer)) {
    const branches = writer.map((b) => derive(g, b));
    const names = new Set(branches.map(branchName));
    // Promotions may make two branches one kind ([int, double]): keep the writer's union then.
    if (names.size < branches.length) return writer;
    if (g.rnd() < 0.3 && !names.has('boolean')) branches.push('boolean');
    return branches;
  }
  const t = writer['type'];
  if (t === 'array') return { type: 'array', items: derive(g, writer['items'] as Schema) };
  if (t === 'map') return { type: 'map', values: derive(g, writer['values'] as Schema) };
  if (t === 'enum') return g.rnd() < 0.3 ? { ...writer, symbols: ['A', 'B', 'C', 'D'] } : writer;
  if (t === 'record') {
    const fields: Array<Record<string, unknown>> = [];
    for (const f of writer['fields'] as Array<{ name: string; type: Schema }>) {
      const r = g.rnd();
      if (r < 0.3) continue; // dropped: the reader skips it
      if (r < 0.45) fields.push({ name: `${f.name}_renamed`, aliases: [f.name], type: derive(g, f.type) });
      else fields.push({ name: f.name, type: derive(g, f.type) });
    }
    if (g.rnd() < 0.3) fields.push({ name: 'added', type: ['null', 'string'], default: null });
    return { ...writer, fields };
  }
  return writer; // fixed
}

/** Number of schema nodes (a bound on the work of reading one value of it, per byte). */
export function nodes(s: Schema): number {
  if (typeof s === 'string') return 1;
  if (Array.isArray(s)) return 1 + s.reduce((n: number, b) => n + nodes(b), 0);
  const t = s['type'];
  if (t === 'array') return 1 + nodes(s['items'] as Schema);
  if (t === 'map') return 1 + nodes(s['values'] as Schema);
  if (t === 'record') return 1 + (s['fields'] as Array<{ type: Schema }>).reduce((n, f) => n + nodes(f.type), 0);
  return 1;
}

/** Whether values of `s` take no bytes (null, a record of such fields, fixed of size 0). */
export function zeroSizeSchema(s: Schema): boolean {
  if (typeof s === 'string') return s === 'null';
  if (Array.isArray(s)) return false;
  if (s['type'] === 'record') return (s['fields'] as Array<{ type: Schema }>).every((f) => zeroSizeSchema(f.type));
  return s['type'] === 'fixed' && s['size'] === 0;
}

/** Whether some array in `s` has zero-size items (which may outnumber the bytes). */
export function mayHoldZeroSize(s: Schema): boolean {
  if (typeof s === 'string') return false;
  if (Array.isArray(s)) return s.some(mayHoldZeroSize);
  const t = s['type'];
  if (t === 'array') return zeroSizeSchema(s['items'] as Schema) || mayHoldZeroSize(s['items'] as Schema);
  if (t === 'map') return mayHoldZeroSize(s['values'] as Schema);
  if (t === 'record') return (s['fields'] as Array<{ type: Schema }>).some((f) => mayHoldZeroSize(f.type));
  return false;
}

/** A record of `n` null fields, and an int after them if `withInt` (a peer's cheap-to-send wide type). */
export function wideRecord(g: Gen, n: number, withInt: boolean): Schema {
  const fields: Array<{ name: string; type: Schema }> = Array.from({ length: n }, (_, i) => ({ name: `n${i}`, type: 'null' }));
  if (withInt) fields.push({ name: 'v', type: 'int' });
  return { type: 'record', name: `${g.prefix}${g.names++}`, fields };
}

/** Avro zig-zag varint of `n` (exact for |n| up to 2^53). */
export function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n >= 0 ? n * 2 : -n * 2 - 1;
  for (;;) {
    if (v < 0x80) {
      out.push(v);
      break;
    }
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  return Buffer.from(out);
}

/** Claimed counts and lengths an attacker picks. */
export const HUGE = [2 ** 40, 2 ** 31, 2 ** 53 - 1, 1e9, 65537, 1e6];

/**
 * The first bytes of a value of `s` that lie about their size: an array or map block claiming a huge
 * count (or a negative count with a huge, zero or negative byte size), a string or bytes claiming a
 * huge or negative length, reaching the innermost array of nested types; a few junk bytes may follow.
 * For other kinds, a few random bytes.
 */
export function lyingValue(g: Gen, s: Schema): Buffer {
  const parts: Buffer[] = [];
  let cur: Schema = s;
  for (let guard = 0; guard < 8; guard++) {
    if (Array.isArray(cur)) {
      // Pick the branch that can lie best: an array, map, string or bytes one if there is.
      const i = cur.findIndex((b) => typeof b === 'object' && !Array.isArray(b) && (b['type'] === 'array' || b['type'] === 'map'));
      const at = i >= 0 ? i : int(g, cur.length);
      parts.push(varint(at));
      cur = cur[at]!;
      continue;
    }
    if (typeof cur === 'object' && (cur['type'] === 'array' || cur['type'] === 'map')) {
      const inner = (cur['type'] === 'array' ? cur['items'] : cur['values']) as Schema;
      const nested =
        typeof inner === 'object' &&
        !Array.isArray(inner) &&
        (inner['type'] === 'array' || inner['type'] === 'map' || inner['type'] === 'record');
      if (nested && g.rnd() < 0.5) {
        // A small honest count, then lie inside the first item.
        parts.push(varint(1 + int(g, 3)));
        if (cur['type'] === 'map') parts.push(varint(1), Buffer.from('k'));
        cur = inner;
        continue;
      }
      const r = g.rnd();
      if (r < 0.6) parts.push(varint(HUGE[int(g, HUGE.length)]!));
      else {
        const sizes = [2 ** 40, 0, -1, -2, -3, 2 ** 31];
        parts.push(varint(-HUGE[int(g, HUGE.length)]!), varint(sizes[int(g, sizes.length)]!));
      }
      break;
    }
    if (typeof cur === 'object' && cur['type'] === 'record') {
      const fields = cur['fields'] as Array<{ type: Schema }>;
      if (fields.length === 0) break;
      cur = fields[0]!.type;
      continue;
    }
    if (cur === 'string' || cur === 'bytes') {
      parts.push(varint([2 ** 40, 2 ** 31, -1, -(2 ** 40), 1e9][int(g, 5)]!));
      break;
    }
    break;
  }
  const junk = Buffer.from(Array.from({ length: int(g, 6) }, () => [0, 1, 2, 0x7f, 0x80, 0xff][int(g, 6)]!));
  return Buffer.concat([...parts, junk]);
}

/** Mutations of valid bytes: truncated, a lying varint spliced in, a run of 0xff/0x80, junk appended. */
export function mutateBytes(g: Gen, valid: Buffer): Buffer {
  const at = int(g, valid.length + 1);
  switch (int(g, 4)) {
    case 0:
      return valid.subarray(0, at);
    case 1:
      return Buffer.concat([valid.subarray(0, at), varint((g.rnd() < 0.5 ? 1 : -1) * HUGE[int(g, HUGE.length)]!), valid.subarray(at)]);
    case 2: {
      const b = Buffer.from(valid);
      b.fill([0xff, 0x80, 0x01, 0x03][int(g, 4)]!, at, Math.min(b.length, at + 1 + int(g, 8)));
      return b;
    }
    default:
      return Buffer.concat([valid, Buffer.from(Array.from({ length: 1 + int(g, 8) }, () => int(g, 256)))]);
  }
}
