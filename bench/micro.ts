/**
 * Micro benchmarks (benchmark.js) of the per-call hot path pieces: frame encode and decode, and the
 * Avro codec on the benchmark Item. Run by `bench/run.ts`; `node dist/bench/micro.js` runs it alone.
 */
import avro from 'avsc';
import Benchmark from 'benchmark';
import { loadProtocol } from '../src/index.js';
import { FrameDecoder } from '../src/framing/frame-decoder.js';
import { FrameEncoder } from '../src/framing/frame-encoder.js';
import { FrameType } from '../src/framing/frame.js';
import { requestFlags, writeRequest, type RequestDraft } from '../src/framing/bodies.js';
import { benchItem, repoFile } from './payload.js';

/** One result row: operations per second of a named case. */
export interface MicroResult {
  name: string;
  opsPerSec: number;
}

/** Runs every micro benchmark (about `maxTimeSec` each, default 1 s) and returns ops/s per case. */
export async function runMicro(maxTimeSec = 1): Promise<MicroResult[]> {
  Benchmark.options.maxTime = maxTimeSec;
  const protocol = await loadProtocol(repoFile('protocol/echo.avdl'));
  const echo = protocol.message('echo')!;
  const itemType = echo.response;
  const itemBytes = itemType.toBuffer(benchItem);
  const draft: RequestDraft = { index: 0, timeoutMs: -1, metadata: undefined, type: echo.request, value: { item: benchItem } };
  const writeItem = (v: unknown, buf: Buffer, pos: number) => itemType.encode(v, buf, pos);
  // The same schema with avsc's own types: what avrpc's type hooks (short strings, bytes) change.
  const plainItemType = avro.Type.forSchema(itemType.schema() as avro.Schema);
  const out = Buffer.alloc(1024);

  // 64 frames per chunk, the shape of a busy socket's read.
  const enc = new FrameEncoder();
  for (let i = 0; i < 64; i++) enc.frame(FrameType.RESPONSE, 0, i + 1, benchItem, writeItem);
  const chunk = Buffer.concat(enc.take());
  let frames = 0;
  const dec = new FrameDecoder({ maxFrameBytes: 1 << 24, expectPreface: false }, () => {
    frames++;
  });

  const encoder = new FrameEncoder();
  let n = 0;
  const suite = new Benchmark.Suite('micro')
    .add('avsc encode Item (toBuffer)', () => itemType.toBuffer(benchItem))
    .add('encode Item into a buffer, avrpc protocol types', () => itemType.encode(benchItem, out, 0))
    .add("encode Item into a buffer, avsc's own types", () => plainItemType.encode(benchItem, out, 0))
    .add('avsc decode Item', () => itemType.decode(itemBytes, 0))
    .add('frame encode REQUEST (Item) into arena', () => {
      encoder.frame(FrameType.REQUEST, requestFlags(draft), ++n, draft, writeRequest);
      if ((n & 63) === 0) encoder.take();
    })
    .add('frame decode 64 frames per chunk (per frame)', () => dec.push(chunk));

  // Warm every case up first, so that the first one measured does not pay for the JIT alone.
  suite.forEach((b: Benchmark) => {
    for (let i = 0; i < 20_000; i++) (b.fn as () => void)();
  });
  const results: MicroResult[] = [];
  await new Promise<void>((resolve) => {
    suite
      .on('cycle', (e: Benchmark.Event) => {
        const b = e.target as unknown as Benchmark;
        const perFrame = b.name!.includes('64 frames') ? 64 : 1;
        results.push({ name: b.name!, opsPerSec: (b.hz ?? 0) * perFrame });
      })
      .on('complete', () => resolve())
      .run({ async: false });
  });
  if (frames === 0) throw new Error('decoder saw no frames');
  return results;
}

if (process.argv[1]?.endsWith('micro.js')) {
  for (const r of await runMicro())
    console.log(`${r.name.padEnd(48)} ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(14)} ops/s`);
}
