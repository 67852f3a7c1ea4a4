/**
 * A quick check of the peers: `node dist/bench/peers/smoke.js [peer ids...]` (default every peer).
 * For each, it starts the peer's server in a child process, connects a client here, runs a warm-up
 * and then SMOKE_CALLS calls (default 2000) at each of SMOKE_IN_FLIGHT (default `1,64`) in flight, and prints calls/s and CPU per
 * call of each side (the server's helper processes, such as a broker, counted with the server);
 * SMOKE_DELAY_MS delays each answer (default 0). A
 * sanity check that each peer works and is sensibly fast; the real runs are `npm run bench`'s.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { isPeerId, loadPeer, peerIds, type PeerId } from './index.js';

const CALLS = Number(process.env.SMOKE_CALLS ?? 2000);
const DELAY_MS = Number(process.env.SMOKE_DELAY_MS ?? 0);
const IN_FLIGHT = (process.env.SMOKE_IN_FLIGHT ?? '1,64').split(',').map(Number);

/** Server side: start peer `id`, send its port, answer `'cpu'` with the CPU used so far (µs). */
async function serve(id: PeerId): Promise<void> {
  const server = await (await loadPeer(id)).startServer({ delayMs: DELAY_MS });
  const cpuUs = (): number => {
    const c = process.cpuUsage();
    return c.user + c.system + (server.extraCpuUs?.() ?? 0);
  };
  process.on('message', (msg) => {
    if (msg === 'cpu') process.send!({ cpuUs: cpuUs() });
    if (msg === 'stop') void server.close().finally(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ port: server.port });
}

async function ask<T>(child: ChildProcess, msg?: string): Promise<T> {
  if (msg !== undefined) child.send(msg);
  const [reply] = (await once(child, 'message')) as [T];
  return reply;
}

/** `calls` calls of `call`, `inFlight` at a time; resolves when all are done. */
async function drive(call: () => Promise<unknown>, calls: number, inFlight: number): Promise<void> {
  let left = calls;
  const worker = async (): Promise<void> => {
    while (left > 0) {
      left--;
      await call();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

async function smoke(id: PeerId): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', id], { stdio: 'inherit' });
  try {
    const { port } = await ask<{ port: number }>(child);
    const client = await (await loadPeer(id)).connect(port);
    for (const inFlight of IN_FLIGHT) {
      await drive(client.call, CALLS, inFlight); // warm-up (the JIT), as many calls as measured
      const server0 = (await ask<{ cpuUs: number }>(child, 'cpu')).cpuUs;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await drive(client.call, CALLS, inFlight);
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const serverUs = ((await ask<{ cpuUs: number }>(child, 'cpu')).cpuUs - server0) / CALLS;
      const clientUs = (cpu.user + cpu.system) / CALLS;
      const cells = [id, inFlight, Math.round(CALLS / seconds), clientUs.toFixed(1), serverUs.toFixed(1), (clientUs + serverUs).toFixed(1)];
      console.log(cells.map((c) => String(c).padStart(10)).join(''));
    }
    await client.close();
  } finally {
    child.send('stop');
    await once(child, 'exit');
  }
}

if (process.argv[2] === '--serve') {
  await serve(process.argv[3] as PeerId);
} else {
  const ids = process.argv.length > 2 ? process.argv.slice(2) : peerIds.filter((p) => p !== 'floor');
  const bad = ids.filter((id) => !isPeerId(id));
  if (bad.length > 0) throw new Error(`unknown peer ${bad.join(', ')}; peers: ${peerIds.join(', ')}`);
  console.log(`${CALLS} calls per row, after a warm-up; CPU in µs per call`);
  console.log(['peer', 'in flight', 'calls/s', 'client', 'server', 'total'].map((h) => h.padStart(10)).join(''));
  for (const id of ids as PeerId[]) {
    await smoke(id).catch((err: unknown) => console.log(`${id.padStart(10)}  failed: ${err instanceof Error ? err.message : String(err)}`));
  }
}
