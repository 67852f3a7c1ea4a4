/**
 * The closed-loop load driver every end-to-end scenario uses, whatever the system under test: N
 * workers each keep one call in flight (await a call, record its latency, start the next), a warm-up
 * that is not recorded, then a measured window. Latencies go into an HDR histogram in microseconds, and
 * the process's CPU time (`process.cpuUsage()`, user + system) is read at the window's two edges.
 */
import * as hdr from 'hdr-histogram-js';

/** What one measured window gave. */
export interface LoadResult {
  /** Calls completed inside the measured window. */
  calls: number;
  /** Calls that failed inside the measured window (should be 0). */
  errors: number;
  /** Length of the measured window, in seconds. */
  seconds: number;
  callsPerSec: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  /** CPU time of this process (user + system, all its threads) inside the measured window, in µs. */
  cpuUs: number;
  /** First error seen, for the report. */
  firstError?: string;
}

/** One call of the system under test. */
export type CallFn = () => Promise<unknown>;

/** The two edges of the measured window, as the load driver crosses them. */
export type WindowEdge = 'start' | 'end';

/**
 * Runs `inFlight` closed-loop workers for `warmupMs` (not recorded) and then `measureMs`. `onEdge` is
 * called at each edge of the measured window, right beside the CPU reading (a bench client tells its
 * servers, so that they read their own CPU over the same window).
 */
export async function runLoad(
  call: CallFn,
  inFlight: number,
  warmupMs: number,
  measureMs: number,
  onEdge?: (edge: WindowEdge) => void,
): Promise<LoadResult> {
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let recording = false;
  let stopping = false;
  let calls = 0;
  let errors = 0;
  let firstError: string | undefined;

  const worker = async (): Promise<void> => {
    while (!stopping) {
      const t0 = performance.now();
      try {
        await call();
      } catch (err) {
        if (recording) errors++;
        firstError ??= err instanceof Error ? `${(err as { code?: unknown }).code ?? ''} ${err.message}` : String(err);
        continue;
      }
      if (recording) {
        calls++;
        hist.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      }
    }
  };

  const workers = Array.from({ length: inFlight }, worker);
  await sleep(warmupMs);
  onEdge?.('start');
  recording = true;
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  await sleep(measureMs);
  recording = false;
  const cpu = process.cpuUsage(cpuStart);
  const seconds = (performance.now() - started) / 1000;
  onEdge?.('end');
  stopping = true;
  await Promise.all(workers);
  const result: LoadResult = {
    calls,
    errors,
    seconds,
    callsPerSec: calls / seconds,
    p50Us: hist.getValueAtPercentile(50),
    p90Us: hist.getValueAtPercentile(90),
    p99Us: hist.getValueAtPercentile(99),
    maxUs: hist.maxValue,
    cpuUs: cpu.user + cpu.system,
  };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
