import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProtocol } from '../../src/index.js';
import { repoPath } from '../helpers/repo.js';
import { avprOf, shippedProtocols } from './avpr.js';

/** protocol/*.avpr (written by `npm run avpr`) cannot drift from the .avdl beside it. */
const test = suite('spec: shipped .avpr files');

test('every .avdl in protocol/ has an .avpr beside it, and every .avpr an .avdl', () => {
  const shipped = shippedProtocols();
  assert.ok(shipped.length >= 3);
  for (const { avpr } of shipped) assert.ok(existsSync(avpr), `${avpr} missing: run npm run avpr`);
  const avprs = readdirSync(repoPath('protocol')).filter((n) => n.endsWith('.avpr'));
  assert.is(avprs.length, shipped.length);
});

test('each .avpr is exactly the protocol text avrpc makes of its .avdl, so its MD5 is the fingerprint', async () => {
  for (const { avdl, avpr } of shippedProtocols()) {
    const bytes = readFileSync(avpr);
    assert.is(bytes.toString('utf8'), await avprOf(avdl), `${avpr} is stale: run npm run avpr`);
    const fromAvdl = await loadProtocol(avdl);
    assert.is(createHash('md5').update(bytes).digest('hex'), fromAvdl.id, avpr);
    // Loading the .avpr gives the same protocol, with the same text.
    const fromAvpr = await loadProtocol(avpr);
    assert.is(fromAvpr.text, fromAvdl.text, avpr);
  }
});

test.run();
