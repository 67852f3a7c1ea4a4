/**
 * What tracing costs per call: the echo call (bench Item) over loopback, server and client in one
 * process (so CPU per call counts both spans), 64 calls in flight, in four modes, each in its own
 * process (a context manager, once registered, is process-wide):
 *
 * - `off`: no `tracing` option (the default);
 * - `interceptors`: no tracing, a pass-through interceptor on each side (the machinery tracing rides on);
 * - `noop`: `tracing: true` with nothing registered (the API's no-op tracer);
 * - `sdk`: `tracing: true` with the SDK registered as an application does: BasicTracerProvider,
 *   BatchSpanProcessor (to an exporter that drops the batches), the AsyncLocalStorage context
 *   manager and the W3C propagator: every call makes and exports two spans;
 * - `sdk-unsampled`: the same with the AlwaysOff sampler (spans made but not recorded).
 *
 * `node dist/bench/tracing.js`; TRACING_MODES (comma-separated, `off` always runs), TRACING_SECONDS (measured seconds per run, default 3), TRACING_ROUNDS
 * (runs per mode, interleaved, default 2; the best round's calls/s, the median round's CPU per call).
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createClient, createServer, loadProtocol } from '../src/index.js';
import type { OutgoingCall } from '../src/client/interceptor.js';
import { benchItem, repoFile } from './payload.js';

const MODES = ['off', 'interceptors', 'noop', 'sdk', 'sdk-unsampled'] as const;
type Mode = (typeof MODES)[number];
const INFLIGHT = 64;

interface Result {
  mode: Mode;
  calls: number;
  seconds: number;
  cpuUs: number;
  spans: number;
}

/** Registers the SDK globally for `mode` (nothing for off and noop); returns a count of spans exported. */
async function setUp(mode: Mode): Promise<() => number> {
  if (mode === 'off' || mode === 'noop' || mode === 'interceptors') return () => 0;
  const api = await import('@opentelemetry/api');
  const { BasicTracerProvider, BatchSpanProcessor, AlwaysOffSampler } = await import('@opentelemetry/sdk-trace-base');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  let exported = 0;
  const exporter = {
    export(spans: unknown[], done: (r: { code: number }) => void) {
      exported += spans.length;
      done({ code: 0 });
    },
    shutdown: () => Promise.resolve(),
  };
  const provider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 65536, maxExportBatchSize: 4096, scheduledDelayMillis: 200 })],
    ...(mode === 'sdk-unsampled' ? { sampler: new AlwaysOffSampler() } : {}),
  });
  api.trace.setGlobalTracerProvider(provider);
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return () => exported;
}

/** One run in this process: warm up, then `seconds` of calls, `INFLIGHT` at a time. */
async function runMode(mode: Mode, seconds: number): Promise<Result> {
  const spans = await setUp(mode);
  const protocol = await loadProtocol(repoFile('protocol/echo.avdl'));
  const tracing = mode !== 'off' && mode !== 'interceptors';
  // The interceptor machinery alone (a pass-through on each side): what any first interceptor costs.
  const pass = mode === 'interceptors';
  const server = createServer({
    protocol,
    handlers: { echo: (req: { item: unknown }) => req.item },
    tracing,
    ...(pass ? { interceptors: [(r: unknown, _c: unknown, next: (r: unknown) => Promise<unknown>) => next(r)] } : {}),
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = createClient({
    protocol,
    endpoints: [`127.0.0.1:${port}`],
    tracing,
    ...(pass ? { interceptors: [(c: OutgoingCall, next: (c: OutgoingCall) => Promise<unknown>) => next(c)] } : {}),
  });
  const loop = async (until: number, count: { n: number }): Promise<void> => {
    while (performance.now() < until) {
      await client.call('echo', { item: benchItem });
      count.n++;
    }
  };
  const burst = async (ms: number): Promise<{ n: number; ms: number; cpuUs: number }> => {
    const count = { n: 0 };
    const cpu = process.cpuUsage();
    const start = performance.now();
    await Promise.all(Array.from({ length: INFLIGHT }, () => loop(start + ms, count)));
    const used = process.cpuUsage(cpu);
    return { n: count.n, ms: performance.now() - start, cpuUs: used.user + used.system };
  };
  await burst(1000);
  const before = spans();
  const m = await burst(seconds * 1000);
  await client.close();
  await server.close({ graceMs: 100 });
  // Let the batch processor's timer export what it holds.
  await new Promise((r) => setTimeout(r, 300));
  return { mode, calls: m.n, seconds: m.ms / 1000, cpuUs: m.cpuUs, spans: spans() - before };
}

async function child(mode: Mode, seconds: number): Promise<Result> {
  const proc = fork(fileURLToPath(import.meta.url), ['--child', mode, String(seconds)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [msg] = (await once(proc, 'message')) as [Result];
  await once(proc, 'exit');
  return msg;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (process.argv[2] === '--child') {
  const result = await runMode(process.argv[3] as Mode, Number(process.argv[4]));
  process.send!(result);
} else {
  const seconds = Number(process.env.TRACING_SECONDS ?? 3);
  const rounds = Math.max(1, Math.floor(Number(process.env.TRACING_ROUNDS ?? 2)));
  const picked = process.env.TRACING_MODES?.split(',').filter((m): m is Mode => (MODES as readonly string[]).includes(m));
  const modes: readonly Mode[] = picked === undefined || picked.length === 0 ? MODES : ['off', ...picked.filter((m) => m !== 'off')];
  const byMode = new Map<Mode, Result[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) for (const mode of modes) byMode.get(mode)!.push(await child(mode, seconds));
  const off = byMode.get('off')!;
  const offCpu = median(off.map((x) => x.cpuUs / x.calls));
  console.log(`tracing cost, echo over loopback, ${INFLIGHT} in flight, client and server in one process (CPU counts both spans)`);
  console.log('mode            calls/s (best)   CPU us/call (median)   vs off   spans/call');
  for (const mode of modes) {
    const rs = byMode.get(mode)!;
    const rate = Math.max(...rs.map((x) => x.calls / x.seconds));
    const cpu = median(rs.map((x) => x.cpuUs / x.calls));
    const spans = median(rs.map((x) => x.spans / x.calls));
    const delta = mode === 'off' ? '' : `${cpu - offCpu >= 0 ? '+' : ''}${(cpu - offCpu).toFixed(2)}`;
    console.log(
      `${mode.padEnd(15)} ${Math.round(rate).toLocaleString('en-US').padStart(14)}   ${cpu.toFixed(2).padStart(20)}   ${delta.padStart(6)}   ${spans.toFixed(2).padStart(10)}`,
    );
  }
}
