/**
 * What `call` and `bench` share: resolve the target, learn its protocol, check the message and the
 * JSON request, open a client, and close the client and the target whatever happens.
 */
import { createClient } from '../client/client.js';
import type { CallOptions, ClientOptions } from '../client/client-options.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Client } from '../client/client.js';
import { checkJsonSyntax, jsonMessages, requestFromJson, type JsonMessage } from './avro-json.js';
import { parseMetadata, protocolFor, resolveTarget, type ConnectFlags } from './options.js';

/** The flags every calling command has. */
export interface CallFlags extends ConnectFlags {
  /** Deadline of each call, and of learning the protocol, in milliseconds. */
  timeout: number;
  /** `k=v` pairs. */
  metadata: string[];
}

/**
 * A call ready to be made: the message, its decoded request, a client and the per-call options.
 * `request` is undefined only for a client or bidi stream given no JSON (its records come later).
 */
export interface PreparedCall {
  msg: JsonMessage;
  request: object | undefined;
  client: Client;
  options: CallOptions;
}

/**
 * Prepares `message` with `json` against `targetText`, runs `use`, then closes the client and the
 * target. `clientOptions` adds to the CLI's defaults (one attempt, no keepalive). No `json` is the
 * empty request `{}`, except for a client or bidi stream, whose records come from elsewhere (stdin).
 */
export async function withPreparedCall(
  targetText: string,
  message: string,
  json: string | undefined,
  flags: CallFlags,
  clientOptions: Partial<ClientOptions>,
  use: (call: PreparedCall) => Promise<void>,
): Promise<void> {
  const metadata = parseMetadata(flags.metadata);
  if (json !== undefined) checkJsonSyntax(json);
  const target = resolveTarget(targetText, flags);
  try {
    const protocol = await protocolFor(target, flags, flags.timeout);
    const msg = jsonMessages(protocol).get(message);
    if (msg === undefined) {
      const known = protocol.messages.map((m) => m.name).join(', ');
      throw new RpcError(Code.UNIMPLEMENTED, `protocol ${protocol.name} has no message ${message} (it has: ${known})`);
    }
    const streamsRequests = msg.stream === 'client' || msg.stream === 'bidi';
    const request = json === undefined && streamsRequests ? undefined : requestFromJson(msg, json ?? '{}');
    const client = createClient({
      protocol,
      ...target.client,
      maxAttempts: 1,
      waitForReadyMs: flags.timeout,
      keepaliveMs: 0,
      ...clientOptions,
    });
    try {
      const options: CallOptions = { timeoutMs: flags.timeout, ...(metadata === undefined ? {} : { metadata }) };
      await use({ msg, request, client, options });
    } finally {
      await client.close();
    }
  } finally {
    await target.close();
  }
}
