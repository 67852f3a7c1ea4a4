/**
 * Line layout for generated modules: the part of Prettier's document algebra and printing algorithm
 * that TypeScript type declarations need (groups that print flat when they fit in the line width and
 * break otherwise, indentation, `ifBreak`), so that `avrpc gen` writes modules exactly as Prettier
 * would format them without depending on Prettier at run time. The printer follows Prettier's
 * (`printDocToString` and its `fits`): a group is measured together with what follows it up to the
 * next possible line break, and a group that holds a hard line always breaks.
 */

/** A layout document: text, a concatenation, or one of the layout nodes below. */
export type Doc = string | readonly Doc[] | Group | Indent | Align | IfBreak | Line;

interface Group {
  readonly kind: 'group';
  readonly contents: Doc;
  /** Holds a hard line somewhere inside, so it can never print flat (Prettier's propagated break). */
  readonly broken: boolean;
}
interface Indent {
  readonly kind: 'indent';
  readonly contents: Doc;
}
interface Align {
  readonly kind: 'align';
  readonly width: number;
  readonly contents: Doc;
}
interface IfBreak {
  readonly kind: 'ifBreak';
  readonly breakContents: Doc;
  readonly flatContents: Doc;
}
interface Line {
  readonly kind: 'line';
  /** Prints nothing (instead of a space) when flat. */
  readonly soft: boolean;
  /** Always a line break. */
  readonly hard: boolean;
}

/** A space when its group is flat, a line break otherwise. */
export const line: Doc = { kind: 'line', soft: false, hard: false };
/** Nothing when its group is flat, a line break otherwise. */
export const softline: Doc = { kind: 'line', soft: true, hard: false };
/** Always a line break (and the groups around it break). */
export const hardline: Doc = { kind: 'line', soft: false, hard: true };

/** Prints `contents` on one line if it fits, else with its own lines broken. */
export function group(contents: Doc): Doc {
  return { kind: 'group', contents, broken: hasHardLine(contents) };
}

/** Lines broken inside `contents` are indented two more spaces (the project's tab width). */
export function indent(contents: Doc): Doc {
  return { kind: 'indent', contents };
}

/** Lines broken inside `contents` are indented `width` more spaces. */
export function align(width: number, contents: Doc): Doc {
  return { kind: 'align', width, contents };
}

/** `breakContents` when the enclosing group breaks, `flatContents` when it is flat. */
export function ifBreak(breakContents: Doc, flatContents: Doc = ''): Doc {
  return { kind: 'ifBreak', breakContents, flatContents };
}

/** `docs` with `separator` between each two. */
export function join(separator: Doc, docs: readonly Doc[]): Doc {
  return docs.flatMap((d, i) => (i === 0 ? [d] : [separator, d]));
}

function hasHardLine(doc: Doc): boolean {
  if (typeof doc === 'string') return false;
  if (isList(doc)) return doc.some(hasHardLine);
  switch (doc.kind) {
    case 'line':
      return doc.hard;
    case 'group':
      return doc.broken;
    case 'ifBreak':
      return hasHardLine(doc.breakContents) || hasHardLine(doc.flatContents);
    default:
      return hasHardLine(doc.contents);
  }
}

const isList = (doc: Doc): doc is readonly Doc[] => Array.isArray(doc);

type Mode = 'break' | 'flat';
interface Command {
  readonly indentation: string;
  readonly mode: Mode;
  readonly doc: Doc;
}

/** Prints `doc` with lines at most `width` columns wide where the layout allows it. */
export function render(doc: Doc, width: number): string {
  let out = '';
  let column = 0;
  const commands: Command[] = [{ indentation: '', mode: 'break', doc }];
  for (let next = commands.pop(); next !== undefined; next = commands.pop()) {
    const { indentation, mode, doc } = next;
    if (typeof doc === 'string') {
      out += doc;
      column += doc.length;
    } else if (isList(doc)) {
      for (let i = doc.length - 1; i >= 0; i--) commands.push({ indentation, mode, doc: doc[i]! });
    } else if (doc.kind === 'indent' || doc.kind === 'align') {
      const more = doc.kind === 'indent' ? '  ' : ' '.repeat(doc.width);
      commands.push({ indentation: indentation + more, mode, doc: doc.contents });
    } else if (doc.kind === 'group') {
      const flat: Command = { indentation, mode: 'flat', doc: doc.contents };
      const fitsFlat = mode === 'flat' || (!doc.broken && fits(flat, commands, width - column));
      commands.push(fitsFlat && !doc.broken ? flat : { indentation, mode: 'break', doc: doc.contents });
    } else if (doc.kind === 'ifBreak') {
      commands.push({ indentation, mode, doc: mode === 'break' ? doc.breakContents : doc.flatContents });
    } else if (mode === 'flat' && !doc.hard) {
      if (!doc.soft) {
        out += ' ';
        column += 1;
      }
    } else {
      // Prettier drops the spaces a broken line would leave at the end (`a: ` before a broken union).
      out = out.replace(/[ \t]+$/, '') + '\n' + indentation;
      column = indentation.length;
    }
  }
  return out;
}

/**
 * Whether `next`, printed flat, and then the `rest` of the document up to its next line break fit in
 * `remaining` columns (Prettier's `fits`: a space is counted only once text follows it).
 */
function fits(next: Command, rest: readonly Command[], remaining: number): boolean {
  let restIndex = rest.length;
  let pendingSpace = false;
  const stack: { mode: Mode; doc: Doc }[] = [next];
  while (remaining >= 0) {
    const item = stack.pop() ?? (restIndex > 0 ? rest[--restIndex] : undefined);
    if (item === undefined) return true;
    const { mode, doc } = item;
    if (typeof doc === 'string') {
      if (doc === '') continue;
      remaining -= doc.length + (pendingSpace ? 1 : 0);
      pendingSpace = false;
    } else if (isList(doc)) {
      for (let i = doc.length - 1; i >= 0; i--) stack.push({ mode, doc: doc[i]! });
    } else if (doc.kind === 'indent' || doc.kind === 'align') {
      stack.push({ mode, doc: doc.contents });
    } else if (doc.kind === 'group') {
      stack.push({ mode: doc.broken ? 'break' : mode, doc: doc.contents });
    } else if (doc.kind === 'ifBreak') {
      stack.push({ mode, doc: mode === 'break' ? doc.breakContents : doc.flatContents });
    } else {
      if (mode === 'break' || doc.hard) return true;
      if (!doc.soft) pendingSpace = true;
    }
  }
  return false;
}
