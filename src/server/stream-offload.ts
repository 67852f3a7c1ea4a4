import type { Protocol } from '../codec/protocol.js';
import type { CallContext } from './call-context.js';

/**
 * A stream call whose handler runs on a worker thread (`workers` option): the main thread moves bytes
 * only, never decoded values. Request elements are handed over as their DATA bodies, as the worker
 * takes them (credit goes back to the client as it does); responses come back Avro-encoded and go out
 * as DATA unchanged.
 */
export interface OffloadedStream {
  /** The client's protocol: the worker decodes with schema resolution from it. */
  readonly remote: Protocol;
  /** The message's index in the client's protocol. */
  readonly remoteIndex: number;
  /** A server stream's request record, in the client's schema; undefined for client and bidi streams. */
  readonly request: Buffer | undefined;
  /** Client and bidi streams: the request elements' bytes (client schema), as they arrive. */
  readonly requests: AsyncIterable<Buffer> | undefined;
}

/**
 * Where stream handlers run off the main thread (implemented by the offload pool). `runStream` gives,
 * for a server or bidi stream, an AsyncIterable of response elements' bytes (server schema), which
 * throws an `OffloadReply` of kind ERROR when the handler fails; for a client stream, a promise of the
 * `OffloadReply` (RESPONSE or ERROR). Headers and trailers the worker's handler set are copied into
 * `ctx.responseHeader` (before the first element) and `ctx.responseTrailer` (before the end).
 */
export interface StreamOffload {
  /** True when the stream handler of local message `index` runs in a worker. */
  takesStream(index: number): boolean;
  runStream(index: number, stream: OffloadedStream, ctx: CallContext): AsyncIterable<Buffer> | Promise<unknown>;
}
