/**
 * `avrpc call` on a stream message: a server stream prints its elements as NDJSON as they arrive; a
 * client stream sends NDJSON records read from stdin (or the one record given) as they are read and
 * prints the response as `call` does; a bidi stream does both at once. An error ends the output
 * after the elements received, then fails as a call does (a declared error's value on stdout).
 */
import type { Writable } from 'node:stream';
import type { Client } from '../client/client.js';
import type { CallOptions } from '../client/client-options.js';
import type { ResponseStream } from '../client/client-stream.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { declaredErrorJson, toAvroJson, type JsonMessage } from '../codec/avro-json.js';
import { ndjsonRequests } from './ndjson-input.js';
import { NdjsonWriter, OutputClosed } from './ndjson-output.js';

/** The stream calls of a client that `avrpc call` uses. */
export type StreamingClient = Pick<Client, 'serverStream' | 'clientStream' | 'bidiStream'>;

/** One stream call to run and where its input and output are. */
export interface StreamCall {
  msg: JsonMessage;
  client: StreamingClient;
  options: CallOptions;
  /** The request (server stream, first of them), or the records given instead of stdin (client, bidi); else undefined. */
  requests: readonly object[] | undefined;
  /** Print a client stream's response and a declared error on one line (stream elements are always one per line). */
  compact: boolean;
  /** NDJSON request records (stdin). */
  input: AsyncIterable<Buffer | string>;
  /** Stops reading `input` (destroys stdin) once the call has ended, so that the process can exit. */
  closeInput: () => void;
  output: Writable;
}

/** Runs `call` by its message's kind; rejects with the RpcError the command reports. */
export async function runStreamCall(call: StreamCall): Promise<void> {
  const { msg } = call;
  if (msg.stream === 'server') {
    const request = call.requests?.[0];
    if (request === undefined) throw new RpcError(Code.INTERNAL, 'a server stream needs its request');
    return printElements(call, call.client.serverStream(msg.name, request, call.options));
  }
  const requests = new RequestInput(call);
  try {
    if (msg.stream === 'client') {
      const response = await call.client.clientStream(msg.name, requests.records, requests.options).catch((err: unknown) => {
        throw requests.failure() ?? printDeclared(call, err, call.compact ? 0 : 2);
      });
      call.output.write(`${toAvroJson(msg.response, response, call.compact ? 0 : 2, msg.bytes)}\n`);
    } else {
      await printElements(call, call.client.bidiStream(msg.name, requests.records, requests.options)).catch((err: unknown) => {
        throw requests.failure() ?? err;
      });
    }
  } finally {
    requests.close();
  }
}

/** Prints each element as one line as it arrives; on an error, the declared value (if any) as the last line. */
async function printElements(call: StreamCall, stream: ResponseStream<unknown>): Promise<void> {
  const writer = new NdjsonWriter(call.output, call.msg.response, call.msg.bytes);
  try {
    // Leaving the loop by a throw returns the iterator: the client cancels the stream on the server.
    for await (const element of stream) await writer.write(element);
  } catch (err) {
    if (err instanceof OutputClosed) return; // `| head`: the reader has what it wanted
    const declared =
      err instanceof RpcError && err.details !== undefined ? declaredErrorJson(call.msg, err.details, 0, err.errorType) : undefined;
    if (declared !== undefined) await writer.writeLine(declared).catch(() => undefined);
    throw err;
  } finally {
    writer.detach();
  }
}

/** Writes a declared error's value as `call` does; returns `err` to be thrown. */
function printDeclared(call: StreamCall, err: unknown, indent: number): unknown {
  if (err instanceof RpcError && err.details !== undefined) {
    const text = declaredErrorJson(call.msg, err.details, indent, err.errorType);
    if (text !== undefined) call.output.write(`${text}\n`);
  }
  return err;
}

/**
 * The records a client or bidi stream sends: the one given, or NDJSON pulled from the input as the
 * client takes them. A bad line aborts the call; its error (naming the line) is what the command
 * reports, whatever the client made of the abort.
 */
class RequestInput {
  readonly records: AsyncIterable<object> | Iterable<object>;
  readonly options: CallOptions;
  private readonly abort = new AbortController();
  private inputError: RpcError | undefined;
  private ended = false;

  constructor(private readonly call: StreamCall) {
    this.options = { ...call.options, signal: this.abort.signal };
    this.records = call.requests !== undefined ? call.requests : this.read();
  }

  /** The input's error, if reading it is what failed the call. */
  failure(): RpcError | undefined {
    return this.inputError;
  }

  /** The call is over: stop reading (later input errors, e.g. from destroying stdin, are not ours). */
  close(): void {
    this.ended = true;
    if (this.call.requests === undefined) this.call.closeInput();
  }

  private async *read(): AsyncGenerator<object, void, undefined> {
    try {
      yield* ndjsonRequests(this.call.msg, this.call.input);
    } catch (err) {
      if (this.ended) return;
      this.inputError = RpcError.from(err);
      this.abort.abort(this.inputError);
      throw this.inputError;
    }
  }
}
