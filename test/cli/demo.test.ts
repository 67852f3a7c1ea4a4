/**
 * `npm start`'s live demo (README quick start): a real run, shortened with DEMO_DURATION_MS, must end
 * with its summary and exit 0 (no call failed through the graceful restart and the SIGKILL), with the
 * embedded registry and with etcd (ETCD_ENDPOINTS); a server that crashes at startup fails the demo
 * at once (exit 1) and leaves no server process behind.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { repoPath } from '../helpers/repo.js';
import { startEtcd } from '../helpers/etcd.js';

const test = suite('npm start demo');
/** A bound on a whole demo run; a hung demo is killed, and then fails on its exit status. */
const RUN_BOUND_MS = 60_000;

/** Runs the demo with `env` (and node `args` before the script); resolves with its exit status and output. */
async function runDemo(env: NodeJS.ProcessEnv, args: string[] = []): Promise<{ status: number | null; out: string }> {
  const child = spawn(process.execPath, [...args, repoPath('dist/src/cli/demo.js')], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_BOUND_MS);
  const [status] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  // The rest of its output; server processes it left behind would hold the pipes open, so bounded.
  const flushed = setTimeout(() => {
    child.stdout.destroy();
    child.stderr.destroy();
  }, 2000);
  if (child.stdout.readable || child.stderr.readable) await once(child, 'close');
  clearTimeout(flushed);
  return { status, out };
}

function demoEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DEMO_DURATION_MS: '3000', ...extra };
  if (extra['ETCD_ENDPOINTS'] === undefined) delete env['ETCD_ENDPOINTS'];
  return env;
}

function assertCompleteRun(status: number | null, out: string): void {
  assert.is(status, 0, out);
  assert.match(out, />> graceful restart of s1/);
  assert.match(out, />> SIGKILL of s2/);
  assert.match(out, /^summary: OK \d+$/m);
  assert.match(out, /no call failed/);
}

test('the demo runs three servers, restarts one, kills one, prints a summary and exits 0', async () => {
  const { status, out } = await runDemo(demoEnv());
  assert.match(out, /registry: embedded/);
  assertCompleteRun(status, out);
});

test('with ETCD_ENDPOINTS the servers register in etcd and the client discovers them there', async () => {
  const etcd = await startEtcd();
  try {
    const { status, out } = await runDemo(demoEnv({ ETCD_ENDPOINTS: etcd.endpoint, DEMO_DURATION_MS: '4000' }));
    assert.match(out, new RegExp(`registry: etcd at ${etcd.endpoint}`));
    assertCompleteRun(status, out);
  } finally {
    await etcd.stop();
  }
});

test('a server that crashes at startup fails the demo (exit 1, not a hang) and the others are stopped', async () => {
  // Preloaded in the demo and (through execArgv) in each server process it forks: s2 dies at startup.
  const dir = await mkdtemp(join(tmpdir(), 'avrpc-demo-'));
  const preload = join(dir, 'crash-s2.mjs');
  await writeFile(
    preload,
    [
      "const at = process.argv.indexOf('--server');",
      'if (at >= 0) {',
      "  if (process.argv[at + 1] === 's2') { console.error('s2: simulated crash at startup'); process.exit(3); }",
      '  console.log(`server process ${process.argv[at + 1]} pid ${process.pid}`);',
      '}',
    ].join('\n'),
  );
  let pids: number[] = [];
  try {
    const { status, out } = await runDemo(demoEnv(), ['--import', pathToFileURL(preload).href]);
    pids = [...out.matchAll(/server process s[13] pid (\d+)/g)].map((m) => Number(m[1]));
    assert.is(status, 1, out);
    assert.match(out, /demo failed: server s2 exited \(3\) before reporting its port/);
    assert.not.match(out, />> graceful restart/);
    assert.is(pids.length, 2, out);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `server process ${pid} is gone`);
  } finally {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL'); // only if a failed run left it behind
      } catch {
        // gone, as it should be
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
