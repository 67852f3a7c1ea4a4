/**
 * A process of the perf probe (bench/perf-probe.ts): `perf-child.js server <kind>` listens and sends
 * `{ port }`; `perf-child.js client <kind> <port> <inFlight> <warmupMs> <measureMs>` runs the closed
 * loop (bench/load.ts) and sends its LoadResult;
 * `perf-child.js count <kind> <port> <inFlight> <calls>` makes that many calls untimed (for callgrind). Kinds: `avrpc`, `avrpc-dm` (every call with a deadline
 * and metadata; `avrpc-d`, `avrpc-m`: one of them; `avrpc-e<N>`: earlyWriteFrames N), `floor` (the tuned raw floor, bench/peers/floor.ts), `floor-early` (the same with early writes), `floor-codec` (that with Avro encoding and decoding of every call). The server reads its CPU at the
 * window's edges (`window-start`, `window-end`, relayed by the parent) and answers `stats`.
 */
import { createClient, createServer, loadProtocol } from '../src/index.js';
import { runLoad, type CallFn } from './load.js';
import { benchItem, repoFile } from './payload.js';

const [role, kind = 'avrpc', ...rest] = process.argv.slice(2);
const slow = {
  ...(process.env.PROBE_SLOW === '1' ? { keepaliveMs: 0 } : {}),
  // PROBE_EARLY, or a kind `avrpc-e<N>`: both sides' earlyWriteFrames (0: one write per turn), for A/B runs.
  ...(process.env.PROBE_EARLY !== undefined ? { earlyWriteFrames: Number(process.env.PROBE_EARLY) } : {}),
  ...(/^avrpc-e\d+$/.test(kind) ? { earlyWriteFrames: Number(kind.slice(7)) } : {}),
};

/** `floor`, `floor-early`, `floor-codec` (early writes, and every call encoded and decoded in Avro). */
async function floorOf(k: string) {
  const { floorPeer } = await import('./peers/floor.js');
  const early = k.endsWith('-early') ? 16 : 0;
  if (k !== 'floor-codec') return floorPeer(early);
  return (await import('./peers/floor-codec.js')).peer;
}

async function server(): Promise<{ port: number; close(): Promise<void> }> {
  if (kind.startsWith('floor')) return (await floorOf(kind)).startServer({ delayMs: 0 });
  const protocol = await loadProtocol(repoFile('protocol/echo.avdl'));
  // Under callgrind everything runs 50 times slower: no keepalive verdicts then.
  const s = createServer({ protocol, handlers: { echo: async (req: { item: unknown }) => req.item }, ...slow });
  const { port } = await s.listen({ host: '127.0.0.1', port: 0 });
  return { port, close: () => s.close({ graceMs: 1000 }) };
}

async function client(port: number): Promise<{ call: CallFn; close(): unknown }> {
  if (kind.startsWith('floor')) return (await floorOf(kind)).connect(port);
  const protocol = await loadProtocol(repoFile('protocol/echo.avdl'));
  const c = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], ...slow });
  const request = { item: benchItem };
  await c.call('echo', request);
  const metadata = { 'trace-id': '4bf92f3577b34da6a3ce929d0e0e4736' };
  // avrpc-d and avrpc-m: the deadline alone, the metadata alone (what each of avrpc-dm's costs is).
  const options =
    kind === 'avrpc-dm'
      ? { timeoutMs: 5000, metadata }
      : kind === 'avrpc-d'
        ? { timeoutMs: 5000 }
        : kind === 'avrpc-m'
          ? { metadata }
          : undefined;
  return { call: () => c.call('echo', request, options), close: () => c.close() };
}

if (role === 'server') {
  const s = await server();
  let start: NodeJS.CpuUsage | undefined;
  let cpuUs: number | null = null;
  process.on('message', (msg) => {
    if (msg === 'window-start') start = process.cpuUsage();
    if (msg === 'window-end' && start !== undefined) {
      const c = process.cpuUsage(start);
      cpuUs = c.user + c.system;
    }
    if (msg === 'stats') process.send!({ cpuUs });
    if (msg === 'stop') void s.close().finally(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ port: s.port });
} else if (role === 'count') {
  // A fixed number of calls, untimed, in lockstep rounds of `inFlight` (each round's calls made in one
  // turn, then all awaited): batches do not depend on how the two processes happen to be scheduled,
  // so instruction counts (callgrind) compare across runs on a busy machine.
  const [port, inFlight, calls] = rest.map(Number) as [number, number, number];
  const c = await client(port);
  const round: Promise<unknown>[] = new Array<Promise<unknown>>(inFlight);
  for (let left = calls; left > 0; left -= inFlight) {
    for (let i = 0; i < inFlight; i++) round[i] = c.call();
    await Promise.all(round);
  }
  await c.close();
  process.send!({ done: calls }, () => process.exit(0));
} else {
  const [port, inFlight, warmupMs, measureMs] = rest.map(Number) as [number, number, number, number];
  const c = await client(port);
  const result = await runLoad(c.call, inFlight, warmupMs, measureMs, (edge) => process.send!({ edge }));
  await c.close();
  process.send!(result, () => process.exit(0));
}
