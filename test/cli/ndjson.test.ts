import { PassThrough, Writable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code, loadProtocol, RpcError } from '../../src/index.js';
import { jsonMessages, type JsonMessage } from '../../src/codec/avro-json.js';
import { ndjsonLines, ndjsonRequests } from '../../src/cli/ndjson-input.js';
import { NdjsonWriter, OutputClosed } from '../../src/cli/ndjson-output.js';
import { repoPath } from '../helpers/repo.js';

/** The CLI's NDJSON reader (stdin of client and bidi streams) and writer (stream elements), on their own. */
const test = suite('cli ndjson');

async function messages(): Promise<Map<string, JsonMessage>> {
  return jsonMessages(await loadProtocol(repoPath('protocol/stream.avdl'), { longs: 'bigint' }));
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function* chunks(...parts: Array<string | Buffer>): AsyncGenerator<string | Buffer> {
  for (const p of parts) yield p;
}

const ITEM = (id: string): string => `{"item": {"id": ${id}, "name": "n", "tags": [], "score": 1.5, "blob": "\\u00ff"}}`;

test('lines: split across chunks, CRLF, blank lines skipped but counted, last line without newline', async () => {
  const got = await collect(ndjsonLines(chunks('{"a"', ':1}\r\n\n  \n{"b":', '2}\n', Buffer.from('{"c":3}'))));
  assert.equal(got, [
    { line: 1, text: '{"a":1}' },
    { line: 4, text: '{"b":2}' },
    { line: 5, text: '{"c":3}' },
  ]);
  assert.equal(await collect(ndjsonLines(chunks())), []);
  assert.equal(await collect(ndjsonLines(chunks('\n\n'))), []);
});

test('lines: a UTF-8 character cut between two chunks is decoded whole', async () => {
  const bytes = Buffer.from('{"s":"中"}\n');
  const got = await collect(ndjsonLines(chunks(bytes.subarray(0, 7), bytes.subarray(7))));
  assert.equal(got, [{ line: 1, text: '{"s":"中"}' }]);
});

test('lines: one longer than the limit fails INVALID_ARGUMENT naming its line, without reading on', async () => {
  let pulled = 0;
  async function* endless(): AsyncGenerator<string> {
    yield '{}\n';
    for (; pulled < 1000; pulled++) yield 'x'.repeat(10);
  }
  const err = await collect(ndjsonLines(endless(), 'stdin', 100)).catch((e: unknown) => e);
  assert.instance(err, RpcError);
  assert.is((err as RpcError).code, Code.INVALID_ARGUMENT);
  assert.is((err as RpcError).message, 'stdin line 2: longer than 100 characters');
  assert.ok(pulled < 20, `stopped reading at the limit (${pulled} chunks)`);
});

test('requests: each line parsed as the request record, longs exact, bytes as code points', async () => {
  const upload = (await messages()).get('upload')!;
  const got = (await collect(ndjsonRequests(upload, chunks(`${ITEM('9007199254740993123')}\n\n${ITEM('2')}\n`)))) as Array<{
    item: { id: bigint; blob: Buffer };
  }>;
  assert.is(got.length, 2);
  assert.is(got[0]!.item.id, 9007199254740993123n);
  assert.equal([...got[0]!.item.blob], [0xff]);
  assert.is(got[1]!.item.id, 2n);
});

test('requests: a bad line is INVALID_ARGUMENT naming the line number (blank lines counted), after the good ones', async () => {
  const upload = (await messages()).get('upload')!;
  const seen: unknown[] = [];
  const bad = async (text: string): Promise<RpcError> => {
    seen.length = 0;
    const err = await (async () => {
      for await (const r of ndjsonRequests(upload, chunks(`${ITEM('1')}\n\n${text}\n${ITEM('3')}\n`))) seen.push(r);
    })().catch((e: unknown) => e);
    assert.instance(err, RpcError);
    assert.is(seen.length, 1, 'the record before the bad line was delivered');
    return err as RpcError;
  };
  const syntax = await bad('{"item": ');
  assert.is(syntax.code, Code.INVALID_ARGUMENT);
  assert.match(syntax.message, /^stdin line 3: request of upload: invalid JSON at position/);
  const schema = await bad('{"item": {"id": 1}}');
  assert.is(schema.code, Code.INVALID_ARGUMENT);
  assert.is(schema.message, 'stdin line 3: request of upload: missing field item.name (string)');
});

test('requests: lazy, a line is read only when the next record is asked for', async () => {
  const upload = (await messages()).get('upload')!;
  const input = new PassThrough();
  const it = ndjsonRequests(upload, input)[Symbol.asyncIterator]();
  input.write(`${ITEM('1')}\n`);
  const first = (await it.next()) as IteratorResult<{ item: { id: bigint } }>;
  assert.is(first.value.item.id, 1n, 'the first record comes before the input has ended or has a second line');
  const second = it.next();
  input.write(`${ITEM('2')}\n`);
  assert.is(((await second) as IteratorResult<{ item: { id: bigint } }>).value.item.id, 2n);
  input.end();
  assert.ok((await it.next()).done);
});

/** A Writable that holds every write until `release`, with a tiny buffer so that write() says "wait". */
function slowSink(): { sink: Writable; lines: string[]; release: () => void } {
  const lines: string[] = [];
  let held: Array<() => void> = [];
  const sink = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      held.push(done);
    },
  });
  return {
    sink,
    lines,
    release: () => {
      const h = held;
      held = [];
      h.forEach((f) => f());
    },
  };
}

test('writer: one compact Avro JSON line per value, waiting for the sink to drain', async () => {
  const watch = (await messages()).get('watch')!;
  const { sink, lines, release } = slowSink();
  const writer = new NdjsonWriter(sink, watch.response);
  const item = { id: 9007199254740993123n, name: 'a\nb', tags: ['x'], score: 0.5, blob: Buffer.from([0, 255]) };
  let written = false;
  const w = writer.write(item).then(() => (written = true));
  await new Promise((r) => setImmediate(r));
  assert.is(written, false, 'write waits while the sink is full');
  assert.equal(lines, ['{"id":9007199254740993123,"name":"a\\nb","tags":["x"],"score":0.5,"blob":"\\u0000ÿ"}\n']);
  release();
  await w;
  assert.is(written, true);
  writer.detach();
});

test('writer: EPIPE is OutputClosed, another error is itself', async () => {
  const watch = (await messages()).get('watch')!;
  for (const [code, expected] of [
    ['EPIPE', OutputClosed],
    ['EIO', Error],
  ] as const) {
    const { sink, release } = slowSink();
    const writer = new NdjsonWriter(sink, watch.response);
    const w = writer.writeLine('{}').catch((e: unknown) => e);
    sink.destroy(Object.assign(new Error(`write ${code}`), { code }));
    const err = await w;
    assert.instance(err, expected);
    assert.is(err instanceof OutputClosed, code === 'EPIPE');
    assert.instance(await writer.writeLine('{}').catch((e: unknown) => e), expected, 'and so is every later write');
    release();
    writer.detach();
  }
});

test.run();
