import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { AVRPC, type CliResult } from '../helpers/cli.js';

/**
 * A running `avrpc ...` process with its stdin open, for stream calls: the test writes request lines
 * when it chooses and waits for output lines as they come, which shows that the CLI neither reads
 * all of stdin first nor holds its output back. Killed after 30 s so that a hang fails the test.
 */
export interface CliProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Writes `line` and a newline to the process's stdin. */
  send(line: string): void;
  /** Ends its stdin. */
  end(): void;
  /** Resolves with the next complete stdout line (not yet taken); rejects if the process exits first. */
  nextLine(): Promise<string>;
  /** Waits for the exit: status, all of stdout and stderr. */
  done(): Promise<CliResult>;
}

/** Starts `avrpc ...args` with piped stdin. */
export function startCli(...args: string[]): CliProcess {
  const child = spawn(process.execPath, [AVRPC, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let taken = 0;
  let wake: (() => void) | undefined;
  child.stdout.on('data', (d: Buffer) => {
    stdout += d;
    wake?.();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  // A test that stops early (or a CLI that exits before reading) must not fail on EPIPE.
  child.stdin.on('error', () => undefined);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  let finished = false;
  const exited = once(child, 'close').then(([status]) => {
    clearTimeout(timer);
    finished = true;
    wake?.();
    return status as number | null;
  });
  return {
    child,
    send: (line) => void child.stdin.write(`${line}\n`),
    end: () => void child.stdin.end(),
    async nextLine() {
      for (;;) {
        const lines = stdout.split('\n');
        if (lines.length - 1 > taken) return lines[taken++]!;
        if (finished) throw new Error(`exited before printing line ${taken + 1}: stdout ${JSON.stringify(stdout)} stderr ${stderr}`);
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    async done() {
      const status = await exited;
      return { status, stdout, stderr };
    },
  };
}
