/**
 * A benchmark server process: `node dist/bench/server-child.js <avrpc|grpc|raw|rawBatched> [handlerDelayMs]`.
 * Listens on 127.0.0.1 port 0, sends `{ port }` to the parent over IPC, answers `'stats'` with
 * `{ calls }` (calls handled so far) and exits on `'stop'`, or when the parent goes away.
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

const server = await start();
process.on('message', (msg) => {
  if (msg === 'stats') process.send!({ calls });
  if (msg === 'stop') void server.close().finally(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
process.send!({ port: server.port });
