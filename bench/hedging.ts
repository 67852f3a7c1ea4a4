/**
 * Hedged requests against a slow server: three loopback servers, one of which delays a random 10% of
 * its calls by 50 ms; a client sends `CALLS` idempotent calls, `CONCURRENCY` at a time, without
 * hedging, with a fixed hedge delay, and at the observed p95. Reports latency percentiles, the load
 * (requests the servers received per answered call, cancelled hedges included) and client CPU per call.
 * Target (issue 15): p99 with hedging <= 0.5x without, at <= 1.1x load.
 *
 *   npm run build --silent && node dist/bench/hedging.js [--calls N] [--concurrency N] [--balancer NAME]
 *
 * Bounded: each mode sends a fixed number of calls (about 2-5 s each on loopback).
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../src/client/client.js';
import type { BalancerName } from '../src/client/balancer.js';
import type { HedgeDelay } from '../src/client/hedging.js';
import { parseProtocol } from '../src/codec/protocol.js';
import { createServer, type Server } from '../src/server/server.js';
import { seeded } from '../test/helpers/prng.js';

const IDL = `protocol HedgeBench { @idempotent(true) string get(int n); }`;
const protocol = parseProtocol(IDL);

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    balancer: { type: 'string', default: 'roundRobin' },
    'slow-share': { type: 'string', default: '0.1' },
    'slow-ms': { type: 'string', default: '50' },
    'fixed-ms': { type: 'string', default: '5' },
    modes: { type: 'string', default: 'none,fixed,p95' },
  },
});
const CALLS = Number(values.calls);
const WARMUP = Number(values.warmup);
const CONCURRENCY = Number(values.concurrency);
const SLOW_SHARE = Number(values['slow-share']);
const SLOW_MS = Number(values['slow-ms']);

interface BenchServer {
  server: Server;
  endpoint: string;
  /** Requests its handler received (the load). */
  received: number;
}

async function startServers(): Promise<BenchServer[]> {
  const out: BenchServer[] = [];
  for (let i = 0; i < 3; i++) {
    const random = seeded(42 + i);
    const slow = i === 0;
    const s: BenchServer = { server: undefined!, endpoint: '', received: 0 };
    s.server = createServer({
      protocol,
      handlers: {
        get: async (req: { n: number }): Promise<string> => {
          s.received++;
          if (slow && random() < SLOW_SHARE) await sleep(SLOW_MS);
          return `s${i}:${req.n}`;
        },
      },
    });
    const bound = await s.server.listen({ host: '127.0.0.1', port: 0 });
    s.endpoint = `127.0.0.1:${bound.port}`;
    out.push(s);
  }
  return out;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)]!;
}

interface ModeResult {
  mode: string;
  p50: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
  load: number;
  cpuUsPerCall: number;
  failed: number;
}

async function runMode(mode: string, servers: BenchServer[], hedgeDelayMs: HedgeDelay | undefined): Promise<ModeResult> {
  const client = createClient({
    protocol,
    endpoints: servers.map((s) => s.endpoint),
    balancer: values.balancer as BalancerName,
    timeoutMs: 10_000,
    ...(hedgeDelayMs === undefined ? {} : { hedgeDelayMs }),
  });
  let failed = 0;
  const loop = async (total: number, latencies: Float64Array | undefined): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const i = next++;
        const t0 = performance.now();
        try {
          await client.call('get', { n: i });
        } catch {
          failed++;
        }
        if (latencies !== undefined) latencies[i] = performance.now() - t0;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  };
  // Warm-up: connections, JIT, and (p95 mode) the latency window.
  await loop(WARMUP, undefined);
  failed = 0;
  for (const s of servers) s.received = 0;
  const latencies = new Float64Array(CALLS);
  const cpu0 = process.cpuUsage();
  await loop(CALLS, latencies);
  const cpu = process.cpuUsage(cpu0);
  // Cancelled hedges still reach their server: let the last ones arrive before counting.
  await sleep(SLOW_MS + 20);
  const received = servers.reduce((n, s) => n + s.received, 0);
  await client.close();
  latencies.sort();
  return {
    mode,
    p50: percentile(latencies, 0.5),
    p95: percentile(latencies, 0.95),
    p99: percentile(latencies, 0.99),
    p999: percentile(latencies, 0.999),
    max: latencies[latencies.length - 1]!,
    load: received / (CALLS - failed),
    // Servers run in this process too: this is the CPU of client and servers per call.
    cpuUsPerCall: (cpu.user + cpu.system) / CALLS,
    failed,
  };
}

/** The median of each figure over the rounds of one mode (rounds alternate modes: drift hits all alike). */
function median(rounds: ModeResult[]): ModeResult {
  const mid = <K extends keyof ModeResult>(k: K): number => {
    const xs = rounds.map((r) => r[k] as number).sort((x, y) => x - y);
    return xs[Math.floor(xs.length / 2)]!;
  };
  return {
    mode: rounds[0]!.mode,
    p50: mid('p50'),
    p95: mid('p95'),
    p99: mid('p99'),
    p999: mid('p999'),
    max: mid('max'),
    load: mid('load'),
    cpuUsPerCall: mid('cpuUsPerCall'),
    failed: rounds.reduce((n, r) => n + r.failed, 0),
  };
}

const servers = await startServers();
try {
  const modes = values.modes.split(',');
  const byMode = new Map<string, ModeResult[]>();
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const mode of modes) {
      let r: ModeResult;
      if (mode === 'none') r = await runMode('no hedging', servers, undefined);
      else if (mode === 'fixed') r = await runMode(`hedge after ${values['fixed-ms']} ms`, servers, Number(values['fixed-ms']));
      else if (mode === 'p95') r = await runMode('hedge at p95', servers, 'p95');
      else throw new Error(`unknown mode ${mode}: none, fixed or p95`);
      byMode.set(mode, [...(byMode.get(mode) ?? []), r]);
    }
  }
  const results = [...byMode.values()].map(median);
  const base = results.find((r) => r.mode === 'no hedging') ?? results[0]!;
  console.log(
    `hedging: 3 servers, one delays ${SLOW_SHARE * 100}% of its calls by ${SLOW_MS} ms; ${CALLS} calls, ${CONCURRENCY} at a time, balancer ${values.balancer}; medians of ${values.rounds} rounds`,
  );
  console.log(
    '| mode | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | p99 vs none | load (requests per answer) | CPU us/call (client+servers) | failed |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(
      `| ${r.mode} | ${r.p50.toFixed(3)} | ${r.p95.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.p999.toFixed(3)} | ${r.max.toFixed(1)} | ${(r.p99 / base.p99).toFixed(3)}x | ${r.load.toFixed(3)}x | ${r.cpuUsPerCall.toFixed(1)} | ${r.failed} |`,
    );
  }
  console.log(JSON.stringify({ bench: 'hedging', calls: CALLS, concurrency: CONCURRENCY, balancer: values.balancer, results }));
  if (results.some((r) => r.failed > 0)) process.exitCode = 1;
} finally {
  await Promise.all(servers.map((s) => s.server.close({ graceMs: 1000 })));
}
