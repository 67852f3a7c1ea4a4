import avro from 'avsc';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readUtf8 } from '../../src/framing/short-utf8.js';
import { parseProtocol } from '../../src/index.js';

test('readUtf8 matches toString for every short length, ASCII or not, at any offset', () => {
  const samples = [
    '',
    'a',
    'bench-01',
    'alpha',
    'abcdefghijkl',
    'abcdefghijklm',
    'é',
    'naïve',
    'ab\u{1F600}cd',
    'x'.repeat(40),
    '\u0000\u007f',
  ];
  for (const s of samples) {
    const bytes = Buffer.from(`..${s}..`, 'utf8');
    const end = bytes.length - 2;
    assert.is(readUtf8(bytes, 2, end), bytes.toString('utf8', 2, end), JSON.stringify(s));
  }
  // Every length up to past the JS path's limit, ending in a non-ASCII byte or not.
  for (let n = 0; n <= 20; n++) {
    const ascii = Buffer.from('abcdefghijklmnopqrstuvwxyz'.slice(0, n));
    assert.is(readUtf8(ascii, 0, n), ascii.toString('utf8'));
    const mixed = Buffer.concat([ascii, Buffer.from([0xc3])]);
    assert.is(readUtf8(mixed, 0, n + 1), mixed.toString('utf8'));
  }
});

test('protocol strings round-trip through the short-string type, in records, arrays, maps, unions', () => {
  const p = parseProtocol(`protocol S {
    record R { string s; array<string> a; map<string> m; union { null, string } u; }
    R m(R r);
  }`);
  const type = p.message('m')!.response;
  const value = { s: 'héllo wörld, a longer one', a: ['', 'x', 'bench-01', 'ümlaut'], m: { k: 'v', key: 'ça' }, u: 'short' };
  assert.equal(JSON.parse(JSON.stringify(type.fromBuffer(type.toBuffer(value)))), value);
  // A truncated string is still reported as such.
  const bytes = type.toBuffer(value);
  assert.is(type.decode(bytes.subarray(0, 5), 0).offset, -1);
});

test("the short-string type writes exactly avsc's bytes: every length around its limits, ASCII or not, and past a buffer's end", () => {
  const p = parseProtocol(`protocol S {
    record R { array<string> a; string last; }
    R m(R r);
  }`);
  const ours = p.message('m')!.response;
  const plain = avro.Type.forSchema(JSON.parse(JSON.stringify(ours.schema())) as avro.Schema);
  const strings: string[] = [];
  for (let n = 0; n <= 70; n++) {
    const ascii = 'abcdefghij'.repeat(7).slice(0, n);
    strings.push(ascii, `${ascii}é`, `é${ascii}`, `${ascii}\u{1F600}`, `${ascii}\u0000\u007f`);
  }
  for (const s of strings) {
    const value = { a: [s], last: s };
    assert.ok(ours.toBuffer(value).equals(plain.toBuffer(value)), JSON.stringify(s));
  }
  // avsc's toBuffer encodes into a 1 KiB buffer first and retries into one of the size the first
  // pass reached: strings that cross that end, at every offset, must size the retry exactly.
  for (let pad = 0; pad < 80; pad++) {
    const value = { a: ['x'.repeat(990 + pad), 'tail-ascii', 'naïve-tail', 'short'], last: 'end' };
    const bytes = ours.toBuffer(value);
    assert.ok(bytes.equals(plain.toBuffer(value)), `padding ${pad}`);
    assert.equal(ours.fromBuffer(bytes), ours.fromBuffer(plain.toBuffer(value)));
  }
  assert.throws(() => ours.toBuffer({ a: [42], last: 'x' }), /invalid/);
});

test.run();
