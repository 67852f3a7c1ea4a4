/**
 * `avrpc call <target> <message> '<json>'`: one call, Avro JSON in, Avro JSON out (grpcurl's job).
 */
import { Command } from 'commander';
import { RpcError } from '../errors/rpc-error.js';
import { declaredErrorJson, toAvroJson, type JsonMessage } from './avro-json.js';
import { addConnectFlags, collect, duration, reportFailure } from './options.js';
import { withPreparedCall, type CallFlags } from './prepared-call.js';

interface CallCommandFlags extends CallFlags {
  compact?: boolean;
}

/** The `call` command. */
export function callCommand(): Command {
  const cmd = new Command('call')
    .description('call <message> on a server with a JSON request (Avro JSON encoding); prints the response as JSON')
    .argument('<target>', 'host:port, or a service name with --registry')
    .argument('<message>', 'message name')
    .argument('[json]', "the request's parameters as one JSON object, e.g. '{\"item\": {...}}'", '{}')
    .option('--timeout <duration>', 'deadline of the call (and of learning the protocol): 500ms, 10s, 2m or plain ms', duration, 10_000)
    .option('--metadata <k=v>', 'request metadata (repeatable)', collect, [])
    .option('--compact', 'print the response on one line');
  addConnectFlags(cmd).addHelpText(
    'after',
    `
Longs beyond 2^53 are read and printed exactly; bytes are JSON strings of code points 0-255;
unions other than null are wrapped: {"string": "x"}.
On failure prints CODE_NAME: message on stderr (a declared error's value as JSON on stdout)
and exits with status 64 + the code's number (e.g. 78 for UNAVAILABLE).`,
  );
  return cmd.action(async (target: string, message: string, json: string, flags: CallCommandFlags) => {
    await runCall(target, message, json, flags).catch(reportFailure);
  });
}

async function runCall(targetText: string, message: string, json: string, flags: CallCommandFlags): Promise<void> {
  await withPreparedCall(targetText, message, json, flags, {}, async ({ msg, request, client, options }) => {
    const response = await client.call(message, request, options).catch((err: unknown) => {
      printDeclared(msg, err);
      throw err;
    });
    if (!msg.oneWay) process.stdout.write(`${toAvroJson(msg.response, response, flags.compact ? 0 : 2)}\n`);
  });
}

/** A declared error's value goes to stdout as Avro JSON: it is the call's result, only not a success. */
function printDeclared(msg: JsonMessage, err: unknown): void {
  if (!(err instanceof RpcError) || err.details === undefined) return;
  const text = declaredErrorJson(msg, err.details, 2);
  if (text !== undefined) process.stdout.write(`${text}\n`);
}
