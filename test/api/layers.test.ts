/**
 * The source folders are layers: each may import only from the layers below it (README, Layout).
 * This reads every import of src/ and fails on one that points up or sideways, so a cycle cannot creep in.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { repoPath } from '../helpers/repo.js';

/** Each layer with the layers it may import (itself always allowed). */
const allowed: Record<string, string[]> = {
  errors: [],
  util: ['errors'],
  framing: ['errors', 'util'],
  codec: ['errors', 'util', 'framing'],
  observability: ['errors', 'util'],
  security: ['errors', 'util', 'framing'],
  discovery: ['errors', 'util'],
  connection: ['errors', 'util', 'framing', 'codec', 'observability', 'security'],
  server: ['errors', 'util', 'framing', 'codec', 'observability', 'security', 'discovery', 'connection'],
  client: ['errors', 'util', 'framing', 'codec', 'observability', 'security', 'discovery', 'connection'],
  // The type generator of `avrpc gen`: reads parsed protocols, knows nothing of connections.
  codegen: ['errors', 'util', 'codec'],
  // The CLI is a user of the library: it may also import the public surface, src/index.ts.
  cli: [
    'errors',
    'util',
    'framing',
    'codec',
    'observability',
    'security',
    'discovery',
    'connection',
    'server',
    'client',
    'codegen',
    'index.js',
  ],
};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith('.ts') ? [path] : [];
  });
}

const src = repoPath('src');
const layerOf = (file: string): string => relative(src, file).split(sep)[0]!;

test('every src folder is a known layer', () => {
  for (const name of readdirSync(src)) {
    if (statSync(join(src, name)).isDirectory()) assert.ok(name in allowed, `src/${name} has no place in the layer list`);
  }
});

test('imports only point down the layers', () => {
  const bad: string[] = [];
  let checked = 0;
  for (const file of sources(src)) {
    const from = layerOf(file);
    if (!file.includes(sep, src.length + 1)) continue; // src/index.ts: the public surface re-exports every layer
    for (const m of readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.{1,2}\/[^']+)'/gm)) {
      const to = layerOf(resolve(dirname(file), m[1]!));
      checked++;
      if (to !== from && !allowed[from]!.includes(to)) bad.push(`${relative(src, file)} imports ${m[1]} (${from} -> ${to})`);
    }
  }
  assert.ok(checked > 100, `only ${checked} imports found: the pattern no longer matches the sources`);
  assert.equal(bad, []);
});

test.run();
