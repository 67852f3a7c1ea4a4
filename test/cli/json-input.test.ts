import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, RpcError } from '../../src/index.js';
import { Protocol } from '../../src/codec/protocol.js';
import { jsonMessages, requestFromJson, toAvroJson } from '../../src/codec/avro-json.js';

/** The CLI's JSON conversions on their own: union branches by simple name, and --bytes base64 in nested types. */
const test = suite('CLI JSON: simple branch names and base64 bytes');

const protocol = new Protocol(
  JSON.stringify({
    protocol: 'P',
    namespace: 'x',
    types: [
      { type: 'record', name: 'Tag', namespace: 'a', fields: [{ name: 'k', type: 'string' }] },
      { type: 'record', name: 'Tag', namespace: 'b', fields: [{ name: 'n', type: 'int' }] },
      { type: 'record', name: 'Solo', namespace: 'c', fields: [{ name: 'b', type: 'bytes' }] },
      { type: 'fixed', name: 'F2', size: 2 },
    ],
    messages: {
      m: {
        request: [
          { name: 'u', type: ['null', 'a.Tag', 'b.Tag', 'c.Solo'] },
          { name: 'deep', type: { type: 'map', values: { type: 'array', items: ['null', 'bytes', 'x.F2'] } } },
        ],
        response: { type: 'map', values: { type: 'array', items: ['null', 'bytes', 'x.F2'] } },
      },
    },
  }),
  { longs: 'bigint' },
);

const refusal = (fn: () => unknown): { code: number; message: string } => {
  try {
    fn();
  } catch (err) {
    const e = err as RpcError;
    return { code: e.code, message: e.message };
  }
  throw new Error('expected a refusal');
};

test('a simple name picks the one branch of that name; two branches of it are refused naming both', () => {
  const m = jsonMessages(protocol).get('m')!;
  // Unions of several named types are wrapped in the decoded value: {"c.Solo": {...}}.
  const solo = requestFromJson(m, '{"u": {"Solo": {"b": "\\u0001"}}, "deep": {}}') as { u: Record<string, { b: Buffer }> };
  assert.equal([...solo.u['c.Solo']!.b], [1]);
  assert.equal(
    refusal(() => requestFromJson(m, '{"u": {"Tag": {"k": "v"}}, "deep": {}}')),
    {
      code: Code.INVALID_ARGUMENT,
      message: 'request of m: u: Tag names 2 branches (a.Tag, b.Tag): use the full name',
    },
  );
  const full = requestFromJson(m, '{"u": {"b.Tag": {"n": 3}}, "deep": {}}') as { u: Record<string, { n: number }> };
  assert.is(full.u['b.Tag']!.n, 3);
});

test('--bytes base64 reads and prints bytes and fixed inside maps, arrays and unions', () => {
  const m = jsonMessages(protocol, 'base64').get('m')!;
  const req = requestFromJson(m, '{"u": null, "deep": {"k": [null, {"bytes": "AP8="}, {"x.F2": "AQI="}]}}') as {
    deep: { k: Array<Record<string, Buffer> | null> };
  };
  assert.equal(
    req.deep.k.map((b) => (b === null ? null : Object.values(b).map((buf) => [...buf])[0])),
    [null, [0, 255], [1, 2]],
  );
  assert.is(toAvroJson(m.response, req.deep, 0, 'base64'), '{"k":[null,{"bytes":"AP8="},{"x.F2":"AQI="}]}');
  assert.is(toAvroJson(m.response, req.deep, 0), '{"k":[null,{"bytes":"\\u0000ÿ"},{"x.F2":"\\u0001\\u0002"}]}');
  assert.equal(
    refusal(() => requestFromJson(m, '{"u": null, "deep": {"k": [{"x.F2": "AQID"}]}}')),
    {
      code: Code.INVALID_ARGUMENT,
      message: 'request of m: deep.k[0].x.F2: expected 2 bytes for fixed, got 3',
    },
  );
});

test.run();
