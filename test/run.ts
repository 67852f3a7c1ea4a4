/**
 * Test runner: runs every `*.test.js` under dist/test in its own child process (a crash or a
 * leaked handle in one file cannot hide another file's result), then prints the closing line
 * `N passed, N failed` that CI reads. Usage: `node dist/test/run.js [filter]`.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const FILE_TIMEOUT_MS = 180_000;

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

/** Child mode: run one file with uvu, then fail if it left sockets, servers or timers behind. */
async function runChild(file: string): Promise<void> {
  const { run } = await import('uvu/run');
  await run([{ name: relative(here, file), file }], { bail: false });
  // Let close callbacks settle before judging what is still open.
  await new Promise((r) => setTimeout(r, 50));
  const leaked = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap');
  if (leaked.length > 0) {
    console.error(`\n  LEAK: ${relative(here, file)} left open: ${leaked.join(', ')}`);
    process.exit(1);
  }
}

async function runParent(filter: string | undefined): Promise<void> {
  const files = findTests(here).filter((f) => !filter || f.includes(filter));
  let passed = 0;
  let failed = 0;
  // Repeated at the very end: CI shows only the tail of a long log, and a failure must be visible there.
  const failures: string[] = [];
  for (const file of files) {
    const result = await new Promise<{ out: string; code: number | null }>((resolve) => {
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', file], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d;
        process.stdout.write(d);
      });
      child.stderr.on('data', (d: Buffer) => {
        out += d;
        process.stderr.write(d);
      });
      const timer = setTimeout(() => {
        out += '\n  TIMEOUT\n';
        child.kill('SIGKILL');
      }, FILE_TIMEOUT_MS);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ out, code });
      });
    });
    // eslint-disable-next-line no-control-regex
    const plain = result.out.replace(/\x1b\[[0-9;]*m/g, '');
    const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
    const ok = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
    const skipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
    passed += ok;
    let bad = total - ok - skipped;
    if (result.code !== 0 && bad === 0) bad = 1; // crashed, leaked or timed out
    failed += bad;
    if (bad > 0) {
      const how = `exit ${result.code ?? 'killed'}, ${ok} of ${total} passed`;
      const tail = plain.trimEnd().split('\n').slice(-60).join('\n');
      failures.push(`FAILED ${relative(here, file)} (${how}); its last lines:\n${tail}`);
    }
  }
  if (failures.length > 0) console.log(`\n${failures.join('\n\n')}`);
  console.log(`\n${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
}

const args = process.argv.slice(2);
if (args[0] === '--child') await runChild(args[1]!);
else await runParent(args[0]);
