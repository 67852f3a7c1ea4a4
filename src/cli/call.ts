/**
 * `avrpc call <target> <message> '<json>'`: one call, Avro JSON in, Avro JSON out (grpcurl's job).
 */
import { Command } from 'commander';
import { createClient } from '../client/client.js';
import type { CallOptions } from '../client/client-options.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { checkJsonSyntax, declaredErrorJson, jsonMessages, requestFromJson, toAvroJson, type JsonMessage } from './avro-json.js';
import { addConnectFlags, collect, parseMetadata, positiveInt, protocolFor, reportFailure, resolveTarget, type ConnectFlags } from './options.js';

interface CallFlags extends ConnectFlags {
  timeout: number;
  metadata: string[];
  compact?: boolean;
}

/** The `call` command. */
export function callCommand(): Command {
  const cmd = new Command('call')
    .description("call <message> on a server with a JSON request (Avro JSON encoding); prints the response as JSON")
    .argument('<target>', 'host:port, or a service name with --registry')
    .argument('<message>', 'message name')
    .argument('[json]', "the request's parameters as one JSON object, e.g. '{\"item\": {...}}'", '{}')
    .option('--timeout <ms>', 'deadline of the call (and of learning the protocol)', positiveInt, 10_000)
    .option('--metadata <k=v>', 'request metadata (repeatable)', collect, [])
    .option('--compact', 'print the response on one line');
  addConnectFlags(cmd).addHelpText('after', `
Longs beyond 2^53 are read and printed exactly; bytes are JSON strings of code points 0-255;
unions other than null are wrapped: {"string": "x"}.
On failure prints CODE_NAME: message on stderr (a declared error's value as JSON on stdout)
and exits with status 64 + the code's number (e.g. 78 for UNAVAILABLE).`);
  return cmd.action(async (target: string, message: string, json: string, flags: CallFlags) => {
    await runCall(target, message, json, flags).catch(reportFailure);
  });
}

async function runCall(targetText: string, message: string, json: string, flags: CallFlags): Promise<void> {
  const metadata = parseMetadata(flags.metadata);
  checkJsonSyntax(json);
  const target = resolveTarget(targetText, flags);
  try {
    const protocol = await protocolFor(target, flags, flags.timeout);
    const msg = jsonMessages(protocol).get(message);
    if (msg === undefined) {
      const known = protocol.messages.map((m) => m.name).join(', ');
      throw new RpcError(Code.UNIMPLEMENTED, `protocol ${protocol.name} has no message ${message} (it has: ${known})`);
    }
    const request = requestFromJson(msg, json);
    const client = createClient({ protocol, ...target.client, maxAttempts: 1, waitForReadyMs: flags.timeout, keepaliveMs: 0 });
    try {
      const options: CallOptions = { timeoutMs: flags.timeout, ...(metadata === undefined ? {} : { metadata }) };
      const response = await client.call(message, request, options).catch((err: unknown) => {
        printDeclared(msg, err);
        throw err;
      });
      if (!msg.oneWay) process.stdout.write(`${toAvroJson(msg.response, response, flags.compact ? 0 : 2)}\n`);
    } finally {
      await client.close();
    }
  } finally {
    await target.close();
  }
}

/** A declared error's value goes to stdout as Avro JSON: it is the call's result, only not a success. */
function printDeclared(msg: JsonMessage, err: unknown): void {
  if (!(err instanceof RpcError) || err.details === undefined) return;
  const text = declaredErrorJson(msg, err.details, 2);
  if (text !== undefined) process.stdout.write(`${text}\n`);
}
