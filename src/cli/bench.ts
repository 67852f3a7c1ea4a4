/**
 * `avrpc bench <target> <message> '<json>'`: load a server with `-c` calls in flight for `-d` or
 * `-n` calls (ghz's job); a progress bar on a terminal, then calls/s, a latency histogram,
 * percentiles and errors by code, or one JSON object with `--json`.
 */
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import * as hdr from 'hdr-histogram-js';
import { Code, codeName } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { addConnectFlags, collect, duration, positiveInt, reportFailure } from './options.js';
import { withPreparedCall, type CallFlags } from './prepared-call.js';

interface BenchFlags extends CallFlags {
  concurrency: number;
  duration?: number;
  calls?: number;
  connections: number;
  json?: boolean;
}

/** What a run measured; `--json` prints exactly this. */
export interface BenchReport {
  message: string;
  concurrency: number;
  connections: number;
  calls: number;
  ok: number;
  errors: Record<string, number>;
  durationMs: number;
  callsPerSec: number;
  /** Latency percentiles of all calls (ok or not), in microseconds. */
  latencyUs: { min: number; mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  /** Latency histogram: calls whose latency is at most `leUs` and above the previous bucket's bound. */
  histogram: Array<{ leUs: number; count: number }>;
}

/** The `bench` command. */
export function benchCommand(): Command {
  const cmd = new Command('bench')
    .description('load a server with one message and report calls/s, latency percentiles and errors by code')
    .argument('<target>', 'host:port, or a service name with --registry')
    .argument('<message>', 'message name')
    .argument('[json]', "the request's parameters as one JSON object", '{}')
    .option('-c, --concurrency <n>', 'calls in flight', positiveInt, 64)
    .option('-d, --duration <time>', 'run this long (default 10s unless -n)', duration)
    .option('-n, --calls <n>', 'run this many calls', positiveInt)
    .option('--connections <n>', 'sockets to the server', positiveInt, 1)
    .option('--timeout <duration>', 'deadline of each call: 500ms, 10s, 2m or plain ms', duration, 10_000)
    .option('--metadata <k=v>', 'request metadata (repeatable)', collect, [])
    .option('--json', 'print one JSON object instead of the text report');
  addConnectFlags(cmd);
  return cmd.action(async (target: string, message: string, json: string, flags: BenchFlags) => {
    await runBench(target, message, json, flags).catch(reportFailure);
  });
}

async function runBench(targetText: string, message: string, json: string, flags: BenchFlags): Promise<void> {
  await withPreparedCall(
    targetText,
    message,
    json,
    flags,
    { connectionsPerEndpoint: flags.connections },
    async ({ msg, request, client, options }) => {
      if (msg.stream !== undefined || request === undefined) {
        throw new RpcError(Code.INVALID_ARGUMENT, `message ${message} is a ${msg.stream} stream: bench runs unary calls`);
      }
      // Warm-up: connect and handshake outside the measurement; its outcome is measured below anyway.
      await client.call(message, request, options).catch(() => undefined);
      const report = await load(flags, message, () => client.call(message, request, options));
      process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : formatReport(report));
    },
  );
}

