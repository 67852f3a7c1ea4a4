/**
 * A server process of issue 10's stream benchmarks: `node dist/bench/stream-server-child.js
 * <avrpc|floor|grpc> [blobBytes] [sample]`. Listens on 127.0.0.1 port 0 and sends `{ port }` over IPC.
 * avrpc serves protocol/stream.avdl's `watch` (count Items numbered from `from`), `chat` (each Item
 * back as it arrives) and `echo`; floor and grpc serve the same `watch` their own way
 * (bench/stream-floor.ts, bench/grpc-stream.ts). The Items are the benchmark Item, with a blob of
 * `blobBytes` (default 64).
 *
 * IPC: `'window-start'` reads `process.cpuUsage()` and answers `{ ack: true }` (the client waits for it,
 * so the server's window opens before the first request of the measured window); `'window-end'` answers
 * {@link ServerWindow}: the CPU in between and, with `sample`, the memory samples taken every
 * 100 ms in between (after a GC) and the `process.hrtime` of each element the `watch` handler produced
 * (handed to avrpc). `'stop'` closes and exits; so does losing the parent.
 */
import { createServer, loadProtocol } from '../src/index.js';
import { benchItem, repoFile, streamWindow } from './payload.js';
import { MemorySampler, type MemorySample } from './stream-memory.js';

const system = process.argv[2];
const blobBytes = Number(process.argv[3] ?? 64);
const sample = process.argv[4] === 'sample';
const protocol = await loadProtocol(repoFile('protocol/stream.avdl'));
const blob = Buffer.alloc(blobBytes, 7);
const item = (id: number) => ({ ...benchItem, id, blob });

/** What a stream server answers to `'window-end'`. */
export interface ServerWindow {
  /** CPU time (user + system) since `'window-start'`, in µs. */
  cpuUs: number;
  /** With `sample`: memory every 100 ms over the window. */
  memory: MemorySample[];
  /** With `sample`, avrpc: `process.hrtime` in µs as each element was produced, in order. */
  producedAtUs: number[];
}

/** Produce times kept at most: the slow-consumer stream is 2000 elements. */
const MAX_PRODUCED_LOG = 100_000;
let producedAtUs: number[] = [];
let logProduced = false;

async function start(): Promise<{ port: number; close(): Promise<void> }> {
  // Imported on demand: each process loads only the system it runs.
  if (system === 'floor') {
    const body = protocol.message('watch')!.response.toBuffer({ ...benchItem, blob });
    return (await import('./stream-floor.js')).startFloorServer(body);
  }
  if (system === 'grpc') return (await import('./grpc-stream.js')).startGrpcStreamServer(protocol, item);
  if (system !== 'avrpc') throw new Error(`unknown stream server ${system}`);
  type Item = ReturnType<typeof item>;
  const server = createServer({
    protocol,
    ...streamWindow(),
    handlers: {
      watch: async function* (req: { from: number; count: number }) {
        for (let i = 0; i < req.count; i++) {
          if (logProduced && producedAtUs.length < MAX_PRODUCED_LOG) producedAtUs.push(Number(process.hrtime.bigint() / 1000n));
          yield item(req.from + i);
        }
      },
      chat: async function* (requests: AsyncIterable<{ item: Item }>) {
        for await (const r of requests) yield r.item;
      },
      echo: (req: { item: Item }) => req.item,
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { port, close: () => server.close({ graceMs: 1000 }) };
}

let windowStart: NodeJS.CpuUsage | undefined;
let sampler: MemorySampler | undefined;
const server = await start();
process.on('message', async (msg) => {
  if (msg === 'window-start') {
    if (sample) {
      sampler = await MemorySampler.start();
      producedAtUs = [];
      logProduced = true;
    }
    windowStart = process.cpuUsage();
    process.send!({ ack: true });
  }
  if (msg === 'window-end') {
    const cpu = process.cpuUsage(windowStart);
    logProduced = false;
    const memory = sampler?.stop() ?? [];
    process.send!({ cpuUs: cpu.user + cpu.system, memory, producedAtUs } satisfies ServerWindow);
  }
  if (msg === 'stop') void server.close().finally(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
process.send!({ port: server.port });
