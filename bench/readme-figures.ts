/**
 * README.md quotes the summary of bench/results/latest.md between its `<!-- bench:start -->` and
 * `<!-- bench:end -->` markers; `npm run bench` never rewrites README.md. After a bench run worth
 * quoting, `node dist/bench/readme-figures.js --write` copies the summary in; without `--write` it only
 * checks that README's figures are the results file's, and exits 1 when they are not.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { repoFile } from './payload.js';
import { SUMMARY_END, SUMMARY_START } from './report.js';

/** README's markers around the quoted figures. */
export const README_START = '<!-- bench:start -->';
export const README_END = '<!-- bench:end -->';

/** The text strictly between `start` and `end` in `text`; throws when a marker is missing. */
function between(text: string, start: string, end: string, what: string): string {
  const from = text.indexOf(start);
  const to = text.indexOf(end, from);
  if (from < 0 || to < 0) throw new Error(`${what}: no ${start} ... ${end}`);
  return text.slice(from + start.length, to);
}

/** The summary of a latest.md. */
export function resultsSummary(latestMd: string): string {
  return between(latestMd, SUMMARY_START, SUMMARY_END, 'bench/results/latest.md').trim();
}

/** What README.md holds between its markers for a given summary: where the figures come from, then the summary. */
export function readmeBlock(summary: string): string {
  return (
    '\nThe figures below are copied from [bench/results/latest.md](bench/results/latest.md) (chart: ' +
    '[latest.svg](bench/results/latest.svg)), which `npm run bench` wrote on the date they give; a test checks that they match it.\n\n' +
    `${summary}\n`
  );
}

/** README.md's quoted block as it stands. */
export function readmeQuoted(readme: string): string {
  return between(readme, README_START, README_END, 'README.md');
}

/** README.md with its quoted block replaced by `summary`'s. */
export function withSummary(readme: string, summary: string): string {
  const from = readme.indexOf(README_START) + README_START.length;
  return readme.slice(0, from) + readmeBlock(summary) + readme.slice(readme.indexOf(README_END, from));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const readmePath = repoFile('README.md');
  const readme = readFileSync(readmePath, 'utf8');
  const summary = resultsSummary(readFileSync(repoFile('bench/results/latest.md'), 'utf8'));
  if (process.argv.includes('--write')) {
    writeFileSync(readmePath, withSummary(readme, summary));
    console.log('README.md: figures copied from bench/results/latest.md');
  } else if (readmeQuoted(readme) === readmeBlock(summary)) {
    console.log("README.md's figures are bench/results/latest.md's");
  } else {
    console.log("README.md's figures differ from bench/results/latest.md's: node dist/bench/readme-figures.js --write");
    process.exit(1);
  }
}
