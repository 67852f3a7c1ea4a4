/**
 * `npm start`'s live demo (README quick start): a real run, shortened with DEMO_DURATION_MS, must end
 * with its summary and exit 0 (no call failed through the graceful restart and the SIGKILL).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { repoPath } from '../helpers/repo.js';

const test = suite('npm start demo');

test('the demo runs three servers, restarts one, kills one, prints a summary and exits 0', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, DEMO_DURATION_MS: '3000' };
  delete env['ETCD_ENDPOINTS']; // the embedded registry: no etcd needed
  const child = spawn(process.execPath, [repoPath('dist/src/cli/demo.js')], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [status] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  assert.is(status, 0, out);
  assert.match(out, /registry: embedded/);
  assert.match(out, />> graceful restart of s1/);
  assert.match(out, />> SIGKILL of s2/);
  assert.match(out, /^summary: OK \d+$/m);
  assert.match(out, /no call failed/);
});

test.run();
