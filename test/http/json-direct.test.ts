/**
 * The gateway's direct JSON converters (src/server/http/json-direct.ts) give what the general path
 * gives (Avro JSON checked, copied, then through the Avro binary into the server's types), for every
 * type they take, in every longs mode and both bytes modes; what they do not take falls back to it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type avro from 'avsc';
import { Protocol } from '../../src/index.js';
import { jsonMessages, requestFromJson, toAvroJson, type JsonMessage } from '../../src/codec/avro-json.js';
import type { BytesMode } from '../../src/codec/json-input.js';
import type { MessageDef } from '../../src/codec/protocol.js';
import { Miss, directReader } from '../../src/server/http/json-direct.js';
import { directWriter, type DirectWriter } from '../../src/server/http/json-writer.js';
import { JsonBytes } from '../../src/server/http/json-bytes.js';
import { HttpRoute } from '../../src/server/http/http-route.js';

const schema = {
  protocol: 'T',
  namespace: 't',
  types: [
    { type: 'enum', name: 'Color', symbols: ['RED', 'GREEN'] },
    { type: 'fixed', name: 'Four', size: 4 },
    { type: 'record', name: 'Inner', fields: [{ name: 'x', type: 'int' }] },
    {
      type: 'record',
      name: 'Big',
      fields: [
        { name: 'i', type: 'int' },
        { name: 'l', type: 'long' },
        { name: 'f', type: 'float' },
        { name: 'd', type: 'double' },
        { name: 's', type: 'string' },
        { name: 'b', type: 'bytes' },
        { name: 'bo', type: 'boolean' },
        { name: 'n', type: 'null' },
        { name: 'e', type: 'Color' },
        { name: 'fx', type: 'Four' },
        { name: 'a', type: { type: 'array', items: 'Inner' } },
        { name: 'm', type: { type: 'map', values: 'long' } },
        { name: 'o', type: ['null', 'Inner'], default: null },
        { name: 'os', type: ['null', 'string'], default: null },
        { name: 'def', type: 'string', default: 'dflt' },
      ],
    },
  ],
  messages: {
    all: { request: [{ name: 'big', type: 'Big' }], response: 'Big' },
    wide: { request: [{ name: 'u', type: ['int', 'string'] }], response: ['int', 'string'] },
  },
};

const big = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  i: -7,
  l: 1234567890123,
  f: 0.1,
  d: 3.14159,
  s: 'héllo ☃',
  b: '\u0000\u00ff\u0041',
  bo: true,
  n: null,
  e: 'GREEN',
  fx: 'abcd',
  a: [{ x: 1 }, { x: -2 }],
  m: { one: 1, two: -2 },
  o: { 't.Inner': { x: 5 } },
  os: { string: 'yes' },
  def: 'given',
  ...over,
});

/** Request bodies the direct path reads (in latin1 mode; base64 bodies are made from them). */
const bodies = [
  big(),
  big({ o: null, os: null }),
  big({ i: -0, f: 1e-50, d: -0, a: [], m: {} }),
  // Every byte value (quotes, backslash, controls, DEL, high bytes), and one beyond the table's length.
  big({ b: Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('latin1') }),
  big({ b: 'x"\\'.repeat(200) }),
  // Every ASCII character, 2-, 3- and 4-byte UTF-8, U+2028; then the same past the byte-by-byte length.
  big({ s: String.fromCharCode(...Array.from({ length: 128 }, (_, i) => i)) + 'é€😀\u2028\uffff', m: { 'k"\\\n': 1, é: 2 } }),
  big({ s: `${String.fromCharCode(...Array.from({ length: 128 }, (_, i) => i))}é€😀`.repeat(12) }),
  big({ b: Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256)).toString('latin1') }),
  big({ i: -2147483648, l: -900719925474099, d: 1e21, f: -1.5, m: { a: 2147483647, b: -2147483647, c: 2147483648, d: 0 } }),
  big({ i: 2147483647, l: 90071992547409, d: 5e-324 }),
  Object.fromEntries(Object.entries(big()).filter(([k]) => !['o', 'os', 'def'].includes(k))),
].map((b) => JSON.stringify({ big: b }));

const out = new JsonBytes();

/** What `write` prints of `value`, as text (its bytes checked to be UTF-8 of it). */
function print(write: DirectWriter, value: unknown): string {
  write(value, out);
  const bytes = out.take();
  const text = bytes.toString('utf8');
  assert.ok(Buffer.from(text, 'utf8').equals(bytes), 'well-formed UTF-8');
  return text;
}

function general(msg: MessageDef, json: JsonMessage, text: string): unknown {
  return msg.request.fromBuffer(json.request.toBuffer(requestFromJson(json, text)));
}

