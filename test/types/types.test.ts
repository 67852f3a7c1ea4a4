/**
 * Type tests: tsc (the compiler API, with the project's tsconfig) over fixtures that use typed and
 * untyped clients and servers. `typed-ok.ts` must compile cleanly; in `typed-errors.ts` every line
 * after an `// error TSnnnn` marker must fail with exactly that code, and no other line may fail, so
 * an API type that stopped checking something (or started refusing good code) fails here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import ts from 'typescript';
import { repoPath } from '../helpers/repo.js';

const fixtures = ['typed-ok.ts', 'typed-errors.ts'].map((f) => repoPath('test', 'types', 'fixtures', f));

/** The project's compiler options (strict and the rest), without emitting anything. */
function compilerOptions(): ts.CompilerOptions {
  const file = repoPath('tsconfig.json');
  const config = ts.readConfigFile(file, (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, repoPath());
  return { ...parsed.options, noEmit: true, incremental: false, tsBuildInfoFile: undefined, declaration: false };
}

const program = ts.createProgram(fixtures, compilerOptions());
const diagnostics = ts.getPreEmitDiagnostics(program);

/** `file:line TSnnnn` for each diagnostic in `file` (1-based lines). */
function found(file: string): string[] {
  return diagnostics
    .filter((d) => d.file?.fileName === file)
    .map((d) => `${d.file!.getLineAndCharacterOfPosition(d.start ?? 0).line + 1} TS${d.code}`)
    .sort();
}

/** What the markers expect: the code of each marker, on the next line that is not a comment. */
function expected(file: string): string[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: string[] = [];
  lines.forEach((line, i) => {
    const m = /^\s*\/\/ error (TS\d+)/.exec(line);
    if (m === null) return;
    let at = i + 1;
    while (at < lines.length && lines[at]!.trim().startsWith('//')) at++;
    out.push(`${at + 1} ${m[1]}`);
  });
  return out.sort();
}

const messages = (file: string): string =>
  diagnostics
    .filter((d) => d.file?.fileName === file)
    .map((d) => `${d.file!.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)
    .join('\n');

test('no diagnostic outside the fixtures (the program itself compiles)', () => {
  const elsewhere = diagnostics.filter((d) => d.file === undefined || !fixtures.includes(d.file.fileName));
  assert.equal(
    elsewhere.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    [],
  );
});

test('typed and untyped clients and servers used as intended compile', () => {
  assert.equal(found(fixtures[0]!), [], messages(fixtures[0]!));
});

test('a wrong message name, field, result, kind or handler fails to compile, each where marked', () => {
  const want = expected(fixtures[1]!);
  assert.ok(want.length >= 12, `only ${want.length} markers found`);
  assert.equal(found(fixtures[1]!), want, messages(fixtures[1]!));
});

test.run();
