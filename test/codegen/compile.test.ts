/**
 * Generated modules compile under `tsc --strict` (the TypeScript compiler API, in-process), their
 * API types are what `createClient<Api>` and `createServer<Api>` take (ApiShape, CallError), and their types describe the values avsc reads and
 * writes: a value the types accept is valid for avsc, and the shapes avsc refuses (a bare record in
 * a wrapped union, a symbol outside the enum) do not compile.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Protocol, loadProtocol } from '../../src/codec/protocol.js';
import { generateModule } from '../../src/codegen/module.js';
import type { LongsMode } from '../../src/codegen/type-printer.js';
import { simpleName } from '../../src/codegen/protocol-model.js';
import { seeded } from '../helpers/prng.js';
import { repoPath } from '../helpers/repo.js';
import { EVERYTHING, API_SHAPE, loadAll, typeCheck } from './codegen-fixture.js';
import { randomProtocol } from './random-protocol.js';

const test = suite('codegen compile');

/** Modules of `protocols` (one file each) and a file that checks each API type against ApiShape. */
function withSpecChecks(protocols: readonly { protocol: Protocol; longs: LongsMode }[]): Record<string, string> {
  const files: Record<string, string> = { 'spec.ts': API_SHAPE };
  const checks = ["import type { Specs } from './spec.js';"];
  protocols.forEach(({ protocol, longs }, i) => {
    files[`m${i}.ts`] = generateModule(protocol, { source: `m${i}.avdl`, longs });
    const api = `${simpleName(protocol.name)}Api`;
    checks.push(`import type { ${api} as Api${i} } from './m${i}.js';`, `export type Check${i} = Specs<Api${i}>;`);
  });
  files['checks.ts'] = checks.join('\n');
  return files;
}

test('the modules of every protocol of the repository (each longs mode) and of random protocols compile', async () => {
  const modes = ['number', 'bigint', 'string'] as const;
  const repo = [...(await loadAll()).values()].flatMap((protocol) => modes.map((longs) => ({ protocol, longs })));
  const rnd = seeded(7);
  const random = Array.from({ length: 60 }, (_, i) => ({ protocol: new Protocol(randomProtocol(rnd, i)), longs: modes[i % 3]! }));
  assert.equal(typeCheck(withSpecChecks([...repo, ...random])), []);
});

/** A Thing of everything.avdl, as TypeScript source that is also a JavaScript expression. */
const THING = `{
  id: 1, small: 2, ratio: 0.5, score: 1.5, ok: true, name: 'n',
  blob: Buffer.from('ab'), hash: Buffer.alloc(4), price: Buffer.alloc(8), color: 'BLUE',
  nickname: null, item: { id: 3, other: { label: 'x' } },
  shape: { 'avrpc.gen.Line': { from: { x: 0, y: 0 }, to: { x: 1, y: 1 } } },
  number: { long: 5 }, label: { 'avrpc.gen.Color': 'RED' },
  points: [null, { x: 1, y: 2 }], mixed: ['a', 7], shapes: [{ 'avrpc.gen.Point': { x: 1, y: 1 } }],
  counts: { a: [1, 2] }, tags: { t: null, u: 'v' }, labels: { a: 'b' }, grid: [['a'], []],
  at: 1700000000000, day: 19000, seen: null, class: 'c', delete: 'd', error: 'e', parent: null,
  buffer: { data: Buffer.alloc(1) }, api: { n: 1 }, nothing: {}, files: { f: Buffer.alloc(2) },
}`;