function base64Body(text: string): string {
  const v = JSON.parse(text) as { big: Record<string, string> };
  for (const k of ['b', 'fx']) v.big[k] = Buffer.from(v.big[k]!, 'latin1').toString('base64');
  return JSON.stringify(v);
}

for (const longs of ['number', 'bigint', 'string'] as const) {
  for (const bytes of ['latin1', 'base64'] as BytesMode[]) {
    test(`longs ${longs}, bytes ${bytes}: direct read and print equal the general path`, () => {
      const protocol = new Protocol(schema, { longs });
      const msg = protocol.message('all')!;
      const json = jsonMessages(protocol, bytes).get('all')!;
      const read = directReader(msg.request, bytes);
      const write = directWriter(msg.response, bytes);
      assert.ok(read !== undefined && write !== undefined, 'the direct path takes these types');
      for (const latin1Text of bodies) {
        const text = bytes === 'base64' ? base64Body(latin1Text) : latin1Text;
        const want = general(msg, json, text) as { big: object };
        const got = read(JSON.parse(text)) as { big: object };
        assert.ok(msg.request.toBuffer(got).equals(msg.request.toBuffer(want)), text);
        assert.is(got.constructor, want.constructor);
        assert.is(got.big.constructor, want.big.constructor);
        assert.equal(got, want);
        const printed = toAvroJson(json.response, json.response.fromBuffer(msg.response.toBuffer(want.big)), 0, bytes);
        assert.is(print(write, want.big), printed);
      }
    });
  }
}

test('a lone surrogate is not direct (avsc writes it as three U+FFFD): the route gives what the general path gives', () => {
  const protocol = new Protocol(schema);
  const msg = protocol.message('all')!;
  const json = jsonMessages(protocol).get('all')!;
  const text = JSON.stringify({ big: big({ s: 'lone \ud800 surrogate' }) });
  assert.throws(
    () => directReader(msg.request, 'latin1')!(JSON.parse(text)),
    (err: unknown) => err instanceof Miss,
  );
  const route = new HttpRoute(msg, json);
  const want = general(msg, json, text) as { big: { s: string } };
  assert.equal(route.request(text), want);
  assert.is(want.big.s, 'lone \ufffd\ufffd\ufffd surrogate');
  assert.is(
    route.response({ ...want.big, s: 'x\udc00' }).toString(),
    toAvroJson(json.response, json.response.fromBuffer(msg.response.toBuffer({ ...want.big, s: 'x\udc00' }))),
  );
});

test('a long beyond 2^53 (bigint mode) stays exact: the general parser reads it', () => {
  const protocol = new Protocol(schema, { longs: 'bigint' });
  const route = new HttpRoute(protocol.message('all')!, jsonMessages(protocol).get('all')!);
  const text = JSON.stringify({ big: big() }).replace('1234567890123', '9007199254740993');
  const got = route.request(text) as { big: { l: bigint } };
  assert.is(got.big.l, 9007199254740993n);
  assert.ok(route.response(got.big).toString().includes('"l":9007199254740993'));
});

test('what the direct path refuses gets the general path and its errors', () => {
  const protocol = new Protocol(schema);
  const msg = protocol.message('all')!;
  const json = jsonMessages(protocol).get('all')!;
  const route = new HttpRoute(msg, json);
  const wrong = [
    JSON.stringify({ big: big({ extra: 1 }) }),
    JSON.stringify({ big: big({ i: 2 ** 31 }) }),
    JSON.stringify({ big: big({ b: 'snowman ☃' }) }),
    JSON.stringify({ big: big({ e: 'BLUE' }) }),
    JSON.stringify({ big: big({ fx: 'abc' }) }),
    JSON.stringify({ big: big({ o: { Inner: { x: 1 } } }) }),
    '{"big": ',
    '[]',
  ];
  for (const text of wrong) {
    let expected: string | undefined;
    let value: unknown;
    try {
      value = general(msg, json, text);
    } catch (err) {
      expected = (err as Error).message;
    }
    if (expected === undefined) assert.equal(route.request(text), value, text);
    else
      assert.throws(
        () => route.request(text),
        (err: Error) => err.message === expected,
        text,
      );
  }
});

test('a union of two non-null branches is not direct: the route still reads and prints it', () => {
  const protocol = new Protocol(schema);
  const msg = protocol.message('wide')!;
  assert.is(directReader(msg.request, 'latin1'), undefined);
  assert.is(directWriter(msg.response as avro.Type, 'latin1'), undefined);
  const route = new HttpRoute(msg, jsonMessages(protocol).get('wide')!);
  assert.equal((route.request('{"u":{"string":"s"}}') as { u: unknown }).u, 's');
  assert.is(route.response(5).toString(), '{"int":5}');
});

test.run();
