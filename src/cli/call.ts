/**
 * `avrpc call <target> <message> '<json>'`: one call, Avro JSON in, Avro JSON out (grpcurl's job).
 * On a stream message: NDJSON out (server, bidi) and NDJSON requests in from stdin (client, bidi).
 */
import { Command } from 'commander';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { declaredErrorJson, toAvroJson, type JsonMessage } from '../codec/avro-json.js';
import { addBytesFlag, addConnectFlags, collect, duration, reportFailure, usageError } from './options.js';
import { withPreparedCall, type CallFlags } from './prepared-call.js';
import { STDIN, isStdinSpec, readRequestData } from './request-data.js';
import { runStreamCall } from './stream-call.js';

interface CallCommandFlags extends CallFlags {
  compact?: boolean;
  data?: string;
}

/** The `call` command. */
export function callCommand(): Command {
  const cmd = new Command('call')
    .description(
      'call <message> on a server with a JSON request (Avro JSON encoding); prints the response as JSON (streams: NDJSON, see below)',
    )
    .argument('<target>', 'host:port, or a service name with --registry')
    .argument('<message>', 'message name')
    .argument('[json]', "the request's parameters as one JSON object, e.g. '{\"item\": {...}}' (default {})")
    .option(
      '-d, --data <json|@file|@->',
      'the request as one JSON object, instead of the [json] argument; @file reads it from a file, @- from stdin',
    )
    .option(
      '--timeout <duration>',
      'deadline of the call (and of learning the protocol): 500ms, 10s, 2m or plain ms; a stream has none unless given',
      duration,
      10_000,
    )
    .option('--metadata <k=v>', 'request metadata (repeatable)', collect, [])
    .option('--compact', 'print the response and a declared error on one line (stream responses always are: one per line)');
  addBytesFlag(cmd);
  addConnectFlags(cmd).addHelpText(
    'after',
    `
Longs beyond 2^53 are read and printed exactly; bytes are JSON strings of code points 0-255
(--bytes base64: base64 strings, in and out); unions other than null are wrapped: {"string": "x"},
and a named branch may be given by its simple name where no other branch has it ({"Tag": {...}}).
-d @file reads the request from a file, -d @- from stdin (a file of several NDJSON lines is for
client streams, which send them all, and for bench, which cycles through them).
On failure prints CODE_NAME: message on stderr, and for a declared error "(declared error
<its schema's full name>)" after the message and its value as JSON on stdout, as
{"<full name>": {...}}; exits with status 64 + the code's number (e.g. 78 for UNAVAILABLE).

Stream messages (@stream in the protocol; avrpc describe shows them):
  server  the request as for a call; prints each response as it arrives, one JSON value per line
          (NDJSON), then exits 0. An error prints the responses so far, then fails as a call does
          (a declared error's value as the last line).
  client  reads the requests from stdin, one JSON object per line (NDJSON; blank lines skipped),
          sending each as it is read, until end of input; [json] or -d sends that one request
          instead. Prints the response as a call does. A bad line fails INVALID_ARGUMENT naming it.
  bidi    reads requests from stdin as a client stream does and prints the responses as NDJSON
          as they arrive.
  e.g.  avrpc call 127.0.0.1:7000 watch '{"from": 0, "count": 3, "failAfter": -1}'
        printf '%s\\n' '{"item": {...}}' '{"item": {...}}' | avrpc call 127.0.0.1:7000 upload`,
  );
  return cmd.action(async (target: string, message: string, json: string | undefined, flags: CallCommandFlags, self: Command) => {
    const timeoutGiven = self.getOptionValueSource('timeout') !== 'default';
    await runCall(target, message, json, flags, timeoutGiven).catch(reportFailure);
  });
}

async function runCall(
  targetText: string,
  message: string,
  jsonArg: string | undefined,
  flags: CallCommandFlags,
  timeoutGiven: boolean,
): Promise<void> {
  if (jsonArg !== undefined && flags.data !== undefined) throw usageError('the request is given twice ([json] and -d): use one');
  const spec = jsonArg ?? flags.data;
  // `@-` waits for the message's kind (prepared-call.ts): a client or bidi stream reads its records
  // from stdin as they come, anything else reads all of stdin as its request.
  const data = spec === undefined ? undefined : isStdinSpec(spec) ? STDIN : await readRequestData(spec);
  await withPreparedCall(targetText, message, data, flags, {}, async ({ msg, requests, client, options }) => {
    const takesOne = msg.stream === undefined || msg.stream === 'server';
    if (takesOne && requests!.length !== 1) {
      throw new RpcError(
        Code.INVALID_ARGUMENT,
        `${data === STDIN ? 'stdin' : data!.source} holds ${requests!.length} requests: call sends one (a client stream sends them all, bench cycles them)`,
      );
    }
    if (msg.stream !== undefined) {
      if (requests === undefined && process.stdin.isTTY) {
        process.stderr.write(`reading the requests of ${message} from stdin, one JSON object per line; end with Ctrl-D\n`);
      }
      return runStreamCall({
        msg,
        client,
        // The deadline covers the whole stream: a tail of a feed should not end at the default 10 s.
        options: timeoutGiven ? options : { ...options, timeoutMs: Infinity },
        requests,
        compact: flags.compact === true,
        input: process.stdin,
        closeInput: () => process.stdin.destroy(),
        output: process.stdout,
      });
    }
    const indent = flags.compact ? 0 : 2;
    const response = await client.call(message, requests![0]!, options).catch((err: unknown) => {
      printDeclared(msg, err, indent);
      throw err;
    });
    if (!msg.oneWay) process.stdout.write(`${toAvroJson(msg.response, response, indent, msg.bytes)}\n`);
  });
}

/** A declared error's value goes to stdout as Avro JSON: it is the call's result, only not a success. */
function printDeclared(msg: JsonMessage, err: unknown, indent: number): void {
  if (!(err instanceof RpcError) || err.details === undefined) return;
  const text = declaredErrorJson(msg, err.details, indent, err.errorType);
  if (text !== undefined) process.stdout.write(`${text}\n`);
}
