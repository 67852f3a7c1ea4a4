/**
 * The generator reads protocols as avsc does: the same full names for named types (namespaces
 * inherited, dotted names, the null namespace), the same wrapped or unwrapped unions; and its naming
 * and doc rules (collisions, reserved words, JSDoc text) hold.
 */
import avro from 'avsc';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProtocol, parseProtocol, type Protocol } from '../../src/codec/protocol.js';
import { jsdoc } from '../../src/codegen/jsdoc.js';
import { render } from '../../src/codegen/layout.js';
import { generateModule } from '../../src/codegen/module.js';
import { readProtocol, type TypeRef } from '../../src/codegen/protocol-model.js';
import { propertyKey, typeNames } from '../../src/codegen/ts-names.js';
import { wrapsUnion } from '../../src/codegen/type-printer.js';
import { loadAll } from './codegen-fixture.js';

const test = suite('codegen mapping');

type AvscType = avro.Type & {
  name?: string;
  fields?: { type: AvscType }[];
  itemsType?: AvscType;
  valuesType?: AvscType;
  types?: AvscType[];
};

/** Walks `ref` and avsc's type for the same schema together; returns how many unions it compared. */
function compareUnions(protocol: Protocol, ref: TypeRef, type: AvscType, where: string): number {
  const kinds = new Map(readProtocol(protocol).types.map((t) => [t.fullName, t.kind]));
  const longs = protocol.options.longs ?? 'number';
  switch (ref.kind) {
    case 'union': {
      const wrapped = type.typeName === 'union:wrapped';
      assert.ok(type.typeName.startsWith('union:'), `${where}: avsc has ${type.typeName}`);
      assert.is(wrapsUnion(ref.branches, { kinds, longs }), wrapped, `${where}: wrapped (longs ${longs})`);
      return 1 + ref.branches.reduce((n, b, i) => n + compareUnions(protocol, b, type.types![i]!, `${where}|${i}`), 0);
    }
    case 'array':
      return compareUnions(protocol, ref.items, type.itemsType!, `${where}[]`);
    case 'map':
      return compareUnions(protocol, ref.values, type.valuesType!, `${where}{}`);
    case 'named':
      assert.is(type.name, ref.fullName, where);
      return 0;
    default:
      return 0;
  }
}

test('named types get the full names and kinds avsc gives them', async () => {
  let checked = 0;
  for (const [file, protocol] of await loadAll()) {
    for (const t of readProtocol(protocol).types) {
      const type = protocol.type(t.fullName) as AvscType | undefined;
      assert.ok(type !== undefined, `${file}: ${t.fullName} unknown to avsc`);
      assert.is(type.name, t.fullName, file);
      assert.is(type.typeName, t.kind, `${file}: ${t.fullName}`);
      checked++;
    }
  }
  assert.ok(checked > 40, `only ${checked} named types`);
});

test('unions are wrapped exactly where avsc wraps them, with longs as numbers, bigints and strings', async () => {
  let unions = 0;
  const all = [...(await loadAll()).entries()];
  const big = await Promise.all(all.map(async ([file]) => [file, await loadProtocol(file, { longs: 'bigint' })] as const));
  const str = await Promise.all(all.map(async ([file]) => [file, await loadProtocol(file, { longs: 'string' })] as const));
  for (const [file, protocol] of [...all, ...big, ...str]) {
    const model = readProtocol(protocol);
    for (const t of model.types) {
      const type = protocol.type(t.fullName) as AvscType;
      t.fields.forEach((f, i) => (unions += compareUnions(protocol, f.type, type.fields![i]!.type, `${file} ${t.fullName}.${f.name}`)));
    }
    for (const m of model.messages) {
      const def = protocol.message(m.name)!;
      const request = def.request as AvscType;
      m.request.forEach((f, i) => (unions += compareUnions(protocol, f.type, request.fields![i]!.type, `${file} ${m.name}(${f.name})`)));
      unions += compareUnions(protocol, m.response, def.response as AvscType, `${file} ${m.name} response`);
    }
  }
  assert.ok(unions >= 12, `only ${unions} unions compared`);
});

