/**
 * How a worker turns what a handler did into bytes for the main thread: a response (a unary call's,
 * a client stream's), one stream element, or an ERROR body. Used only in worker threads. Replies are
 * returned as bytes in buffers of their own (the caller transfers them), or a {@link FailedReply}.
 */
import type avro from 'avsc';
import { describeInvalid } from '../../codec/invalid-value.js';
import type { MessageDef } from '../../codec/protocol.js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import { errorFlags, writeError, writeTrailed, type Metadata } from '../../framing/bodies.js';
import { Flag } from '../../framing/frame.js';
import type { CallContext } from '../call-context.js';
import { withTrailers } from '../call-reply.js';
import { errorDraftFor } from '../error-reply.js';
import { REPLY_HEAD_BYTES, ReplyKind, type FailedReply } from './offload-task.js';

/** Encoding scratch space, kept between tasks up to this size so steady traffic allocates once. */
const MAX_SCRATCH_BYTES = 8 * 1024 * 1024;
let scratch = Buffer.allocUnsafeSlow(64 * 1024);

/**
 * Encodes with `write` from `pos` on; returns the buffer (scratch, or a larger one of its own) and
 * the end. A short buffer is retried larger (avsc and the body writers return a negative position).
 */
function encode(write: (buf: Buffer, pos: number) => number, pos: number): { buf: Buffer; end: number } {
  let buf = scratch;
  for (;;) {
    const end = write(buf, pos);
    if (end >= 0) {
      if (buf !== scratch && buf.length <= MAX_SCRATCH_BYTES) scratch = buf;
      return { buf, end };
    }
    buf = Buffer.allocUnsafeSlow(Math.max(buf.length * 2, buf.length - end));
  }
}

/**
 * A response reply: the value after the reply head, with the trailers before it (frame flag METADATA)
 * when there are any. An invalid value becomes an INTERNAL error reply naming what is wrong.
 */
export function responseReply(msg: MessageDef, value: unknown, trailers?: Metadata): Uint8Array | FailedReply {
  if (value === undefined && msg.response.typeName === 'null') value = null; // a `void` handler returning nothing
  let out: { buf: Buffer; end: number };
  try {
    out =
      trailers === undefined
        ? encode((b, p) => msg.response.encode(value, b, p), REPLY_HEAD_BYTES)
        : encode((b, p) => writeTrailed({ trailers, type: msg.response, value }, b, p), REPLY_HEAD_BYTES);
  } catch (err) {
    return errorReply(
      msg,
      new RpcError(
        Code.INTERNAL,
        `handler of ${msg.name} returned an invalid response: ${describeInvalid(msg.response, value, 'response') ?? (err as Error).message}`,
      ),
    );
  }
  const flags = trailers === undefined ? 0 : Flag.METADATA;
  // A large response encoded in its own buffer is the reply itself (no copy).
  if (out.buf !== scratch) return withHead(out.buf.subarray(0, out.end), ReplyKind.RESPONSE, Code.OK, flags);
  return replyBytes(ReplyKind.RESPONSE, Code.OK, flags, scratch.subarray(REPLY_HEAD_BYTES, out.end));
}

/** One stream element's bytes, in a buffer of its own (transferable). Throws when `value` does not encode. */
export function elementBytes(type: avro.Type, value: unknown): Uint8Array {
  const { buf, end } = encode((b, p) => type.encode(value, b, p), 0);
  // Too large to keep as scratch: the buffer is the element's own.
  if (buf !== scratch) return buf.subarray(0, end);
  const out = Buffer.allocUnsafeSlow(end);
  buf.copy(out, 0, 0, end);
  return out;
}

/** Writes the reply head into the first REPLY_HEAD_BYTES of `buf`. */
function withHead(buf: Buffer, kind: number, code: number, frameFlags: number): Buffer {
  buf[0] = kind;
  buf[1] = code;
  buf[2] = frameFlags;
  return buf;
}

/**
 * Maps what the handler threw exactly as inline calls do (error-reply.ts), and encodes the ERROR body,
 * with the call's trailers in its metadata when `ctx` has any (as inline calls do). An INTERNAL error
 * also carries its cause (message and stack) back for the server's log; the client gets the message only.
 */
export function errorReply(msg: MessageDef, thrown: unknown, ctx?: CallContext): Uint8Array | FailedReply {
  const draft = withTrailers(errorDraftFor(msg, thrown), ctx);
  let out: { buf: Buffer; end: number };
  try {
    out = encode((b, p) => writeError(draft, b, p), 0);
  } catch (err) {
    return errorReply(msg, new RpcError(Code.INTERNAL, `cannot encode error: ${(err as Error).message}`));
  }
  const bytes = replyBytes(ReplyKind.ERROR, draft.code, errorFlags(draft), out.buf.subarray(0, out.end));
  if (draft.code !== Code.INTERNAL) return bytes;
  // With its cause: an error reply is small, and this path is rare, so it may be cloned.
  return { reply: bytes, cause: causeOf(thrown) } satisfies FailedReply;
}

/** What the server logs about a thrown value: the original error's, when an RpcError wraps one. */
function causeOf(thrown: unknown): FailedReply['cause'] {
  const e = thrown instanceof RpcError && thrown.cause instanceof Error ? thrown.cause : thrown;
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack };
  return { name: typeof e, message: String(e), stack: undefined };
}

function replyBytes(kind: number, code: number, frameFlags: number, body: Buffer): Buffer {
  // allocUnsafeSlow: its own ArrayBuffer (transferable), not zero-filled since every byte is written.
  const out = withHead(Buffer.allocUnsafeSlow(REPLY_HEAD_BYTES + body.length), kind, code, frameFlags);
  body.copy(out, REPLY_HEAD_BYTES);
  return out;
}
