import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AVRPC } from '../helpers/cli.js';
import { repoPath } from '../helpers/repo.js';

/** A protocol and handlers module written to a temp dir: one message answers, one throws with a cause, one never answers, one has no handler. */
export interface LogFixture {
  readonly protocol: string;
  readonly handlers: string;
  remove(): void;
}

export function logFixture(): LogFixture {
  const dir = mkdtempSync(join(tmpdir(), 'avrpc-serve-log-'));
  const protocol = join(dir, 'log.avdl');
  const handlers = join(dir, 'handlers.mjs');
  writeFileSync(
    protocol,
    `@namespace("obs.log")
protocol Log {
  string echo(string s);
  string crash(string s);
  string refuse(string s);
  string hang();
  string missing();
}
`,
  );
  writeFileSync(
    handlers,
    `import { Code, RpcError } from ${JSON.stringify(pathToFileURL(repoPath('dist/src/index.js')).href)};
export default {
  echo: ({ s }) => s,
  crash: ({ s }) => { throw new Error('crashed on ' + s, { cause: new TypeError('root cause') }); },
  refuse: () => { throw new RpcError(Code.NOT_FOUND, 'no such thing'); },
  hang: (_req, ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
};
`,
  );
  return { protocol, handlers, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A running `avrpc serve` with its stdout and stderr apart (logs go to stderr). */
export interface ServeProcess {
  readonly address: string;
  readonly metricsUrl: string | undefined;
  stdout(): string;
  stderr(): string;
  /** Resolves once stderr holds a line matching `re` (rejects after 10 s, or if the process exits first). */
  logged(re: RegExp): Promise<void>;
  /** SIGTERM, then the exit status. */
  stop(): Promise<number | null>;
}

/** Starts `avrpc serve ...args`; resolves once it printed `listening host:port` (killed after 30 s). */
export async function serveProcess(...args: string[]): Promise<ServeProcess> {
  const child = spawn(process.execPath, [AVRPC, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const exited = once(child, 'close').then(([code]) => {
    clearTimeout(kill);
    return code as number | null;
  });
  const address = await new Promise<string>((resolve, reject) => {
    const look = (): void => {
      const m = /^listening (\S+)$/m.exec(out);
      if (m !== null) {
        child.stdout.off('data', look);
        resolve(m[1]!);
      }
    };
    child.stdout.on('data', look);
    void exited.then((code) => reject(new Error(`serve exited with ${code}: ${out}${err}`)));
  });
  return {
    address,
    metricsUrl: /^metrics (\S+)$/m.exec(out)?.[1],
    stdout: () => out,
    stderr: () => err,
    async logged(re) {
      for (let i = 0; i < 1000; i++) {
        if (err.split('\n').some((line) => re.test(line))) return;
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no log line matching ${re}: ${err}`);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