test('wrapping follows the buckets of values: two records, int and long, an enum and a string, a map and a record', () => {
  const p = parseProtocol(`protocol P {
    enum E { A } fixed F(2); record R { int a; } record S { int b; }
    record T {
      union { null, R, S } rs; union { int, long } il; union { string, E } se; union { map<int>, R } mr;
      union { bytes, F } bf; union { null, R } nr; union { null, int, string, R, E } wrappedWithNull;
      union { null, boolean, int, string, bytes, array<int>, R } unwrapped;
    }
  }`);
  const text = generateModule(p, { source: 'p.avdl' });
  assert.match(text, '  rs: null | { R: R } | { S: S };');
  assert.match(text, '  il: { int: number } | { long: number };');
  assert.match(text, '  se: { string: string } | { E: E };');
  assert.match(text, '  mr: { map: { [key: string]: number } } | { R: R };');
  assert.match(text, '  bf: { bytes: Buffer } | { F: F };');
  assert.match(text, '  nr: null | R;');
  assert.match(text, '  wrappedWithNull: null | { int: number } | { string: string } | { R: R } | { E: E };');
  assert.match(text, '  unwrapped: null | boolean | number | string | Buffer | number[] | R;');
});

test('one TypeScript name per full name: later collisions, reserved words and the API name take the full name', () => {
  const names = typeNames(['a.Item', 'b.Item', 'Item', 'a.class', 'number', 'x.Buffer', 'Api', 'a.b_Item', 'a_b.Item'], ['Api']);
  assert.equal(Object.fromEntries(names), {
    'a.Item': 'Item',
    'b.Item': 'b_Item',
    Item: 'Item_',
    'a.class': 'a_class',
    number: 'number_',
    'x.Buffer': 'x_Buffer',
    Api: 'Api_',
    'a.b_Item': 'a_b_Item',
    'a_b.Item': 'a_b_Item_',
  });
  assert.is(propertyKey('function'), 'function');
  assert.is(propertyKey('avrpc.echo.EchoError'), "'avrpc.echo.EchoError'");
});

test('docs: one line or a block, relative indentation kept, trailing spaces dropped, */ cannot close the comment', () => {
  assert.is(jsdoc([undefined]), undefined);
  assert.is(jsdoc(['  \n ']), undefined);
  assert.is(render(jsdoc(['  One line.  '])!, 140), '/** One line. */');
  assert.is(render(jsdoc(['Ends */ here'])!, 140), '/** Ends *\\/ here */');
  assert.is(
    render(jsdoc(['    First\n      second  \n\n    third', 'note'])!, 140),
    '/**\n * First\n *   second\n *\n * third\n * note\n */',
  );
});

test('docs of types, fields, enums, fixed and messages, logical types and parameter docs become JSDoc', () => {
  const p = parseProtocol(`protocol P {
    /** An enum. */ enum E { A, B }
    /** A fixed. */ fixed F(2);
    /** A record. */ record R {
      /** A field. */ int a;
      @logicalType("timestamp-millis") long at;
      array<union { null, @logicalType("date") int }> days;
      /** Odd */ string weird;
    }
    /** A message. */ R get(/** The key. */ string key, int n);
  }`);
  const text = generateModule(p, { source: 'p.avdl' });
  assert.match(text, '/** An enum. */\nexport type E = ');
  assert.match(text, '/**\n * A fixed.\n * fixed, 2 bytes\n */\nexport type F = Buffer;');
  assert.match(
    text,
    '/** A record. */\nexport interface R {\n  /** A field. */\n  a: number;\n  /** timestamp-millis */\n  at: number;\n  /** date */\n  days: (null | number)[];',
  );
  assert.match(text, '  /**\n   * A message.\n   * @param key The key.\n   */\n  get: {');
});

test('a protocol without messages or types still gives a module with its API type', () => {
  const text = generateModule(parseProtocol('protocol Nothing {}'), { source: 'n.avdl' });
  assert.is(
    text,
    '// Generated by avrpc gen from n.avdl (protocol Nothing). Do not edit.\n\n' +
      '/** The messages of protocol Nothing, for `createClient<NothingApi>` and `createServer<NothingApi>`. */\nexport interface NothingApi {}\n',
  );
});

test.run();
