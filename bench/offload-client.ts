/**
 * Should the CLIENT decode large responses on a worker thread? Measures, for a 20k-row echo reply
 * (about 540 KB), what the main thread spends per response: decoding inline with avsc, versus handing
 * the bytes to a piscina worker that decodes and sends the object back (structured clone), versus not
 * decoding at all (raw bytes passed through, what a proxy or a cache would do).
 * Main-thread time is event-loop busy time (`performance.eventLoopUtilization`), 2 calls in flight.
 *
 * Run after a build: `node dist/bench/offload-client.js` (about 10 s).
 */
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { bulkProtocol, rows } from '../test/offload/bulk-protocol.js';

const reply = bulkProtocol().message('echo')!.response;
const n = Number(process.argv[2] ?? 20_000);
const bytes = reply.toBuffer({ rows: rows(n), threadId: 0, info: {} });
const pool = new Piscina({ filename: new URL('./offload-client-worker.js', import.meta.url).href, minThreads: 1, maxThreads: 1 });

async function measure(name: string, calls: number, run: () => unknown): Promise<void> {
  for (let i = 0; i < 3; i++) await run(); // warm-up
  const before = performance.eventLoopUtilization();
  const t0 = performance.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next++ < calls) await run();
  };
  await Promise.all([lane(), lane()]);
  const wallMs = (performance.now() - t0) / calls;
  const busyMs = performance.eventLoopUtilization(before).active / calls;
  console.log(
    `${name.padEnd(44)} main thread ${busyMs.toFixed(2).padStart(6)} ms/response, wall ${wallMs.toFixed(2).padStart(6)} ms/response`,
  );
}

console.log(`response: ${n} rows, ${bytes.length} bytes`);
await measure('inline avsc decode', 40, () => reply.fromBuffer(bytes));
await measure('worker decode + structured clone back', 40, () => {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return pool.run(copy, { transferList: [copy.buffer] });
});
await measure('raw bytes, no decode (one copy)', 40, () => Buffer.from(bytes));
await pool.destroy();