/** Runs the load: `concurrency` loops, each starting its next call when its last one ends. */
async function load(flags: BenchFlags, message: string, call: () => Promise<unknown>): Promise<BenchReport> {
  const durationMs = flags.calls === undefined ? (flags.duration ?? 10_000) : flags.duration;
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  const errors: Record<string, number> = {};
  const counts = new Buckets();
  let started = 0;
  let done = 0;
  let ok = 0;
  let stop = false;
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: flags.calls === undefined ? ' {bar} {value}/{total} s | {calls} calls' : ' {bar} {value}/{total} calls | {eta}s left',
          hideCursor: true,
          clearOnComplete: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const begin = performance.now();
  bar?.start(flags.calls ?? Math.ceil(durationMs! / 1000), 0, { calls: 0 });
  const ticker =
    bar === undefined
      ? undefined
      : setInterval(() => {
          bar.update(flags.calls === undefined ? Math.floor((performance.now() - begin) / 1000) : done, { calls: done });
        }, 200);
  const timer = durationMs === undefined ? undefined : setTimeout(() => (stop = true), durationMs);
  const worker = async (): Promise<void> => {
    while (!stop && (flags.calls === undefined || started < flags.calls)) {
      started++;
      const t0 = performance.now();
      try {
        await call();
        ok++;
      } catch (err) {
        const name = codeName(RpcError.from(err).code);
        errors[name] = (errors[name] ?? 0) + 1;
      }
      const us = Math.max(1, Math.round((performance.now() - t0) * 1000));
      histogram.recordValue(us);
      counts.add(us);
      done++;
    }
  };
  await Promise.all(Array.from({ length: flags.concurrency }, worker));
  const elapsed = performance.now() - begin;
  clearTimeout(timer);
  clearInterval(ticker);
  bar?.stop();
  // hdr reports a percentile as the top of its bucket, which can exceed the exact max: clamp.
  const pct = (p: number): number => Math.min(histogram.getValueAtPercentile(p), histogram.maxValue);
  const report: BenchReport = {
    message,
    concurrency: flags.concurrency,
    connections: flags.connections,
    calls: done,
    ok,
    errors,
    durationMs: Math.round(elapsed),
    callsPerSec: Math.round((done / elapsed) * 1000),
    latencyUs: {
      min: histogram.minNonZeroValue,
      mean: Math.round(histogram.mean),
      p50: pct(50),
      p90: pct(90),
      p99: pct(99),
      p999: pct(99.9),
      max: histogram.maxValue,
    },
    histogram: counts.list(),
  };
  histogram.destroy();
  return report;
}

/** Histogram buckets: powers of two in microseconds, counted as calls end (hdr's API has no range counts). */
class Buckets {
  private readonly counts: number[] = [];

  add(us: number): void {
    const i = Math.max(0, Math.ceil(Math.log2(Math.max(1, us))));
    this.counts[i] = (this.counts[i] ?? 0) + 1;
  }

  /** The buckets from the first to the last non-empty one. */
  list(): Array<{ leUs: number; count: number }> {
    const first = this.counts.findIndex((c) => c !== undefined);
    if (first < 0) return [];
    const out: Array<{ leUs: number; count: number }> = [];
    for (let i = first; i < this.counts.length; i++) out.push({ leUs: 2 ** i, count: this.counts[i] ?? 0 });
    return out;
  }
}

function formatReport(r: BenchReport): string {
  const ms = (us: number): string => (us / 1000).toFixed(us < 10_000 ? 3 : 1).padStart(9);
  const lines = [
    `${r.message}: ${r.calls} calls in ${(r.durationMs / 1000).toFixed(2)} s, ${r.concurrency} in flight on ${r.connections} connection(s)`,
    `  ${r.callsPerSec} calls/s, ${r.ok} ok`,
    '',
    '  latency (ms)',
    `    min ${ms(r.latencyUs.min)}   mean ${ms(r.latencyUs.mean)}`,
    `    p50 ${ms(r.latencyUs.p50)}   p90  ${ms(r.latencyUs.p90)}`,
    `    p99 ${ms(r.latencyUs.p99)}   p99.9${ms(r.latencyUs.p999)}   max ${ms(r.latencyUs.max)}`,
    '',
    '  histogram (ms, calls)',
  ];
  const top = Math.max(1, ...r.histogram.map((b) => b.count));
  for (const b of r.histogram)
    lines.push(`    <= ${ms(b.leUs)}  ${String(b.count).padStart(8)}  ${'#'.repeat(Math.round((b.count / top) * 40))}`);
  const errs = Object.entries(r.errors);
  lines.push('', errs.length === 0 ? '  errors: none' : `  errors by code: ${errs.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  return `${lines.join('\n')}\n`;
}
