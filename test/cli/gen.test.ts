/**
 * `avrpc gen` as a process: one module per protocol in --out, `wrote`/`unchanged` for each, files
 * left untouched (mtime included) when regenerating, --longs, and failures (a missing file, bad IDL,
 * two inputs with one name, usage errors) that exit non-zero with one clear line, no stack, and
 * nothing written.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProtocol } from '../../src/codec/protocol.js';
import { generateModule } from '../../src/codegen/module.js';
import { Code } from '../../src/errors/code.js';
import { exitStatusFor } from '../../src/cli/options.js';
import { avrpc, type CliResult } from '../helpers/cli.js';
import { repoPath } from '../helpers/repo.js';

const test = suite('avrpc gen');

const ECHO = repoPath('protocol/echo.avdl');
const STREAM = repoPath('protocol/stream.avdl');
const SHOP = repoPath('test/fixtures/protocols/shop.avdl');

let dir = '';
test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'avrpc-gen-'));
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

/** A failure: the status of INVALID_ARGUMENT, one line on stderr that says `what`, no stack trace. */
function assertRefused(r: CliResult, what: RegExp): void {
  assert.is(r.status, exitStatusFor(Code.INVALID_ARGUMENT), r.stderr);
  assert.match(r.stderr, /^INVALID_ARGUMENT: /);
  assert.match(r.stderr, what);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.not.match(r.stderr, /\n\s+at /);
  assert.is(r.stdout, '');
}

test('writes one module per protocol, as generateModule makes it, and says so', async () => {
  const out = join(dir, 'gen');
  const r = await avrpc('gen', ECHO, STREAM, SHOP, '--out', out);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, ['echo', 'stream', 'shop'].map((n) => `wrote ${join(out, `${n}.ts`)}\n`).join(''));
  assert.equal(readdirSync(out).sort(), ['echo.ts', 'shop.ts', 'stream.ts']);
  assert.fixture(readFileSync(join(out, 'echo.ts'), 'utf8'), generateModule(await loadProtocol(ECHO), { source: 'echo.avdl' }));
  // Imports of an IDL are resolved: shop.avdl's types come from shop-types.avdl.
  assert.fixture(readFileSync(join(out, 'shop.ts'), 'utf8'), generateModule(await loadProtocol(SHOP), { source: 'shop.avdl' }));
  assert.match(readFileSync(join(out, 'shop.ts'), 'utf8'), 'export interface Order {');
});

test('regenerating leaves every file untouched; a changed file is written again', async () => {
  assert.is((await avrpc('gen', ECHO, STREAM, '--out', dir)).status, 0);
  const echo = join(dir, 'echo.ts');
  const stream = join(dir, 'stream.ts');
  // An mtime in the past: a rewrite, however fast, would move it.
  const past = new Date('2020-01-01T00:00:00Z');
  for (const f of [echo, stream]) utimesSync(f, past, past);
  const again = await avrpc('gen', ECHO, STREAM, '--out', dir);
  assert.is(again.status, 0, again.stderr);
  assert.is(again.stdout, `unchanged ${echo}\nunchanged ${stream}\n`);
  for (const f of [echo, stream]) assert.is(statSync(f).mtimeMs, past.getTime(), f);

  const text = readFileSync(stream, 'utf8');
  writeFileSync(stream, text.replace('Summary', 'Edited'));
  utimesSync(stream, past, past);
  const fix = await avrpc('gen', ECHO, STREAM, '--out', dir);
  assert.is(fix.stdout, `unchanged ${echo}\nwrote ${stream}\n`);
  assert.is(readFileSync(stream, 'utf8'), text);
  assert.ok(statSync(stream).mtimeMs > past.getTime());
  assert.is(statSync(echo).mtimeMs, past.getTime());
});

test('--longs bigint and string type longs so; the module changes with the mode', async () => {
  assert.is((await avrpc('gen', ECHO, '--out', dir, '--longs', 'bigint')).status, 0);
  assert.match(readFileSync(join(dir, 'echo.ts'), 'utf8'), '  id: bigint;\n');
  const r = await avrpc('gen', ECHO, '--out', dir, '--longs', 'string');
  assert.is(r.stdout, `wrote ${join(dir, 'echo.ts')}\n`);
  assert.match(readFileSync(join(dir, 'echo.ts'), 'utf8'), '  id: string;\n');
  assert.is((await avrpc('gen', ECHO, '--out', dir)).status, 0);
  assert.match(readFileSync(join(dir, 'echo.ts'), 'utf8'), '  id: number;\n');
});

test('a missing file, bad IDL or bad JSON fails with its name and writes nothing', async () => {
  const out = join(dir, 'gen');
  assertRefused(await avrpc('gen', ECHO, join(dir, 'nope.avdl'), '--out', out), /cannot load protocol .*nope\.avdl.*ENOENT/);
  assertRefused(await avrpc('gen', ECHO, repoPath('test/fixtures/protocols/bad/syntax.avdl'), '--out', out), /syntax\.avdl.*invalid token/);
  assertRefused(await avrpc('gen', repoPath('test/fixtures/protocols/bad/truncated.avpr'), ECHO, '--out', out), /truncated\.avpr/);
  assertRefused(await avrpc('gen', repoPath('test/fixtures/protocols/bad/missing-import.avdl'), '--out', out), /missing-import\.avdl/);
  assert.not.ok(existsSync(out), 'nothing written, not even the directory');
});

test('two inputs that would write the same module are refused before anything is written', async () => {
  const r = await avrpc('gen', ECHO, repoPath('protocol/echo.avpr'), '--out', dir);
  assertRefused(r, /echo\.avdl and .*echo\.avpr would both be written to echo\.ts/);
  assert.equal(readdirSync(dir), []);
});

test('an --out that cannot be a directory fails clearly', async () => {
  const file = join(dir, 'file');
  writeFileSync(file, '');
  assertRefused(await avrpc('gen', ECHO, '--out', file), /--out .*file: cannot create the directory \(EEXIST\)/);
});

test('usage errors (no --out, an unknown --longs, no protocol) exit 2 with commander message', async () => {
  const noOut = await avrpc('gen', ECHO);
  assert.is(noOut.status, 2);
  assert.match(noOut.stderr, "required option '--out <dir>' not specified");
  const longs = await avrpc('gen', ECHO, '--out', dir, '--longs', 'huge');
  assert.is(longs.status, 2);
  assert.match(longs.stderr, 'Allowed choices are number, bigint, string');
  const none = await avrpc('gen', '--out', dir);
  assert.is(none.status, 2);
  assert.match(none.stderr, "missing required argument 'protocol'");
  assert.equal(readdirSync(dir), []);
});

test.run();
