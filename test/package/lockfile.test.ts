/**
 * `npm install` must leave the tracked package-lock.json as it is: a lock out of step with
 * package.json (a dependency moved, a field npm adds such as the root's `bin`) makes every
 * contributor's install dirty the working tree. npm recomputes the lock from copies of the two files
 * in a temporary folder (lock only, no scripts, offline: nothing is downloaded) and it must come out
 * byte for byte the same.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoPath } from '../helpers/repo.js';
import { npmEnv } from './npm-env.js';

const run = promisify(execFile);

test('npm install leaves package-lock.json unchanged', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'avrpc-lock-'));
  try {
    await copyFile(repoPath('package.json'), join(dir, 'package.json'));
    await copyFile(repoPath('package-lock.json'), join(dir, 'package-lock.json'));
    try {
      await run('npm', ['install', '--package-lock-only', '--ignore-scripts', '--offline', '--no-audit', '--no-fund'], {
        cwd: dir,
        env: npmEnv,
        timeout: 60_000,
      });
    } catch (err) {
      // Offline, npm fails (ENOTCACHED) when it needs metadata the lock lacks: the lock is out of step.
      const { stderr } = err as { stderr?: string };
      assert.unreachable(`npm could not recompute the lock from the cache, so it is out of step with package.json:\n${stderr ?? ''}`);
    }
    const before = await readFile(repoPath('package-lock.json'), 'utf8');
    const after = await readFile(join(dir, 'package-lock.json'), 'utf8');
    assert.fixture(after, before, 'run `npm install --package-lock-only` and commit package-lock.json');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
