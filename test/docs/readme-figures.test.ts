import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { repoFile } from '../../bench/payload.js';
import { readmeBlock, readmeQuoted, resultsSummary, withSummary } from '../../bench/readme-figures.js';

const test = suite('README figures');

test("README.md quotes bench/results/latest.md's summary as it is", () => {
  const summary = resultsSummary(readFileSync(repoFile('bench/results/latest.md'), 'utf8'));
  const quoted = readmeQuoted(readFileSync(repoFile('README.md'), 'utf8'));
  assert.ok(summary.startsWith('Measured '), 'the summary opens with its date and machine');
  assert.match(summary, '**Targets:**');
  // Compared line by line first, so that a mismatch names the line.
  const expected = readmeBlock(summary).split('\n');
  quoted.split('\n').forEach((line, i) => assert.is(line, expected[i], `README.md bench block, line ${i + 1}`));
  assert.is(quoted, readmeBlock(summary), 'run `node dist/bench/readme-figures.js --write` after a bench run');
});

test('withSummary replaces only what lies between the markers', () => {
  const readme = 'intro\n<!-- bench:start -->\nold figures\n<!-- bench:end -->\nrest\n';
  const next = withSummary(readme, 'Measured today.');
  assert.ok(next.startsWith('intro\n<!-- bench:start -->\n'));
  assert.ok(next.endsWith('\n<!-- bench:end -->\nrest\n'));
  assert.is(readmeQuoted(next), readmeBlock('Measured today.'));
});

test.run();
