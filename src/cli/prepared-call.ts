/**
 * What `call` and `bench` share: resolve the target, learn its protocol, check the message and the
 * JSON request, open a client, and close the client and the target whatever happens.
 */
import { createClient } from '../client/client.js';
import type { CallOptions, ClientOptions } from '../client/client-options.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Client } from '../client/client.js';
import { jsonMessages, requestFromJson, type JsonMessage } from '../codec/avro-json.js';
import type { BytesMode } from '../codec/json-input.js';
import { parseMetadata, protocolFor, resolveTarget, type ConnectFlags } from './options.js';
import { STDIN, readRequestData, type RequestData } from './request-data.js';

/** The flags every calling command has. */
export interface CallFlags extends ConnectFlags {
  /** Deadline of each call, and of learning the protocol, in milliseconds. */
  timeout: number;
  /** `k=v` pairs. */
  metadata: string[];
  /** How bytes and fixed are written in JSON (`--bytes`). */
  bytes: BytesMode;
}

/**
 * A call ready to be made: the message, its decoded requests, a client and the per-call options.
 * `requests` is undefined only for a client or bidi stream given no data (its records come from stdin).
 */
export interface PreparedCall {
  msg: JsonMessage;
  requests: object[] | undefined;
  client: Client;
  options: CallOptions;
}

/**
 * Prepares `message` with `data` against `targetText`, runs `use`, then closes the client and the
 * target. `clientOptions` adds to the CLI's defaults (one attempt, no keepalive). No `data` is the
 * empty request `{}`, except for a client or bidi stream, whose records come from elsewhere (stdin).
 * The data's JSON syntax was checked already (request-data.ts), before anything connects; `STDIN`
 * (`-d @-`) is read once the message's kind is known.
 */
export async function withPreparedCall(
  targetText: string,
  message: string,
  given: RequestData | typeof STDIN | undefined,
  flags: CallFlags,
  clientOptions: Partial<ClientOptions>,
  use: (call: PreparedCall) => Promise<void>,
): Promise<void> {
  const metadata = parseMetadata(flags.metadata);
  const target = resolveTarget(targetText, flags);
  try {
    const protocol = await protocolFor(target, flags, flags.timeout);
    const msg = jsonMessages(protocol, flags.bytes).get(message);
    if (msg === undefined) {
      const known = protocol.messages.map((m) => m.name).join(', ');
      throw new RpcError(Code.UNIMPLEMENTED, `protocol ${protocol.name} has no message ${message} (it has: ${known})`);
    }
    const streamsRequests = msg.stream === 'client' || msg.stream === 'bidi';
    const data = given !== STDIN ? given : streamsRequests ? undefined : await readRequestData('@-');
    const requests =
      data === undefined
        ? streamsRequests
          ? undefined
          : [requestFromJson(msg, '{}')]
        : data.texts.map((text, i) => {
            try {
              return requestFromJson(msg, text);
            } catch (err) {
              // A file of several requests names the line at fault.
              if (data.texts.length === 1) throw err;
              throw new RpcError(Code.INVALID_ARGUMENT, `${data.where[i]}: ${RpcError.from(err).message}`);
            }
          });
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
      await use({ msg, requests, client, options });
    } finally {
      await client.close();
    }
  } finally {
    await target.close();
  }
}
