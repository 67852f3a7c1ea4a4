/**
 * JSON text <-> JS values without losing 64-bit integers: integer literals beyond 2^53 parse as
 * BigInt, and BigInts print as bare digits. `JSON.parse` rounds them (Node 20 has no reviver source
 * access), and Avro longs carry real 64-bit ids.
 */

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const LITERALS: ReadonlyArray<[string, unknown]> = [
  ['true', true],
  ['false', false],
  ['null', null],
];

/** Parses JSON text; integers that a double cannot hold exactly become BigInt. Throws SyntaxError. */
export function parseJson(text: string): unknown {
  let pos = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`invalid JSON at position ${pos}: ${what}`);
  };
  const skip = (): void => {
    while (pos < text.length && ' \t\n\r'.includes(text[pos]!)) pos++;
  };
  const value = (): unknown => {
    skip();
    const c = text[pos];
    if (c === '{') {
      pos++;
      const obj: Record<string, unknown> = {};
      skip();
      if (text[pos] === '}') return (pos++, obj);
      for (;;) {
        skip();
        if (text[pos] !== '"') fail('expected a property name');
        const key = string();
        skip();
        if (text[pos++] !== ':') fail("expected ':'");
        Object.defineProperty(obj, key, { value: value(), enumerable: true, writable: true, configurable: true });
        skip();
        const sep = text[pos++];
        if (sep === '}') return obj;
        if (sep !== ',') fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      pos++;
      const arr: unknown[] = [];
      skip();
      if (text[pos] === ']') return (pos++, arr);
      for (;;) {
        arr.push(value());
        skip();
        const sep = text[pos++];
        if (sep === ']') return arr;
        if (sep !== ',') fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [word, v] of LITERALS) {
      if (text.startsWith(word, pos)) return ((pos += word.length), v);
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (m === null) return fail('unexpected character');
    pos += m[0].length;
    const n = Number(m[0]);
    if (m[1] === undefined && m[2] === undefined && !Number.isSafeInteger(n)) return BigInt(m[0]);
    return n;
  };
  /** A string literal: find its end, let JSON.parse decode the escapes. */
  const string = (): string => {
    const start = pos++;
    while (pos < text.length && text[pos] !== '"') pos += text[pos] === '\\' ? 2 : 1;
    if (pos >= text.length) fail('unterminated string');
    pos++;
    return JSON.parse(text.slice(start, pos)) as string;
  };
  const result = value();
  skip();
  if (pos !== text.length) fail('trailing characters');
  return result;
}

/** Like `JSON.stringify(value, null, indent)`, printing BigInts as exact integer literals. */
export function stringifyJson(value: unknown, indent = 0): string {
  const pad = (depth: number): string => (indent > 0 ? `\n${' '.repeat(indent * depth)}` : '');
  const colon = indent > 0 ? ': ' : ':';
  const write = (v: unknown, depth: number): string => {
    if (typeof v === 'bigint') return v.toString();
    if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      return `[${v.map((x) => pad(depth + 1) + write(x, depth + 1)).join(',')}${pad(depth)}]`;
    }
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}';
    return `{${entries.map(([k, x]) => `${pad(depth + 1)}${JSON.stringify(k)}${colon}${write(x, depth + 1)}`).join(',')}${pad(depth)}}`;
  };
  return write(value, 0);
}
