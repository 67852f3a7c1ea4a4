/**
 * TypeScript names in a generated module: one type name per Avro full name, and property keys.
 */

/**
 * Names a generated type may not take: reserved words, TypeScript's predefined type names and the
 * type operators that cannot be a type reference (each fails to compile), and `Buffer`, which the
 * module uses for `bytes` and `fixed` and a type of that name would shadow.
 */
const RESERVED: ReadonlySet<string> = new Set(
  [
    'break case catch class const continue debugger default delete do else enum export extends false finally for function if',
    'import in instanceof new null return super switch this throw true try typeof var void while with',
    'implements interface let package private protected public static yield await',
    'any unknown never number bigint boolean string symbol object undefined as keyof infer readonly unique',
    'Buffer',
  ]
    .join(' ')
    .split(' '),
);

/**
 * The TypeScript name of each Avro full name in `fullNames` (declaration order): its simple name,
 * unless an earlier type (or one of `taken`, e.g. the API type's name) has it or it is reserved;
 * then the full name with dots as underscores (`avrpc.other.Item` -> `avrpc_other_Item`), with `_`
 * appended until it is free (a type of the null namespace named like a reserved word: `class_`).
 */
export function typeNames(fullNames: readonly string[], taken: readonly string[] = []): ReadonlyMap<string, string> {
  const used = new Set(taken);
  const names = new Map<string, string>();
  const free = (name: string): boolean => !used.has(name) && !RESERVED.has(name);
  for (const full of fullNames) {
    let name = full.slice(full.lastIndexOf('.') + 1);
    if (!free(name)) name = full.replace(/\./g, '_');
    while (!free(name)) name += '_';
    used.add(name);
    names.set(full, name);
  }
  return names;
}

/**
 * `name` as a property key: bare when it is an identifier (reserved words included: TypeScript
 * takes them as property names, and Prettier removes quotes that are not needed), else quoted
 * (`'avrpc.echo.EchoError'`).
 */
export function propertyKey(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : stringLiteral(name);
}

/**
 * A single-quoted string literal (Prettier's `singleQuote`) of an Avro name or enum symbol: letters,
 * digits, `_` and dots, so nothing to escape.
 */
export function stringLiteral(text: string): string {
  return `'${text}'`;
}
