/**
 * What the instruction-count benches (perf-count.ts, http-gateway-count.ts) share: how a process is
 * run under callgrind, and the total a callgrind file records.
 */
import { readFileSync } from 'node:fs';

/**
 * `fork` options running a Node process under `valgrind --tool=callgrind`, writing `out`. GC on the
 * main thread and no timer-driven heap shrinking: counts that repeat run to run.
 */
export function underCallgrind(out: string): { execPath: string; execArgv: string[] } {
  return {
    execPath: 'valgrind',
    execArgv: [
      '-q',
      '--tool=callgrind',
      '--smc-check=all-non-file',
      `--callgrind-out-file=${out}`,
      process.execPath,
      '--single-threaded',
      '--no-memory-reducer',
    ],
  };
}

/** The instructions a callgrind file counted in all. */
export function callgrindTotal(file: string): number {
  return Number(/^totals: (\d+)/m.exec(readFileSync(file, 'utf8'))![1]);
}
