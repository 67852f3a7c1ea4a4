import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProtocol } from '../../src/index.js';
import { VIEW_BYTES_MIN } from '../../src/codec/view-bytes.js';
import { decodeExact } from '../../src/connection/payload.js';
import { largeProtocol, pattern, startPair } from '../helpers/large.js';

/** Large Avro `bytes` decode as views of the message buffer; small ones, resolution and the wire stay as before. */
const test = suite('view-bytes');

test('a large bytes value is a view of the message buffer, a small one is a copy', () => {
  const echo = largeProtocol.message('echo')!;
  const big = pattern(VIEW_BYTES_MIN + 10);
  const body = echo.request.toBuffer({ data: big });
  const out = decodeExact(echo.request, body, 0, undefined) as { data: Buffer };
  assert.ok(out.data.equals(big));
  assert.is(out.data.buffer, body.buffer);
  const small = pattern(VIEW_BYTES_MIN - 1);
  const body2 = echo.request.toBuffer({ data: small });
  const out2 = decodeExact(echo.request, body2, 0, undefined) as { data: Buffer };
  assert.ok(out2.data.equals(small));
  assert.is.not(out2.data.buffer, body2.buffer);
});

test('a truncated large bytes value is refused as before', () => {
  const echo = largeProtocol.message('echo')!;
  const body = echo.request.toBuffer({ data: pattern(VIEW_BYTES_MIN * 2) });
  assert.throws(() => decodeExact(echo.request, body.subarray(0, body.length - 1), 0, undefined), /truncated/);
});

test('schema resolution: bytes inside records, arrays and unions, and bytes read as string', () => {
  const writer = parseProtocol(`protocol P { record R { bytes a; array<bytes> b; union { null, bytes } c; bytes s; } R m(R r); }`);
  const reader = parseProtocol(`protocol P { record R { bytes a; array<bytes> b; union { null, bytes } c; string s; } R m(R r); }`);
  const wt = writer.message('m')!.request;
  const rt = reader.message('m')!.request;
  const v = {
    r: {
      a: pattern(VIEW_BYTES_MIN),
      b: [pattern(5), pattern(VIEW_BYTES_MIN * 3, 1)],
      c: pattern(VIEW_BYTES_MIN + 1, 2),
      s: Buffer.from('x'.repeat(VIEW_BYTES_MIN)),
    },
  };
  const body = wt.toBuffer(v);
  const out = decodeExact(rt, body, 0, rt.createResolver(wt)) as { r: { a: Buffer; b: Buffer[]; c: Buffer; s: string } };
  assert.ok(out.r.a.equals(v.r.a));
  assert.ok(out.r.b[0]!.equals(v.r.b[0]!) && out.r.b[1]!.equals(v.r.b[1]!));
  assert.ok(out.r.c.equals(v.r.c));
  assert.is(out.r.s, 'x'.repeat(VIEW_BYTES_MIN));
  assert.is(out.r.a.buffer, body.buffer);
});

test('the wire is unchanged: encodings match a protocol-free avsc type of the same schema', async () => {
  const avro = (await import('avsc')).default;
  const plain = avro.Type.forSchema({ type: 'record', name: 'echo', fields: [{ name: 'data', type: 'bytes' }] });
  const data = pattern(VIEW_BYTES_MIN * 2, 3);
  assert.ok(largeProtocol.message('echo')!.request.toBuffer({ data }).equals(plain.toBuffer({ data })));
});

test('end to end: results are right, and writing into one result changes neither another result nor the request', async () => {
  const pair = await startPair({}, {});
  try {
    const data = pattern(2 * 1024 * 1024, 4);
    const copy = Buffer.from(data);
    const a = (await pair.client.call('echo', { data })) as Buffer;
    const b = (await pair.client.call('echo', { data })) as Buffer;
    assert.ok(a.equals(copy) && b.equals(copy));
    a.fill(0);
    assert.ok(b.equals(copy));
    assert.ok(data.equals(copy));
  } finally {
    await pair.close();
  }
});

test.run();
