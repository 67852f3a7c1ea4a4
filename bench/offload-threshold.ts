/**
 * Chooses `workers.thresholdBytes`: for request payloads of growing size, compares what one call costs
 * the MAIN thread inline (decode request + encode an equal-size response, as an echo handler does)
 * with what it costs when offloaded (copy the payload into a transferable buffer, post it to piscina,
 * take the reply bytes back), measured as event-loop busy time (`performance.eventLoopUtilization`)
 * over a batch of calls kept 4 in flight, plus the latency of one call alone.
 * The threshold is the smallest size where offloading costs the main thread less than inline work.
 *
 * Run after a build: `node dist/bench/offload-threshold.js` (about 15 s).
 */
import { performance } from 'node:perf_hooks';
import { CallContext } from '../src/server/call-context.js';
import { silentLogger } from '../src/observability/observer.js';
import { NO_METADATA } from '../src/framing/bodies.js';
import { OffloadedRequest, OffloadPool } from '../src/server/offload/offload-pool.js';
import { resolveWorkerOptions } from '../src/server/offload/worker-options.js';
import { bulkProtocol, rows } from '../test/offload/bulk-protocol.js';

const protocol = bulkProtocol();
const echo = protocol.message('echo')!;
const replyType = echo.response;
const workers = resolveWorkerOptions(
  'bench',
  {
    module: new URL('../test/offload/bulk-handlers.js', import.meta.url),
    messages: ['echo'],
    threads: 1,
    offload: 'always',
  },
  protocol,
  () => true,
)!;
const pool = new OffloadPool(workers, protocol, 16, false, silentLogger);
pool.start();
const peer = { address: '127.0.0.1', port: 0 };
const scratch = Buffer.allocUnsafe(16 * 1024 * 1024);

/** Main-thread busy microseconds per call, running `calls` calls `inFlight` at a time. */
async function busyPerCall(run: () => Promise<unknown> | unknown, calls: number, inFlight: number): Promise<number> {
  const before = performance.eventLoopUtilization();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next++ < calls) await run();
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const used = performance.eventLoopUtilization(before);
  return (used.active * 1000) / calls;
}

async function latency(run: () => Promise<unknown> | unknown, calls: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) await run();
  return ((performance.now() - t0) * 1000) / calls;
}

const sizes = [1, 10, 30, 60, 100, 200, 300, 600, 1000, 3000, 20_000];
console.log('rows  payload(B)  inline main us  offload main us  offload latency us  winner (main-thread time)');
let threshold: number | undefined;
for (const n of sizes) {
  const payload = echo.request.toBuffer({ rows: rows(n), action: 'echo' });
  // As a frame inside a socket chunk: a view into a larger buffer, which the pool copies (a frame
  // spanning chunks is transferred without a copy, so large sizes cost slightly less than shown).
  const chunk = Buffer.alloc(payload.length + 16);
  payload.copy(chunk, 8);
  const body = chunk.subarray(8, 8 + payload.length);
  const inline = (): void => {
    const req = echo.request.fromBuffer(payload) as { rows: unknown[] };
    replyType.encode({ rows: req.rows, threadId: 0, info: {} }, scratch, 0);
  };
  const offloaded = (): Promise<unknown> => {
    const ctx = new CallContext('echo', NO_METADATA, Infinity, peer);
    return pool.run(echo.index, new OffloadedRequest(protocol, echo.index, body, 0), ctx);
  };
  const calls = Math.max(20, Math.min(2000, Math.round(200_000 / n)));
  await busyPerCall(offloaded, Math.min(calls, 200), 4); // warm-up (JIT, worker module load)
  for (let i = 0; i < Math.min(calls, 200); i++) inline();
  const inlineUs = await busyPerCall(inline, calls, 1);
  const offloadUs = await busyPerCall(offloaded, calls, 4);
  const latencyUs = await latency(offloaded, Math.min(calls, 300));
  const winner = offloadUs < inlineUs ? 'offload' : 'inline';
  if (winner === 'offload' && threshold === undefined) threshold = payload.length;
  console.log(
    `${String(n).padStart(5)}  ${String(payload.length).padStart(10)}  ${inlineUs.toFixed(1).padStart(14)}  ${offloadUs.toFixed(1).padStart(15)}  ${latencyUs.toFixed(1).padStart(18)}  ${winner}`,
  );
}
console.log(`\nsmallest payload where offloading costs the main thread less: ${threshold ?? 'none'} bytes`);
await pool.close();
