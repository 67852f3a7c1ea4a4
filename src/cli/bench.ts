/**
 * `avrpc bench <target> <message> '<json>'`: load a server with `-c` calls in flight for `-d` or
 * `-n` calls (ghz's job), as fast as they go or at `--rps` calls per second; requests from the
 * argument or a file of several (NDJSON, cycled); a progress bar on a terminal, then calls/s, a
 * latency histogram, percentiles and errors by code, as text, JSON, CSV or Markdown. Exits
 * non-zero when any call failed.
 */
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { Code, type CodeName } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { runLoad } from './bench-load.js';
import { BENCH_FORMATS, formatBench, type BenchFormat, type BenchReport } from './bench-report.js';
import { addBytesFlag, addConnectFlags, collect, duration, exitStatusFor, positiveInt, reportFailure, usageError } from './options.js';
import { withPreparedCall, type CallFlags } from './prepared-call.js';
import { STDIN, isStdinSpec, readRequestData } from './request-data.js';

export type { BenchReport } from './bench-report.js';

interface BenchFlags extends CallFlags {
  concurrency: number;
  duration?: number;
  calls?: number;
  connections: number;
  rps?: number;
  data?: string;
  format: BenchFormat;
  json?: boolean;
}

/** The `bench` command. */
export function benchCommand(): Command {
  const cmd = new Command('bench')
    .description('load a server with one message and report calls/s, latency percentiles and errors by code')
    .argument('<target>', 'host:port, or a service name with --registry')
    .argument('<message>', 'message name')
    .argument('[json]', "the request's parameters as one JSON object (default {}), or @file / @- as --data")
    .option('-c, --concurrency <n>', 'calls in flight (at most, with --rps)', positiveInt, 64)
    .option('-d, --duration <time>', 'run this long (default 10s unless -n)', duration)
    .option('-n, --calls <n>', 'run this many calls', positiveInt)
    .option('--rps <n>', 'start this many calls per second (latency then counts from when each call was due)', positiveInt)
    .option('--data <json|@file|@->', 'the request(s): JSON, or @file / @- holding one JSON object or NDJSON lines, cycled')
    .option('--connections <n>', 'sockets to the server', positiveInt, 1)
    .option('--timeout <duration>', 'deadline of each call: 500ms, 10s, 2m or plain ms', duration, 10_000)
    .option('--metadata <k=v>', 'request metadata (repeatable)', collect, [])
    .addOption(new Option('--format <format>', 'report as').choices(BENCH_FORMATS).default('text'))
    .option('--json', 'the same as --format json');
  addBytesFlag(cmd);
  addConnectFlags(cmd).addHelpText(
    'after',
    `
Exits 0 when every call succeeded; when any failed, prints the report, then "bench: N of M calls
failed" on stderr and exits with 64 + the code of the most frequent failure (as a failed call does).
With --rps the load is an open loop: call i is due at i/rps seconds, latency counts from that time
(a stalled server's backlog shows in the percentiles: coordinated omission corrected), and
"service time" counts from each actual send; -c bounds the calls in flight.`,
  );
  return cmd.action(async (target: string, message: string, json: string | undefined, flags: BenchFlags, self: Command) => {
    const formatGiven = self.getOptionValueSource('format') !== 'default';
    await runBench(target, message, json, flags, formatGiven).catch(reportFailure);
  });
}

async function runBench(
  targetText: string,
  message: string,
  json: string | undefined,
  flags: BenchFlags,
  formatGiven: boolean,
): Promise<void> {
  if (json !== undefined && flags.data !== undefined) throw usageError('the request is given twice ([json] and --data): use one');
  if (flags.json === true && formatGiven && flags.format !== 'json') throw usageError(`--json and --format ${flags.format}: use one`);
  const format: BenchFormat = flags.json === true ? 'json' : flags.format;
  const spec = json ?? flags.data ?? '{}';
  const data = isStdinSpec(spec) ? STDIN : await readRequestData(spec);
  await withPreparedCall(
    targetText,
    message,
    data,
    flags,
    { connectionsPerEndpoint: flags.connections },
    async ({ msg, requests, client, options }) => {
      if (msg.stream !== undefined || requests === undefined) {
        throw new RpcError(Code.INVALID_ARGUMENT, `message ${message} is a ${msg.stream} stream: bench runs unary calls`);
      }
      // Warm-up: connect and handshake outside the measurement; its outcome is measured below anyway.
      await client.call(message, requests[0]!, options).catch(() => undefined);
      const report = await load(flags, message, requests.length, (i) => client.call(message, requests[i % requests.length]!, options));
      process.stdout.write(formatBench(report, format));
      failIfAnyFailed(report);
    },
  );
}

/** A run with failed calls is a failed run: scripts and CI must see it in the exit status. */
function failIfAnyFailed(report: BenchReport): void {
  const failed = report.calls - report.ok;
  if (failed === 0) return;
  const [top] = Object.entries(report.errors).sort((a, b) => b[1] - a[1]);
  const byCode = Object.entries(report.errors)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  process.stderr.write(`bench: ${failed} of ${report.calls} calls failed (${byCode})\n`);
  process.exitCode = exitStatusFor(Code[top![0] as CodeName] ?? Code.UNKNOWN);
}

/** Runs the load with a progress bar on a terminal. */
async function load(flags: BenchFlags, message: string, requests: number, call: (i: number) => Promise<unknown>): Promise<BenchReport> {
  const durationMs = flags.calls === undefined ? (flags.duration ?? 10_000) : flags.duration;
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
  let done = 0;
  const begin = performance.now();
  bar?.start(flags.calls ?? Math.ceil(durationMs! / 1000), 0, { calls: 0 });
  const ticker =
    bar === undefined
      ? undefined
      : setInterval(() => {
          bar.update(flags.calls === undefined ? Math.floor((performance.now() - begin) / 1000) : done, { calls: done });
        }, 200);
  const result = await runLoad({
    concurrency: flags.concurrency,
    durationMs,
    calls: flags.calls,
    rps: flags.rps,
    call,
    progress: (n) => (done = n),
  });
  clearInterval(ticker);
  bar?.stop();
  return {
    message,
    concurrency: flags.concurrency,
    connections: flags.connections,
    rps: flags.rps ?? null,
    requests,
    calls: result.calls,
    ok: result.ok,
    errors: result.errors,
    durationMs: Math.round(result.elapsedMs),
    callsPerSec: Math.round((result.calls / result.elapsedMs) * 1000),
    latencyUs: result.latencyUs,
    serviceUs: result.serviceUs,
    histogram: result.histogram,
  };
}
