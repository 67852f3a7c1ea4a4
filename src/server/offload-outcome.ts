/**
 * What the call executor needs to run a non-avrpc transport's calls in the offload pool as an avrpc
 * session does: the request as bytes (a worker decodes them), and the worker's reply read back into a
 * {@link CallOutcome}. The pool itself (offload-pool.ts) is the one avrpc sessions use.
 */
import type { MessageDef } from '../codec/protocol.js';
import type { IncomingResponse } from '../codec/peer-codec.js';
import { decodeExact, readRemoteError } from '../connection/payload.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { readMetadata } from '../framing/bodies.js';
import { Flag } from '../framing/frame.js';
import type { CallContext } from './call-context.js';
import { OffloadReply, ReplyKind } from './offload/offload-task.js';

/**
 * How a call run by the executor ended. A worker's response is `encoded` (Avro bytes of the response
 * in the server's schema): a transport that sends bytes takes them as they are, and `value` decodes
 * them only when read.
 */
export type CallOutcome = { ok: true; value: unknown; encoded?: Buffer } | { ok: false; error: RpcError };

/**
 * A request whose Avro bytes (in the server's own schema) the transport has: gRPC's message as it
 * arrived. The executor decodes it, or hands the bytes to a worker, never both.
 */
export class EncodedRequest {
  constructor(readonly bytes: Buffer) {}
}

/** Errors of a reply from a worker of the same protocol: no resolution needed. */
const SAME_PROTOCOL: IncomingResponse = { response: undefined, errors: undefined, incompatible: undefined };

/** `request` decoded by `msg`'s request type (bytes must be exactly one value); throws INVALID_ARGUMENT. */
export function decodeRequest(msg: MessageDef, request: unknown): unknown {
  if (!(request instanceof EncodedRequest)) return request;
  try {
    return decodeExact(msg.request, request.bytes, 0, undefined);
  } catch (err) {
    throw new RpcError(Code.INVALID_ARGUMENT, `cannot decode request: ${(err as Error).message}`);
  }
}

/** `request` as bytes: its own, or a decoded value encoded (HTTP's). Throws INVALID_ARGUMENT. */
export function requestBytes(msg: MessageDef, request: unknown): Buffer {
  if (request instanceof EncodedRequest) return request.bytes;
  try {
    return msg.request.toBuffer(request);
  } catch (err) {
    throw new RpcError(Code.INVALID_ARGUMENT, `cannot encode request: ${(err as Error).message}`);
  }
}

/** A successful outcome holding `bytes`; `value` decodes them once, when asked. */
export function encodedOutcome(msg: MessageDef, bytes: Buffer): CallOutcome {
  let decoded: { v: unknown } | undefined;
  return {
    ok: true,
    encoded: bytes,
    get value(): unknown {
      decoded ??= { v: msg.response.fromBuffer(bytes) };
      return decoded.v;
    },
  };
}

/**
 * A worker's reply as an outcome: a RESPONSE's bytes (its trailers, when flagged, moved into
 * `ctx.responseTrailer`), or the RpcError its ERROR body carries (declared error decoded into
 * `details`, as a client would read it). An INTERNAL error's cause goes to the caller's log.
 */
export function replyOutcome(msg: MessageDef, reply: OffloadReply, ctx: CallContext): CallOutcome {
  if (reply.kind === ReplyKind.RESPONSE) {
    let body = reply.body;
    if ((reply.flags & Flag.METADATA) !== 0) {
      const t = readMetadata(body, 0, Infinity);
      if (t === undefined) return { ok: false, error: new RpcError(Code.INTERNAL, 'worker sent a malformed response') };
      Object.assign(ctx.responseTrailer, t.value);
      body = body.subarray(t.end);
    }
    return encodedOutcome(msg, body);
  }
  const e = readRemoteError(reply.flags, reply.body, msg, SAME_PROTOCOL);
  const error = new RpcError(e.code, e.message, {
    ...(reply.cause === undefined ? {} : { cause: reply.cause }),
    ...(Object.keys(e.metadata).length === 0 ? {} : { metadata: e.metadata }),
    ...(e.details === undefined ? {} : { details: e.details, ...(e.errorType === undefined ? {} : { errorType: e.errorType }) }),
  });
  return { ok: false, error };
}
