/**
 * A benchmark server process: `node dist/bench/server-child.js <avrpc|grpc|raw|rawBatched> [handlerDelayMs]`.
 * Listens on 127.0.0.1 port 0, sends `{ port }` to the parent over IPC, answers `'stats'` with
 * {@link ServerStats} and exits on `'stop'`, or when the parent goes away. `'window-start'` and
 * `'window-end'` (passed on by the parent as the client crosses the edges of its measured window) make
 * it read its own `process.cpuUsage()`: it is busy with the load, so it reads them within the IPC hop's
 * fraction of a millisecond of the client, at both edges alike.
 */
import { createServer, loadProtocol } from '../src/index.js';
import { repoFile } from './payload.js';

const kind = process.argv[2];
const delayMs = Number(process.argv[3] ?? 0);
let calls = 0;

async function start(): Promise<{ port: number; close(): Promise<void> }> {
  // Imported on demand: an avrpc process never loads grpc-js, and the reverse.
  if (kind === 'raw' || kind === 'rawBatched') return (await import('./raw-echo.js')).startRawServer(kind === 'rawBatched');
  if (kind === 'grpc') return (await import('./grpc-echo.js')).startGrpcServer(delayMs);
  if (kind !== 'avrpc') throw new Error(`unknown server kind ${kind}`);
  const protocol = await loadProtocol(repoFile('protocol/echo.avdl'));
  type Req = { item: unknown };
  const echo =
    delayMs > 0
      ? (req: Req) =>
          new Promise((resolve) =>
            setTimeout(() => {
              calls++;
              resolve(req.item);
            }, delayMs),
          )
      : async (req: Req) => {
          calls++;
          return req.item;
        };
  const server = createServer({ protocol, handlers: { echo } });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return { port, close: () => server.close({ graceMs: 1000 }) };
}

/** What a server process answers to `'stats'`. */
export interface ServerStats {
  /** avrpc only: calls handled so far. */
  calls: number;
  /** CPU time (user + system) between `'window-start'` and `'window-end'`, in µs; null before both came. */
  cpuUs: number | null;
}

let windowStart: NodeJS.CpuUsage | undefined;
let windowCpuUs: number | null = null;
const server = await start();
process.on('message', (msg) => {
  if (msg === 'window-start') windowStart = process.cpuUsage();
  if (msg === 'window-end' && windowStart !== undefined) {
    const cpu = process.cpuUsage(windowStart);
    windowCpuUs = cpu.user + cpu.system;
  }
  if (msg === 'stats') process.send!({ calls, cpuUs: windowCpuUs } satisfies ServerStats);
  if (msg === 'stop') void server.close().finally(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
process.send!({ port: server.port });
