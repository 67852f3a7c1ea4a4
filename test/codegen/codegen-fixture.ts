/**
 * Shared by the codegen tests: the protocols the generator is checked on (every protocol of the
 * repository that loads, and the codegen fixtures), Prettier's verdict on a module, and a `tsc
 * --strict` check of modules run in-process with the TypeScript compiler API.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { format } from 'prettier';
import ts from 'typescript';
import { loadProtocol, type Protocol } from '../../src/codec/protocol.js';
import { repoPath } from '../helpers/repo.js';

/** The codegen fixtures: every Avro type and message kind (IDL), and types defined inline (JSON). */
export const EVERYTHING = repoPath('test/fixtures/codegen/everything.avdl');
export const INLINE = repoPath('test/fixtures/codegen/inline.avpr');

/** Every protocol file of protocol/, test/fixtures (the ones that load) and the codegen fixtures. */
export function protocolFiles(): string[] {
  const dirs = ['protocol', 'test/fixtures', 'test/fixtures/protocols', 'test/fixtures/codegen'];
  return dirs.flatMap((d) =>
    readdirSync(repoPath(d))
      .filter((f) => /\.(avdl|avpr)$/.test(f))
      .sort()
      .map((f) => repoPath(d, f)),
  );
}

/** Each of {@link protocolFiles} that loads (parsed with longs 'number', as `avrpc gen` does), by path. */
export async function loadAll(): Promise<Map<string, Protocol>> {
  const out = new Map<string, Protocol>();
  for (const file of protocolFiles()) {
    const p = await loadProtocol(file).catch(() => undefined);
    if (p !== undefined) out.set(file, p);
  }
  return out;
}

const prettierOptions = { ...(JSON.parse(readFileSync(repoPath('.prettierrc.json'), 'utf8')) as object), parser: 'typescript' };

/** `text` as Prettier formats it with the project's .prettierrc.json. */
export function prettier(text: string): Promise<string> {
  return format(text, prettierOptions);
}

/**
 * Type-checks `files` (name -> TypeScript source) together under `--strict`, as a consumer project
 * would (NodeNext modules, @types/node for Buffer). Returns the diagnostics, formatted, one a line;
 * empty when everything compiles.
 */
export function typeCheck(files: Record<string, string>): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'avrpc-codegen-'));
  try {
    const names = Object.entries(files).map(([name, text]) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    });
    const options: ts.CompilerOptions = {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: ['node'],
      typeRoots: [repoPath('node_modules/@types')],
      skipLibCheck: true,
      noUnusedLocals: true,
      noUncheckedIndexedAccess: true,
    };
    const program = ts.createProgram(names, options);
    return ts.getPreEmitDiagnostics(program).map((d) => {
      const where =
        d.file === undefined ? '' : `${basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: `;
      return `${where}TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A module that checks API types against what `createClient<Api>` and `createServer<Api>` require
 * (`ApiShape`, src/codec/api-types.ts, imported from the repository's source), as `Specs<Api>`.
 */
export const API_SHAPE = `
import type { ApiShape } from '${repoPath('src/codec/api-types.js')}';
export type Specs<A extends ApiShape<A>> = A;
`;
