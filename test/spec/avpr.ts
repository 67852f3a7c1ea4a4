/**
 * `npm run avpr`: writes protocol/NAME.avpr beside every protocol/NAME.avdl, for client authors
 * without an IDL parser. Each .avpr holds exactly the protocol text avrpc sends in its handshake
 * (`JSON.stringify` of avsc's protocol object, no trailing newline), so the MD5 of the file is the
 * protocol's fingerprint (SPEC.md sections 3 and 10). test/spec/avpr.test.ts holds the files to it.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadProtocol } from '../../src/index.js';
import { repoPath } from '../helpers/repo.js';

/** The .avdl files of protocol/, by name, each with the path of its .avpr. */
export function shippedProtocols(): { avdl: string; avpr: string }[] {
  return readdirSync(repoPath('protocol'))
    .filter((name) => name.endsWith('.avdl'))
    .sort()
    .map((name) => ({ avdl: repoPath('protocol', name), avpr: repoPath('protocol', name.replace(/\.avdl$/, '.avpr')) }));
}

/** The .avpr content for an .avdl file: the protocol text avrpc's own loader makes of it. */
export async function avprOf(avdl: string): Promise<string> {
  return (await loadProtocol(avdl)).text;
}

async function main(): Promise<void> {
  for (const { avdl, avpr } of shippedProtocols()) {
    writeFileSync(avpr, await avprOf(avdl));
    console.log(`wrote ${avpr}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
