import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseJson, stringifyJson } from '../../src/codec/lossless-json.js';

const test = suite('lossless JSON');

test('integers beyond 2^53 become BigInt, the rest parse like JSON.parse', () => {
  const text =
    '{"a": 9007199254740993, "b": -9223372036854775808, "c": 9007199254740991, "d": 1.5e300, "e": [true, false, null, "x\\"\\u00ff"], "f": {}}';
  const v = parseJson(text) as Record<string, unknown>;
  assert.is(v.a, 9007199254740993n);
  assert.is(v.b, -9223372036854775808n);
  assert.is(v.c, 9007199254740991);
  assert.is(v.d, 1.5e300);
  assert.equal(v.e, [true, false, null, 'x"\u00ff']);
  assert.equal(v.f, {});
  const plain = '[0, -0.5, 1e2, "a\\nb", {"k": [[]]}]';
  assert.equal(parseJson(plain), JSON.parse(plain));
});

test('malformed input throws SyntaxError', () => {
  for (const bad of ['', '{', '{"a" 1}', '[1,]', '01', '"open', '{"a": 1} x', 'nul']) {
    assert.throws(
      () => parseJson(bad),
      (e: unknown) => e instanceof SyntaxError,
      bad,
    );
  }
});

test('stringify prints BigInt exactly and matches JSON.stringify otherwise', () => {
  assert.is(
    stringifyJson({ id: 12345678901234567890n, s: 'q"', n: null, a: [1, 2n] }),
    '{"id":12345678901234567890,"s":"q\\"","n":null,"a":[1,2]}',
  );
  const v = { a: [1, { b: 'x' }], c: {}, d: [], e: undefined };
  assert.is(stringifyJson(v, 2), JSON.stringify(v, null, 2));
  assert.equal(parseJson(stringifyJson({ x: -(2n ** 63n) })), { x: -(2n ** 63n) });
});

test.run();
