/**
 * The `longs` modes beyond `number`: `bigint` takes safe-integer numbers on encode, `string` gives
 * decimal strings exact over the whole 64-bit range (and takes numbers and BigInts), over real
 * sockets, in workers, and across schema resolution (v0/v2 of the echo protocol, int -> long and
 * long -> double promotions). The string parser refuses every other spelling.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, createClient, createServer, parseProtocol, type Client, type Protocol, type Server } from '../../src/index.js';
import { loadEcho, rejection } from '../helpers/echo-fixture.js';
import { DATA_IDL, num } from './data-handlers.js';

const test = suite('longs: bigint and string modes');
const opened: Array<{ server: Server; client: Client }> = [];

test.after(async () => {
  for (const { client, server } of opened) {
    await client.close();
    await server.close({ graceMs: 1000 });
  }
});

/** A server (inline or with `num` in a worker) and a client, each with its own protocol. */
async function pair(serverProtocol: Protocol, clientProtocol: Protocol, handlers: object, worker = false): Promise<Client> {
  const server = createServer({
    protocol: serverProtocol,
    handlers: worker ? {} : (handlers as never),
    ...(worker
      ? { workers: { module: new URL('./data-handlers.js', import.meta.url), messages: ['num'], threads: 1, offload: 'always' } }
      : {}),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({ protocol: clientProtocol, endpoints: [`127.0.0.1:${port}`] });
  opened.push({ server, client });
  return client;
}

const data = { bigint: parseProtocol(DATA_IDL, { longs: 'bigint' }), string: parseProtocol(DATA_IDL, { longs: 'string' }) };
const MAX = 2n ** 63n - 1n;
const MIN = -(2n ** 63n);

interface Num {
  id: unknown;
  opt: unknown;
  ld: unknown;
  many: unknown[];
  seen: string;
}

test('bigint: safe-integer numbers encode as longs (decoded as BigInts); a double in union { long, double } stays a double', async () => {
  const client = await pair(data.bigint, data.bigint, { num });
  const r = await client.call<Num>('num', { num: { id: 5, opt: -3, ld: 5, many: [1, 2n, Number.MAX_SAFE_INTEGER] } });
  assert.equal({ ...r }, { id: 5n, opt: -3n, ld: 5, many: [1n, 2n, BigInt(Number.MAX_SAFE_INTEGER)], seen: 'bigint' });
  const long = await client.call<Num>('num', { num: { id: MAX, opt: null, ld: 5n, many: [] } });
  assert.equal([long.id, long.ld], [MAX, 5n], 'a bigint takes the long branch');
});

test('bigint: a fraction or an unsafe number is INVALID_ARGUMENT naming the field', async () => {
  const client = await pair(data.bigint, data.bigint, { num });
  for (const [value, shown] of [
    [5.5, '5.5'],
    [2 ** 53, '9007199254740992'],
    [NaN, 'NaN'],
  ] as const) {
    const err = await rejection(client.call('num', { num: { id: 1, opt: null, ld: 0, many: [0, value] } }));
    assert.is(err.code, Code.INVALID_ARGUMENT);
    assert.is(err.message, `invalid request for num: num.many.1: ${shown} is not a valid long`);
  }
});

test('string: the extremes round-trip exactly as decimal strings; numbers and BigInts are accepted; inline and in a worker', async () => {
  for (const worker of [false, true]) {
    const client = await pair(data.string, data.string, { num }, worker);
    for (const id of [MAX, MIN, 2n ** 53n + 1n, 0n, -1n]) {
      const r = await client.call<Num>('num', { num: { id: id.toString(), opt: id, ld: '7', many: [Number(id % 1000n), id] } });
      assert.equal({ ...r }, { id: id.toString(), opt: id.toString(), ld: '7', many: [String(id % 1000n), id.toString()], seen: 'string' });
    }
    // A number in union { long, double } stays the double; only a string or a BigInt is the long.
    const d = await client.call<Num>('num', { num: { id: 1, opt: null, ld: 2.5, many: [] } });
    assert.is(d.ld, 2.5);
  }
});

/** Spellings of a long the string mode refuses: one spelling per value (the one it decodes to). */
const HOSTILE = [
  '1e3',
  ' 1',
  '1 ',
  '-0',
  '+1',
  '01',
  '',
  '-',
  '0x10',
  '1.0',
  '1_000',
  '\u0661', // ARABIC-INDIC DIGIT ONE: \d is ASCII only
  '9223372036854775808',
  '-9223372036854775809',
  '99999999999999999999',
  '9'.repeat(1_000_000),
];

test('string: hostile spellings and out-of-range values are INVALID_ARGUMENT naming the field, inline check and over the wire', async () => {
  const type = data.string.type('Num')!;
  const valid = { id: '0', opt: null, ld: 0, many: [] };
  for (const id of ['0', '-1', MAX.toString(), MIN.toString()]) assert.ok(type.isValid({ ...valid, id }), `${id} is a long`);
  for (const id of [...HOSTILE, 5.5, 2 ** 53, -(2 ** 53), Infinity, MAX + 1n, MIN - 1n, true, null]) {
    assert.not.ok(type.isValid({ ...valid, id }), `${String(id).slice(0, 30)} is no long`);
  }
  const client = await pair(data.string, data.string, { num });
  for (const id of HOSTILE) {
    const err = await rejection(client.call('num', { num: { ...valid, id } }));
    assert.is(err.code, Code.INVALID_ARGUMENT, String(id).slice(0, 30));
    assert.match(err.message, /^invalid request for num: num\.id: .* is not a valid long$/);
  }
});

test('string: a union of long and string (or an enum) is wrapped, so "5" the long and "5" the string stay apart', () => {
  const idl =
    'protocol U { enum E { A } record R { union { null, long, string } ls; union { long, E } le; union { null, long } nl; } R m(R r); }';
  const str = parseProtocol(idl, { longs: 'string' }).type('R')!;
  const big = parseProtocol(idl, { longs: 'bigint' }).type('R')!;
  const value = { ls: { long: '5' }, le: { E: 'A' }, nl: '6' };
  const back = str.fromBuffer(str.toBuffer(value)) as Record<string, unknown>;
  assert.equal(JSON.parse(JSON.stringify(back)), { ls: { long: '5' }, le: { E: 'A' }, nl: '6' });
  const asString = str.fromBuffer(str.toBuffer({ ...value, ls: { string: '5' } })) as { ls: unknown };
  assert.equal({ ...(asString.ls as object) }, { string: '5' });
  // The bigint mode keeps the unions unwrapped, as before: its longs are BigInts, distinct from strings.
  const b = big.fromBuffer(big.toBuffer({ ls: 5n, le: 'A', nl: 6 })) as Record<string, unknown>;
  assert.equal({ ...b }, { ls: 5n, le: 'A', nl: 6n });
});

test("JSON form: both exact modes write a safe long as a number and a larger one as its digits' string", () => {
  for (const mode of ['bigint', 'string'] as const) {
    const type = data[mode].type('Num')!;
    const id = mode === 'bigint' ? MAX : MAX.toString();
    const json = type.toString({ id, opt: mode === 'bigint' ? 5n : '5', ld: 0, many: [] });
    assert.is(json, '{"id":"9223372036854775807","opt":{"long":5},"ld":{"double":0},"many":[],"seen":""}', mode);
    const back = type.fromString(json) as Num;
    assert.equal([back.id, back.opt], mode === 'bigint' ? [MAX, 5n] : [MAX.toString(), '5']);
  }
});

for (const longs of ['bigint', 'string'] as const) {
  test(`${longs}: the echo protocol's v0 and v2 resolve into each other both ways`, async () => {
    const v0 = await loadEcho('echo-v0.avdl', longs as never);
    const v2 = await loadEcho('echo-v2.avdl', longs as never);
    const id = longs === 'bigint' ? MAX : MAX.toString();
    const echo = (req: { item: object }) => req.item;
    const v0Item = { id, name: 'n', tags: ['t'], score: 1.5 };
    const fromOld = await pair(v2, v0, { echo });
    assert.equal({ ...(await fromOld.call<object>('echo', { item: v0Item })) }, v0Item);
    const fromNew = await pair(v0, v2, { echo });
    const r = await fromNew.call<Record<string, unknown>>('echo', { item: { ...v0Item, blob: Buffer.from('x'), note: 'dropped' } });
    assert.equal({ ...r, blob: [...(r.blob as Buffer)] }, { ...v0Item, blob: [], note: null }, 'v2 defaults fill what v0 lacks');
  });

  test(`${longs}: int -> long and long -> double promotions resolve`, async () => {
    const writer = parseProtocol('protocol P { record In { int n; } long f(In x); double g(long x); }', { longs });
    const reader = parseProtocol('protocol P { record In { long n; } long f(In x); long g(long x); }', { longs });
    const seen: unknown[] = [];
    const client = await pair(reader, writer, {
      f: (req: { x: { n: unknown } }) => (seen.push(req.x.n), req.x.n),
      g: (req: { x: unknown }) => req.x,
    });
    const f = await client.call('f', { x: { n: -7 } });
    assert.equal(seen, [longs === 'bigint' ? -7n : '-7'], 'the server reads the int as its long');
    assert.equal(f, longs === 'bigint' ? -7n : '-7');
    const big = 2n ** 40n + 1n;
    const g = await client.call('g', { x: longs === 'bigint' ? big : big.toString() });
    assert.is(g, Number(big), "the client reads the server's long as its double");
  });
}

test.run();
