/**
 * Generated modules are already in Prettier's layout (the project's .prettierrc.json): Prettier
 * leaves each unchanged, for every protocol of the repository and for random protocols whose long
 * names put unions, object types and aliases on both sides of the line width.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Protocol } from '../../src/codec/protocol.js';
import { generateModule } from '../../src/codegen/module.js';
import { seeded } from '../helpers/prng.js';
import { loadAll, prettier } from './codegen-fixture.js';
import { randomProtocol } from './random-protocol.js';

const test = suite('codegen formatting');

/** Fails with the first line where Prettier's layout differs (the whole texts are too long to read). */
function assertSame(actual: string, formatted: string, what: string): void {
  if (actual === formatted) return;
  const a = actual.split('\n');
  const b = formatted.split('\n');
  const i = a.findIndex((l, k) => l !== b[k]);
  assert.unreachable(
    `${what}: line ${i + 1} differs:\n  generated: ${JSON.stringify(a[i])}\n  prettier:  ${JSON.stringify(b[i])}\n${actual}`,
  );
}

test('every protocol of the repository, in each longs mode', async () => {
  const all = await loadAll();
  assert.ok(all.size >= 12, `only ${all.size} protocols load`);
  for (const [file, protocol] of all) {
    for (const longs of ['number', 'bigint', 'string'] as const) {
      const text = generateModule(protocol, { source: file, longs });
      assertSame(text, await prettier(text), `${file} (${longs})`);
    }
  }
});

test('random protocols with names up to 70 characters long', async () => {
  const rnd = seeded(11);
  let broken = 0;
  for (let i = 0; i < 150; i++) {
    const json = randomProtocol(rnd, i);
    let protocol: Protocol;
    try {
      protocol = new Protocol(json);
    } catch (err) {
      throw new Error(`random protocol ${i} does not load (${(err as Error).message}): ${JSON.stringify(json)}`, { cause: err });
    }
    const text = generateModule(protocol, { source: `p${i}.avpr` });
    assertSame(text, await prettier(text), `random protocol ${i}`);
    if (/:\n\s+\| /.test(text)) broken++;
  }
  // The layouts exercised: unions broken one branch a line (besides the ones that fit).
  assert.ok(broken > 15, `only ${broken} modules with a broken union`);
});

test.run();
