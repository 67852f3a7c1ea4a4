/**
 * README.md's "Use it in your app" section as files of a project: the test runs the section as a
 * newcomer would, so the section cannot drift from what works. Each part is found by what it is
 * (the IDL block, the block with `createServer`, the one with `createClient`, the inline tsconfig, the
 * `avrpc gen` line, the expected output in the run block's comment); a section rewritten so that one
 * is missing fails loudly here.
 */
import { readFileSync } from 'node:fs';
import { repoPath } from '../helpers/repo.js';

/** The project the section describes. */
export interface ReadmeApp {
  /** Files by path relative to the project. */
  files: Record<string, string>;
  /** The arguments of its `npx avrpc gen` line. */
  genArgs: string[];
  /** The lines the client prints, in order. */
  expected: string[];
}

/** The README section titled `title`, up to the next `## ` heading. */
function section(title: string): string {
  const readme = readFileSync(repoPath('README.md'), 'utf8');
  const start = readme.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README.md has no section "${title}"`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

function one<T>(found: T[], what: string): T {
  if (found.length !== 1) throw new Error(`README "Use it in your app": expected one ${what}, found ${found.length}`);
  return found[0]!;
}

/** The section's project, with the server's port 7000 replaced by `port` (a free loopback port). */
export function readmeApp(port: number): ReadmeApp {
  const text = section('Use it in your app');
  const blocks = [...text.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, body: m[2]! }));
  const ts = blocks.filter((b) => b.lang === 'ts');
  const withPort = (code: string): string => code.replaceAll('7000', String(port));
  const idl = one(
    blocks.filter((b) => b.lang === 'avdl'),
    'avdl block',
  ).body;
  const server = one(
    ts.filter((b) => b.body.includes('createServer<')),
    'server block',
  ).body;
  const client = one(
    ts.filter((b) => b.body.includes('createClient<')),
    'client block',
  ).body;
  const tsconfig = one([...text.matchAll(/`tsconfig\.json`: `(\{.*?\})`/g)], 'inline tsconfig.json')[1]!;
  const gen = one([...text.matchAll(/^npx avrpc (gen [^#\n]*?)\s*(?:#.*)?$/gm)], 'avrpc gen line')[1]!;
  const output = one([...text.matchAll(/^node dist\/client\.js\s+# (.*)$/gm)], 'client run line with its output')[1]!;
  const idlPath = one([...text.matchAll(/`(protocol\/\w+\.avdl)`/g)].map((m) => m[1]!).filter(unique), 'protocol path');
  return {
    files: {
      'package.json': JSON.stringify({ name: 'greeter', version: '1.0.0', private: true, type: 'module' }, null, 2) + '\n',
      [idlPath]: idl,
      'src/server.ts': withPort(server),
      'src/client.ts': withPort(client),
      'tsconfig.json': JSON.stringify(JSON.parse(tsconfig), null, 2) + '\n',
    },
    genArgs: gen.split(/\s+/),
    expected: output.split(', then: '),
  };
}

function unique(value: string, index: number, all: string[]): boolean {
  return all.indexOf(value) === index;
}