const USES = `
import type { CallError } from '${repoPath('src/codec/api-types.js')}';
import type { Color, EverythingApi, Thing, avrpc_gen_Item } from './everything.js';

export const thing: Thing = ${THING};
export const child: Thing = { ...thing, parent: thing, number: null, label: { string: 's' }, shape: { 'avrpc.gen.Point': { x: 1, y: 1 } } };
// @ts-expect-error a union of two records is wrapped: a bare Point is no value of it
export const bare: Thing = { ...thing, shape: { x: 1, y: 2 } };
// @ts-expect-error PURPLE is not a symbol of Color
export const purple: Color = 'PURPLE';
const { id: _id, ...noId } = thing;
// @ts-expect-error a field with a default is still required
export const defaulted: Thing = noId;
// @ts-expect-error the Item of the protocol's namespace has an id, the other one a label
export const otherItem: avrpc_gen_Item = { label: 'x' };

type Api = EverythingApi;
export const kinds: [Api['get']['kind'], Api['ping']['kind'], Api['watch']['kind'], Api['upload']['kind'], Api['chat']['kind']] = [
  'unary',
  'oneWay',
  'server',
  'client',
  'bidi',
];
export const request: Api['get']['request'] = { id: 1, why: '' };
export const declared: (keyof Api['get']['errors'])[] = ['avrpc.gen.NotFound', 'avrpc.gen.Refused'];
export const refused: Api['get']['errors']['avrpc.gen.Refused'] = { reason: 'r', code: 1 };
// @ts-expect-error watch declares NotFound only
export const undeclared: keyof Api['watch']['errors'] = 'avrpc.gen.Refused';
export const none: Api['touch']['response'] = null;
export const upload: Api['upload']['request'] = { item: { id: 1, other: { label: 'x' } } };
export const nearest: Api['nearest']['response'][] = [null, { x: 1, y: 2 }];
// @ts-expect-error get takes an id
export const typo: Api['get']['request'] = { idd: 1, why: '' };
// @ts-expect-error ping takes no parameter
export const extra: Api['ping']['request'] = { bogus: 1 };

/** A declared error of get, told apart by errorType. */
export function reason(err: CallError<Api, 'get'>): string {
  if (err.errorType === 'avrpc.gen.Refused') return err.details.reason;
  if (err.errorType === 'avrpc.gen.NotFound') return err.details.what;
  // @ts-expect-error without errorType there are no details
  return err.details.reason;
}
`;

test('the types of everything.avdl describe the values avsc accepts', async () => {
  const protocol = await loadProtocol(EVERYTHING);
  const files = { 'everything.ts': generateModule(protocol, { source: 'everything.avdl' }), 'uses.ts': USES };
  assert.equal(typeCheck(files), []);
  const thing = new Function('Buffer', `return ${THING};`)(Buffer) as Record<string, unknown>;
  const type = protocol.type('Thing')!;
  assert.ok(type.isValid(thing), 'the typed Thing is valid for avsc');
  assert.ok(type.isValid({ ...thing, parent: thing, number: null, label: { string: 's' }, shape: { 'avrpc.gen.Point': { x: 1, y: 1 } } }));
  assert.not.ok(type.isValid({ ...thing, shape: { x: 1, y: 2 } }), 'avsc refuses the bare record too');
  assert.not.ok(type.isValid({ ...thing, color: 'PURPLE' }));
  // avsc fills in a left-out field that has a default; the type still requires it, as decoded values always have it.
  const { id: _id, ...noId } = thing;
  assert.ok(type.isValid(noId));
  assert.ok(protocol.type('Refused')!.isValid({ reason: 'r', code: 1 }));
});

/** A Thing with longs as bigints; `union { null, int, long }` is not wrapped then (a bigint long has a bucket of its own in avsc). */
const BIG_THING = `{ ...${THING}, id: 1n, item: { id: 3n, other: { label: 'x' } }, number: 5n, mixed: ['a', 7n], at: 1n, seen: 2n }`;

test('--longs bigint: longs are bigint in the types and in the values of a bigint protocol', async () => {
  const protocol = await loadProtocol(EVERYTHING, { longs: 'bigint' });
  const files = {
    'everything.ts': generateModule(protocol, { source: 'everything.avdl', longs: 'bigint' }),
    'uses.ts': [
      "import type { Thing } from './everything.js';",
      `export const thing: Thing = ${BIG_THING};`,
      'export const small: Thing["number"] = 5;',
      '// @ts-expect-error a long is a bigint',
      'export const id: Thing["id"] = 1;',
    ].join('\n'),
  };
  assert.equal(typeCheck(files), []);
  const thing = new Function('Buffer', `return ${BIG_THING};`)(Buffer) as Record<string, unknown>;
  const type = protocol.type('Thing') as unknown as { fields: { name: string; type: { isValid(v: unknown): boolean } }[] };
  // Longs with a logical type (`at`, `seen`) are bigints too, as the types say.
  const invalid = type.fields.filter((f) => !f.type.isValid(thing[f.name])).map((f) => f.name);
  assert.equal(invalid, []);
});

test('a module that does not compile is reported (the check can fail)', () => {
  const errors = typeCheck({ 'bad.ts': 'export const x: string = 1;\n// @ts-expect-error\nexport const y = 2;' });
  assert.is(errors.length, 2, errors.join('\n'));
  assert.match(errors[0]!, 'TS2322');
  assert.match(errors[1]!, 'TS2578');
});

test.run();
