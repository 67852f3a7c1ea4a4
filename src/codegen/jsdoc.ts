/**
 * JSDoc comments from the docs of an IDL (`/** ... *\/` before a type, field or message: avsc keeps
 * it as `doc`), in the layout Prettier leaves as it is.
 */
import { hardline, join, type Doc } from './layout.js';

/**
 * A JSDoc comment of `paragraphs` (undefined ones skipped), or undefined when there is nothing to
 * say: `/** text *\/` for one line, else `/**`, ` * line`... and ` *\/` on lines of their own.
 * Lines keep their indentation relative to each other (a doc written without leading stars often
 * has it all shifted right), lose trailing spaces, and a `*\/` inside becomes `*\/` with a backslash
 * so that it cannot close the comment.
 */
export function jsdoc(paragraphs: readonly (string | undefined)[]): Doc | undefined {
  const lines = paragraphs.flatMap((p) => (p === undefined ? [] : dedent(p.split(/\r\n|\r|\n/).map((l) => l.trimEnd()))));
  while (lines.length > 0 && lines[0] === '') lines.shift();
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) return undefined;
  const safe = lines.map((l) => l.replace(/\*\//g, '*\\/'));
  if (safe.length === 1) return `/** ${safe[0]} */`;
  return [
    '/**',
    hardline,
    join(
      hardline,
      safe.map((l) => (l === '' ? ' *' : ` * ${l}`)),
    ),
    hardline,
    ' */',
  ];
}

function dedent(lines: string[]): string[] {
  const indents = lines.filter((l) => l !== '').map((l) => /^\s*/.exec(l)![0].length);
  const common = indents.length === 0 ? 0 : Math.min(...indents);
  return lines.map((l) => l.slice(common));
}
