import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Code } from '../../src/index.js';
import { exitStatusFor } from '../../src/cli/options.js';
import { KITCHEN, KITCHEN_HANDLERS, avrpcWithEnv, serveWithEnv, type Served } from '../helpers/cli.js';

/**
 * Issue 14: secrets off argv (which `ps` shows every user). `AVRPC_TOKEN` and `--token-file` stand
 * for `--token` in every subcommand, `serve` included (the token it requires). A flag beats the
 * environment; both flags at once, an empty token or an unreadable file are refused.
 */
const test = suite('avrpc token sources');
let dir: string;
let served: Served | undefined;
const NO_ENV = { AVRPC_TOKEN: undefined };

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'avrpc-token-'));
  writeFileSync(join(dir, 'token'), 's3cret\n');
  writeFileSync(join(dir, 'wrong'), 'nope\n');
  writeFileSync(join(dir, 'empty'), '\n');
});

test.after(async () => {
  if (served !== undefined) assert.is(await served.stop(), 0);
  rmSync(dir, { recursive: true, force: true });
});

test('serve takes its token from AVRPC_TOKEN; call, describe and bench take theirs from AVRPC_TOKEN or --token-file', async () => {
  served = await serveWithEnv({ AVRPC_TOKEN: 's3cret' }, KITCHEN, KITCHEN_HANDLERS, '--port', '0');
  const at = served.address;
  const none = await avrpcWithEnv(NO_ENV, 'call', at, 'ping');
  assert.is(none.status, exitStatusFor(Code.UNAUTHENTICATED), 'the server requires the token from its environment');
  const env = await avrpcWithEnv({ AVRPC_TOKEN: 's3cret' }, 'call', at, 'ping');
  assert.is(env.status, 0, env.stderr);
  const file = await avrpcWithEnv(NO_ENV, 'call', at, 'ping', '--token-file', join(dir, 'token'));
  assert.is(file.status, 0, `the trailing newline is not part of the token: ${file.stderr}`);
  const described = await avrpcWithEnv({ AVRPC_TOKEN: 's3cret' }, 'describe', at);
  assert.is(described.status, 0, described.stderr);
  assert.match(described.stdout, /protocol Kitchen/);
  const described2 = await avrpcWithEnv(NO_ENV, 'describe', at, '--token-file', join(dir, 'token'));
  assert.is(described2.status, 0, described2.stderr);
  const bench = await avrpcWithEnv(NO_ENV, 'bench', at, 'ping', '{}', '-n', '5', '--json', '--token-file', join(dir, 'token'));
  assert.is(bench.status, 0, bench.stderr);
  const report = JSON.parse(bench.stdout) as { calls: number; errors: Record<string, number> };
  assert.is(report.calls, 5);
  assert.is((report as { ok?: number }).ok, 5);
  assert.is(report.errors.UNAUTHENTICATED, undefined, 'bench authenticated');
});

test('a flag beats the environment; --token and --token-file together, an empty token or a missing file are refused', async () => {
  const at = served!.address;
  const flag = await avrpcWithEnv({ AVRPC_TOKEN: 'wrong' }, 'call', at, 'ping', '--token', 's3cret');
  assert.is(flag.status, 0, flag.stderr);
  const file = await avrpcWithEnv({ AVRPC_TOKEN: 'wrong' }, 'call', at, 'ping', '--token-file', join(dir, 'token'));
  assert.is(file.status, 0, file.stderr);
  const wrongFile = await avrpcWithEnv({ AVRPC_TOKEN: 's3cret' }, 'call', at, 'ping', '--token-file', join(dir, 'wrong'));
  assert.is(wrongFile.status, exitStatusFor(Code.UNAUTHENTICATED), 'the file beats the environment');
  const both = await avrpcWithEnv(NO_ENV, 'call', at, 'ping', '--token', 's3cret', '--token-file', join(dir, 'token'));
  assert.is(both.status, 2, 'a usage error');
  assert.is(both.stderr, 'error: --token and --token-file are both given: use one\n');
  const empty = await avrpcWithEnv(NO_ENV, 'call', at, 'ping', '--token-file', join(dir, 'empty'));
  assert.is(empty.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(empty.stderr, /^INVALID_ARGUMENT: --token-file .*empty: the token is empty/);
  const emptyEnv = await avrpcWithEnv({ AVRPC_TOKEN: '' }, 'describe', at);
  assert.is(emptyEnv.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(emptyEnv.stderr, /^INVALID_ARGUMENT: AVRPC_TOKEN: the token is empty/);
  const missing = await avrpcWithEnv(NO_ENV, 'describe', at, '--token-file', join(dir, 'absent'));
  assert.is(missing.status, exitStatusFor(Code.INVALID_ARGUMENT));
  assert.match(missing.stderr, /^INVALID_ARGUMENT: --token-file .*absent: cannot read it \(ENOENT\)/);
});

test('serve --token-file: the token it requires comes from the file; a conflicting serve refuses to start', async () => {
  const guarded = await serveWithEnv(NO_ENV, KITCHEN, KITCHEN_HANDLERS, '--port', '0', '--token-file', join(dir, 'token'));
  try {
    const denied = await avrpcWithEnv(NO_ENV, 'call', guarded.address, 'ping', '--token', 'nope');
    assert.is(denied.status, exitStatusFor(Code.UNAUTHENTICATED));
    const allowed = await avrpcWithEnv(NO_ENV, 'call', guarded.address, 'ping', '--token', 's3cret');
    assert.is(allowed.status, 0, allowed.stderr);
  } finally {
    assert.is(await guarded.stop(), 0);
  }
  const conflicting = await avrpcWithEnv(
    NO_ENV,
    'serve',
    KITCHEN,
    KITCHEN_HANDLERS,
    '--port',
    '0',
    '--token',
    'a',
    '--token-file',
    join(dir, 'token'),
  );
  assert.is(conflicting.status, 2, 'a usage error');
  assert.match(conflicting.stderr, /^error: --token and --token-file are both given/);
});

test.run();
