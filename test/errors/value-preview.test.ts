/** previewJson: the bounded JSON of a declared value in an error message never throws and never grows past its bound. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { previewJson } from '../../src/errors/value-preview.js';

test('JSON of plain values, BigInts as digits, bytes as hex, undefined fields left out as JSON.stringify does', () => {
  assert.is(
    previewJson({ a: 1, b: 'x"y', c: [true, null], d: undefined, e: 2n ** 64n }, 200),
    '{"a":1,"b":"x\\"y","c":[true,null],"e":18446744073709551616}',
  );
  assert.is(previewJson({ buf: Buffer.from([1, 255]), u8: new Uint8Array([16]).subarray(0, 1) }, 200), '{"buf":"01ff","u8":"10"}');
  assert.is(previewJson([NaN, Infinity, () => 1, Symbol('s')], 200), '[null,null,null,null]');
});

test('cut at the bound with an ellipsis, and bounded work for huge strings, arrays and bytes', () => {
  const huge = { s: 'x'.repeat(5_000_000), a: new Array(5_000_000).fill(7), b: Buffer.alloc(5_000_000) };
  const text = previewJson(huge, 50);
  assert.is(text.length, 50);
  assert.ok(text.endsWith('…'));
  assert.ok(text.startsWith('{"s":"xxxx'));
  assert.is(previewJson([1, 2, 3], 7), '[1,2,3]', 'exactly at the bound: no cut');
  assert.is(previewJson([1, 2, 3, 4], 7), '[1,2,3…');
});

test('cycles, deep nesting and throwing getters end the preview without throwing', () => {
  const cyclic: Record<string, unknown> = { name: 'c' };
  cyclic.self = cyclic;
  assert.is(previewJson(cyclic, 200), '{"name":"c","self":"…"}');
  let deep: unknown = 'bottom';
  for (let i = 0; i < 10_000; i++) deep = { d: deep };
  assert.is(previewJson(deep, 200), '{"d":{"d":{"d":{"d":{"d":{"d":"…"}}}}}}');
  const hostile = {
    ok: 1,
    get bad(): never {
      throw new Error('getter');
    },
  };
  assert.is(previewJson(hostile, 200), '{"ok":1…');
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  assert.is(previewJson(revoked.proxy, 200), '…');
});

test.run();
