/**
 * Server event-loop delay under mixed load, worker offload off vs on. The server runs in a child
 * process (so the load generator's own work does not show in its event loop) and measures its loop
 * with `perf_hooks.monitorEventLoopDelay`; the parent sends small echo calls (1 row, 32 in flight)
 * alongside calls carrying a 20k-record array (about 540 KB each way, 2 in flight), for a fixed time
 * per mode; the 20k-row calls come from a third process. Offload on is `offload: 'auto'` with the default threshold: small calls stay inline.
 * Target: max event-loop delay < 10 ms with offload on.
 *
 * Run after a build: `node dist/bench/offload.js [seconds per mode, default 5]` (about 30 s). `npm run bench`
 * forks it and receives the figures over IPC.
 */
import { fork } from 'node:child_process';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createClient, createServer } from '../src/index.js';
import { echo } from '../test/offload/bulk-handlers.js';
import { bulkProtocol, rows } from '../test/offload/bulk-protocol.js';

/**
 * 'idle' (no calls) and 'small' (the small calls alone, no 20k-row call) are the machine's own noise
 * floor for the loop-delay figures: on a shared, loaded machine the OS deschedules the server too.
 */
export type Mode = 'off' | 'on' | 'idle' | 'small';

export interface ServerReport {
  maxMs: number;
  p99Ms: number;
  /** Main-thread event-loop utilization over the run (0..1). */
  elu: number;
  p50Ms: number;
  meanMs: number;
}

/** Child side: serve, measure the loop between 'start' and 'stop', report, exit. */
async function serve(mode: Mode): Promise<void> {
  const server = createServer({
    protocol: bulkProtocol(),
    handlers: { echo },
    ...(mode === 'on'
      ? { workers: { module: new URL('../test/offload/bulk-handlers.js', import.meta.url), messages: ['echo'], threads: 1 } }
      : {}),
  });
  const { port } = await server.listen();
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let elu = performance.eventLoopUtilization();
  process.on('message', (msg: string) => {
    if (msg === 'start') {
      histogram.enable();
      elu = performance.eventLoopUtilization();
    }
    if (msg === 'stop') {
      histogram.disable();
      const report: ServerReport = {
        elu: performance.eventLoopUtilization(elu).utilization,
        maxMs: histogram.max / 1e6,
        p99Ms: histogram.percentile(99) / 1e6,
        p50Ms: histogram.percentile(50) / 1e6,
        meanMs: histogram.mean / 1e6,
      };
      process.send!(report);
      void server.close({ graceMs: 500 }).then(() => process.exit(0));
    }
  });
  process.send!({ port });
}

/** One mode's figures, as `npm run bench` (bench/run.ts) receives them when it forks this script. */
export interface OffloadModeResult {
  mode: Mode;
  server: ServerReport;
  smallCalls: number;
  smallP50Ms: number;
  smallP99Ms: number;
  bigCalls: number;
}

async function runMode(mode: Mode, seconds: number): Promise<OffloadModeResult> {
  const child = fork(fileURLToPath(import.meta.url), ['--server', mode], {
    stdio: 'inherit',
    execArgv: (process.env.SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean),
  });
  const next = (): Promise<unknown> => new Promise((resolve) => child.once('message', resolve));
  const { port } = (await next()) as { port: number };
  const protocol = bulkProtocol();
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`], connectionsPerEndpoint: 2 });
  const small = { rows: rows(1), action: 'echo' };
  await client.call('echo', { rows: rows(20_000), action: 'echo' }); // warm-up: workers load the handler module, JIT
  for (let i = 0; i < 200; i++) await client.call('echo', small);

  const smallLatency: number[] = [];
  const until = performance.now() + seconds * 1000;
  child.send('start');
  // The 20k-row calls come from a third process (as raw bytes, see bigLoad), so that they do not delay
  // the small calls on the client side.
  const bigLoad =
    mode === 'idle' || mode === 'small'
      ? undefined
      : fork(fileURLToPath(import.meta.url), ['--big', String(port), String(seconds)], { stdio: 'inherit' });
  const bigDone =
    bigLoad === undefined ? Promise.resolve(0) : new Promise<number>((resolve) => bigLoad.once('message', (n) => resolve(n as number)));
  const smallLane = async (): Promise<void> => {
    while (performance.now() < until) {
      const t0 = performance.now();
      await client.call('echo', small);
      smallLatency.push(performance.now() - t0);
    }
  };
  if (mode === 'idle') await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  else await Promise.all(Array.from({ length: 32 }, smallLane));
  const bigCalls = await bigDone;
  child.send('stop');
  const report = (await next()) as ServerReport;
  await client.close();
  await new Promise((resolve) => child.once('exit', resolve));
  smallLatency.sort((a, b) => a - b);
  const at = (p: number): number => smallLatency[Math.min(smallLatency.length - 1, Math.floor((p / 100) * smallLatency.length))] ?? 0;
  const pct = (p: number): string => at(p).toFixed(2);
  console.log(
    `offload ${mode.padEnd(3)}  server loop delay max ${report.maxMs.toFixed(2)} ms, p99 ${report.p99Ms.toFixed(2)} ms, p50 ${report.p50Ms.toFixed(2)} ms, main-thread busy ${(report.elu * 100).toFixed(0)}%` +
      ` | small calls ${smallLatency.length} (p50 ${pct(50)} ms, p99 ${pct(99)} ms) | 20k-row calls ${bigCalls}`,
  );
  return { mode, server: report, smallCalls: smallLatency.length, smallP50Ms: at(50), smallP99Ms: at(99), bigCalls };
}

/** Third process: two lanes of 20k-row echo calls for `seconds`, then reports how many completed. */
async function bigLoad(port: number, seconds: number): Promise<void> {
  const protocol = bulkProtocol();
  const client = createClient({ protocol, endpoints: [`127.0.0.1:${port}`] });
  // Encoded once and sent raw, responses left undecoded: this process stays light on the shared cores.
  const big = protocol.message('echo')!.request.toBuffer({ rows: rows(20_000), action: 'echo' });
  const until = performance.now() + seconds * 1000;
  let done = 0;
  const lane = async (): Promise<void> => {
    while (performance.now() < until) {
      await client.callRaw('echo', big);
      done++;
    }
  };
  await Promise.all([lane(), lane()]);
  await client.close();
  process.send!(done);
}

if (process.argv[2] === '--server') {
  await serve(process.argv[3] as Mode);
} else if (process.argv[2] === '--big') {
  await bigLoad(Number(process.argv[3]), Number(process.argv[4]));
} else {
  const seconds = Number(process.argv[2] ?? 5);
  const modes = (process.env.MODES ?? 'idle,small,off,on').split(',') as Mode[];
  const results: OffloadModeResult[] = [];
  for (const mode of modes) results.push(await runMode(mode, seconds));
  // Forked by bench/run.ts: hand it the figures.
  if (process.send !== undefined) process.send(results);
}
