// The CommonJS build: dist/cjs, with its own .d.ts, for `require('avrpc')`. tsc decides a file's
// module format from the nearest package.json, and the repository's says "module"; so this copies
// src/ to a staging folder under a package.json that says "commonjs" and compiles the copy with
// tsconfig.cjs.json (module nodenext: imports become require(), a dynamic import() of a user's
// module stays import()). No source maps: they would point at the staging copy, which is not shipped.
// Entry points: src/index.ts, and the piscina worker script, which is loaded by path, not imported.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stage = join(root, 'dist', '.cjs-stage');
const out = join(root, 'dist', 'cjs');
const commonjs = JSON.stringify({ type: 'commonjs' }) + '\n';

rmSync(stage, { recursive: true, force: true });
rmSync(out, { recursive: true, force: true }); // no stale output of a deleted source file
cpSync(join(root, 'src'), join(stage, 'src'), { recursive: true });
writeFileSync(join(stage, 'package.json'), commonjs);
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.cjs.json')], { stdio: 'inherit' });
rmSync(stage, { recursive: true, force: true });
if (result.status !== 0) process.exit(result.status ?? 1);
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'package.json'), commonjs);
