/**
 * A benchmark server process: `node dist/bench/server-child.js <avrpc|peer id> [handlerDelayMs]`.
 * Listens on 127.0.0.1 port 0, sends `{ port }` to the parent over IPC, answers `'stats'` with
 * {@link ServerStats} and exits on `'stop'`, or when the parent goes away. `'window-start'` and
 * `'window-end'` (passed on by the parent as the client crosses the edges of its measured window) make
 * it read its own `process.cpuUsage()` and its helper processes' CPU: it is busy with the load, so it
 * reads them within the IPC hop's fraction of a millisecond of the client, at both edges alike.
 */
import { createServer, loadProtocol } from '../src/index.js';
import { repoFile } from './payload.js';
import { isPeerId, loadPeer } from './peers/index.js';
import type { PeerServer } from './peers/peer.js';

const kind = process.argv[2] ?? '';
const delayMs = Number(process.argv[3] ?? 0);
let calls = 0;

async function startAvrpc(): Promise<PeerServer> {
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

async function start(): Promise<PeerServer> {
  // A peer's module is imported on demand: each process loads only its own system's library.
  if (isPeerId(kind)) return (await loadPeer(kind)).startServer({ delayMs });
  if (kind !== 'avrpc') throw new Error(`unknown server kind ${kind}`);
  return startAvrpc();
}

/** What a server process answers to `'stats'`. */
export interface ServerStats {
  /** avrpc only: calls handled so far. */
  calls: number;
  /** CPU time (user + system) between `'window-start'` and `'window-end'`, in µs, helper processes included; null before both came. */
  cpuUs: number | null;
  /** The helper processes' share of `cpuUs` (a broker), when the system has any. */
  extraCpuUs?: number;
}

/** What a server process sends once it listens, or when it could not start. */
export type ServerReady = { port: number } | { error: string };

const server = await start().catch((err: unknown) => {
  process.send!({ error: err instanceof Error ? err.message : String(err) } satisfies ServerReady, () => process.exit(1));
  return new Promise<never>(() => {});
});
const extra = (): number => server.extraCpuUs?.() ?? 0;
let windowStart: { cpu: NodeJS.CpuUsage; extraUs: number } | undefined;
let stats: ServerStats = { calls: 0, cpuUs: null };
process.on('message', (msg) => {
  if (msg === 'window-start') windowStart = { cpu: process.cpuUsage(), extraUs: extra() };
  if (msg === 'window-end' && windowStart !== undefined) {
    const cpu = process.cpuUsage(windowStart.cpu);
    const extraUs = extra() - windowStart.extraUs;
    stats = { calls, cpuUs: cpu.user + cpu.system + extraUs, ...(server.extraCpuUs === undefined ? {} : { extraCpuUs: extraUs }) };
  }
  if (msg === 'stats') process.send!({ ...stats, calls });
  if (msg === 'stop') void server.close().finally(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
process.send!({ port: server.port } satisfies ServerReady);
