/**
 * Newline-delimited JSON request records, read lazily: a line is read (and a record parsed) only when
 * the consumer asks for the next record, so a client or bidi stream sends each record as it is typed
 * or piped instead of after the end of stdin. Blank lines are skipped; a bad line fails naming its
 * line number.
 */
import { StringDecoder } from 'node:string_decoder';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { requestFromJson, type JsonMessage } from '../codec/avro-json.js';

/** One non-blank line of input and its 1-based line number. */
export interface NumberedLine {
  readonly line: number;
  readonly text: string;
}

/** Longest line taken by default (characters): a record larger than the client's 64 MiB message limit in JSON. */
export const MAX_LINE_CHARS = 128 * 1024 * 1024;

/**
 * The non-blank lines of `source` (chunks of UTF-8, as `process.stdin` yields them), split on `\n`
 * (a `\r` before it is dropped), with their line numbers. The last line needs no newline. A line
 * longer than `maxLineChars` fails INVALID_ARGUMENT (memory stays bounded by it); `name` says
 * where the input comes from in errors.
 */
export async function* ndjsonLines(
  source: AsyncIterable<Buffer | string>,
  name = 'stdin',
  maxLineChars = MAX_LINE_CHARS,
): AsyncGenerator<NumberedLine, void, undefined> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let line = 0;
  const complete = (text: string): NumberedLine | undefined => {
    line++;
    const trimmed = text.endsWith('\r') ? text.slice(0, -1) : text;
    return trimmed.trim() === '' ? undefined : { line, text: trimmed };
  };
  for await (const chunk of source) {
    // Look for newlines in the new text only: a long line in many chunks is scanned once.
    const scanFrom = pending.length;
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let start = 0;
    for (let nl = pending.indexOf('\n', scanFrom); nl >= 0; nl = pending.indexOf('\n', start)) {
      const found = complete(pending.slice(start, nl));
      start = nl + 1;
      if (found !== undefined) yield found;
    }
    pending = pending.slice(start);
    if (pending.length > maxLineChars) {
      throw new RpcError(Code.INVALID_ARGUMENT, `${name} line ${line + 1}: longer than ${maxLineChars} characters`);
    }
  }
  pending += decoder.end();
  if (pending !== '') {
    const found = complete(pending);
    if (found !== undefined) yield found;
  }
}

/**
 * The request records of `msg` read from NDJSON `source`, one per non-blank line, each parsed only
 * when the consumer pulls it. A line that is not a valid request fails INVALID_ARGUMENT:
 * `stdin line 3: request of upload: missing field item (avrpc.stream.Item)`.
 */
export async function* ndjsonRequests(
  msg: JsonMessage,
  source: AsyncIterable<Buffer | string>,
  name = 'stdin',
  maxLineChars = MAX_LINE_CHARS,
): AsyncGenerator<object, void, undefined> {
  for await (const { line, text } of ndjsonLines(source, name, maxLineChars)) {
    let request: object;
    try {
      request = requestFromJson(msg, text);
    } catch (err) {
      const e = RpcError.from(err, Code.INVALID_ARGUMENT);
      throw new RpcError(Code.INVALID_ARGUMENT, `${name} line ${line}: ${e.message}`);
    }
    yield request;
  }
}
