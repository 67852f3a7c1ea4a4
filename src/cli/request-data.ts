/**
 * Where a request comes from, as grpcurl's `-d` has it: JSON text on the command line, `@file` (the
 * file's content) or `@-` / `@` (all of stdin). A file or stdin may hold one JSON value (pretty
 * printed or not) or several requests as NDJSON, one per line: `bench` cycles through them, a client
 * stream sends them all, a call or server stream takes exactly one.
 */
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { parseJson } from '../codec/lossless-json.js';
import { ndjsonLines } from './ndjson-input.js';

/** The request texts given, and where they came from (for error messages). */
export interface RequestData {
  /** `argument`, `stdin` or the file name. */
  readonly source: string;
  /** One JSON text per request, syntax checked. */
  readonly texts: readonly string[];
  /** Where each text is, for errors (`requests.ndjson line 3`), when there are several. */
  readonly where: readonly string[];
}

/**
 * `-d @-` before the message is known: a client or bidi stream reads its records from stdin as they
 * come (as with no data at all), any other message reads all of stdin as its request.
 */
export const STDIN = Symbol('stdin');

/** True when `spec` reads stdin (`@-` or `@`), where a client or bidi stream reads its records as they come. */
export function isStdinSpec(spec: string | undefined): boolean {
  return spec === '@-' || spec === '@';
}

/**
 * The requests `spec` gives (text, `@file`, `@-`), each checked to be JSON before anything
 * connects. Throws INVALID_ARGUMENT naming the source and line of the first bad one, or saying the
 * file cannot be read. A JSON text never starts with `@`, so the prefix is unambiguous.
 */
export async function readRequestData(spec: string, stdin: AsyncIterable<Buffer | string> = process.stdin): Promise<RequestData> {
  if (!spec.startsWith('@')) return { source: 'argument', texts: [checked(spec, 'request')], where: ['request'] };
  const source = isStdinSpec(spec) ? 'stdin' : spec.slice(1);
  let content: string;
  try {
    content = source === 'stdin' ? await text(stdin) : await readFile(source, 'utf8');
  } catch (err) {
    throw new RpcError(
      Code.INVALID_ARGUMENT,
      `-d ${spec}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  return { source, ...(await splitRequests(content, source)) };
}

/**
 * The requests of `content`: the whole of it when it is one JSON value, else one per non-blank
 * line (NDJSON). Nothing at all is an error: an empty file is a mistake, not `{}`.
 */
export async function splitRequests(content: string, source: string): Promise<{ texts: string[]; where: string[] }> {
  if (content.trim() === '') throw new RpcError(Code.INVALID_ARGUMENT, `${source}: no request in it (empty)`);
  try {
    parseJson(content);
    return { texts: [content], where: [source] };
  } catch {
    // Not one value: NDJSON, each line a request.
  }
  const texts: string[] = [];
  const where: string[] = [];
  for await (const { line, text: lineText } of ndjsonLines(once(content), source)) {
    where.push(`${source} line ${line}`);
    texts.push(checked(lineText, where.at(-1)!));
  }
  return { texts, where };
}

async function* once(content: string): AsyncGenerator<string, void, undefined> {
  yield content;
}

function checked(json: string, where: string): string {
  try {
    parseJson(json);
  } catch (err) {
    throw new RpcError(Code.INVALID_ARGUMENT, `${where}: ${(err as Error).message}`);
  }
  return json;
}
