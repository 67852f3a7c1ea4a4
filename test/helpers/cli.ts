import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { repoPath } from './repo.js';

/** The built CLI, run as a real process the way `npx avrpc` would. */
export const AVRPC = repoPath('dist/src/cli/avrpc.js');
/** The test protocol and its handlers module (built from test/fixtures/cli-handlers.ts). */
export const KITCHEN = repoPath('test/fixtures/cli.avdl');
export const KITCHEN_HANDLERS = repoPath('dist/test/fixtures/cli-handlers.js');

/** What a finished CLI process printed, and its exit status. */
export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `avrpc ...args` to completion (killed after 30 s so a hang fails instead of blocking CI). */
export async function avrpc(...args: string[]): Promise<CliResult> {
  return avrpcWithEnv({}, ...args);
}

/** {@link avrpc} with `env` added to this process's environment (a value of undefined removes a variable). */
export async function avrpcWithEnv(env: NodeJS.ProcessEnv, ...args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [AVRPC, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [status] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { status, stdout, stderr };
}

/** A running `avrpc serve` process. */
export interface Served {
  /** `host:port` it printed. */
  address: string;
  /** The metrics URL it printed, with --metrics-port. */
  metricsUrl: string | undefined;
  /** Everything it printed so far. */
  output(): string;
  /** SIGTERM, then waits for exit; resolves with the exit status. */
  stop(): Promise<number | null>;
}

/** Starts `avrpc serve ...args` and waits for its `listening host:port` line. */
export async function serve(...args: string[]): Promise<Served> {
  return serveWithEnv({}, ...args);
}

/** {@link serve} with `env` added to this process's environment. */
export async function serveWithEnv(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Served> {
  const child: ChildProcess = spawn(process.execPath, [AVRPC, 'serve', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const exited = once(child, 'close') as Promise<[number | null]>;
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 30_000);
    const look = (): void => {
      const m = /^listening (\S+)$/m.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        child.stdout!.off('data', look);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', look);
    void exited.then(([code]) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}: ${out}`));
    });
  });
  return {
    address,
    metricsUrl: /^metrics (\S+)$/m.exec(out)?.[1],
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
  };
}
