import avro from 'avsc';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeStringMap } from '../../src/framing/avro-map.js';

const avsc = avro.Type.forSchema({ type: 'map', values: 'string' });

const maps: Record<string, string>[] = [
  {},
  { 'trace-id': '4bf92f3577b34da6a3ce929d0e0e4736' },
  { a: '', '': 'b', ç: 'naïve', emoji: '\u{1F600}', long: 'x'.repeat(200), k63: 'y'.repeat(63), k64: 'z'.repeat(64) },
  Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`key-${i}`, `value-${i}`])),
];

test('writeStringMap writes what avsc writes, byte for byte', () => {
  for (const m of maps) {
    const buf = Buffer.alloc(4096);
    const end = writeStringMap(m, buf, 3);
    assert.ok(buf.subarray(3, end).equals(avsc.toBuffer(m)), JSON.stringify(Object.keys(m)));
  }
});

test('writeStringMap reports every buffer too short, and never writes past it', () => {
  for (const m of maps) {
    const size = avsc.toBuffer(m).length;
    for (let len = 0; len < size; len++) {
      const buf = Buffer.alloc(len + 8, 0xee).subarray(0, len);
      assert.is(writeStringMap(m, buf, 0), -1, `${len} of ${size}`);
      assert.is(buf.buffer.byteLength >= len + 8 ? Buffer.from(buf.buffer, buf.byteOffset + len, 8).every((b) => b === 0xee) : true, true);
    }
  }
});

test('writeStringMap refuses a value that is not a string', () => {
  assert.throws(() => writeStringMap({ a: 1 } as unknown as Record<string, string>, Buffer.alloc(64), 0), /invalid "string"/);
});

test.run();
