import { describeInvalid } from '../codec/invalid-value.js';
import type { MessageDef } from '../codec/protocol.js';
import type { FramedSocket } from '../connection/framed-socket.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { BodyWriter } from '../framing/frame-encoder.js';
import { Flag, FrameType } from '../framing/frame.js';
import { writeMetadata, writeTrailed, type Metadata, type TrailedValue } from '../framing/bodies.js';
import type { Logger } from '../observability/observer.js';
import type { CallContext, PeerInfo } from './call-context.js';
import { errorDraftFor, sendError } from './error-reply.js';
import type { ErrorDraft } from '../framing/bodies.js';
import { OffloadReply, ReplyKind, writeBytes } from './offload/offload-task.js';

/** What a session writes answers with: a `FramedSocket` in production, a fake in unit tests. */
export type ReplyWriter = Pick<FramedSocket, 'frame' | 'message' | 'messageBytes'>;

/**
 * Sends a two-way call's answer: the handler's value as a RESPONSE (an ERROR INTERNAL if it does not
 * encode), what it threw (`failed`) as an ERROR, or a worker's reply as it is. Returns the code the
 * call ended with. Handler failures of code INTERNAL go to `logger` with their stack; the client gets
 * their message only. With `responseMetadata` (the client negotiated streams, SPEC.md section 13)
 * the handler's response headers go first (HEADERS) and its trailers with the RESPONSE; an ERROR
 * carries the trailers in its metadata whatever was negotiated.
 */
export function sendReply(
  writer: ReplyWriter,
  id: number,
  msg: MessageDef,
  outcome: unknown,
  failed: boolean,
  write: BodyWriter<unknown>,
  logger: Logger,
  peer: PeerInfo,
  ctx?: CallContext,
  responseMetadata = false,
): Code {
  if (outcome instanceof OffloadReply) {
    const code = outcome.code as Code;
    // The worker's error, stack included, goes to our log only; the client got its message.
    if (code === Code.INTERNAL) logger.error({ err: outcome.cause, message: msg.name, peer }, 'handler failed in a worker');
    // A worker's RESPONSE bytes go out like any response: fragmented or compressed when large.
    if (outcome.kind === ReplyKind.RESPONSE) writer.messageBytes(FrameType.RESPONSE, outcome.flags, id, outcome.body);
    else writer.frame(FrameType.ERROR, outcome.flags, id, outcome.body, writeBytes);
    return code;
  }
  if (responseMetadata && ctx !== undefined) sendHeaders(writer, id, ctx);
  if (failed) {
    const draft = withTrailers(errorDraftFor(msg, outcome), ctx);
    if (draft.code === Code.INTERNAL) logger.error({ err: outcome, message: msg.name, peer }, 'handler failed');
    sendError(writer, id, draft);
    return draft.code as Code;
  }
  try {
    const trailers = responseMetadata ? ctx?.takeTrailer() : undefined;
    if (trailers === undefined) writer.message(FrameType.RESPONSE, 0, id, outcome, write);
    else writer.message(FrameType.RESPONSE, Flag.METADATA, id, trailed(msg, trailers, outcome), writeTrailed);
    return Code.OK;
  } catch (err) {
    const invalid = new RpcError(
      Code.INTERNAL,
      `handler of ${msg.name} returned an invalid response: ${describeInvalid(msg.response, outcome, 'response') ?? (err as Error).message}`,
      { cause: err },
    );
    logger.error({ err: invalid, message: msg.name, peer }, 'handler returned an invalid response');
    sendError(writer, id, withTrailers(errorDraftFor(msg, invalid), ctx));
    return Code.INTERNAL;
  }
}

/**
 * Ends a server or bidi stream (SPEC.md section 13): END with the trailers, or the ERROR for what its
 * producer threw (a worker's, encoded already). Returns the code the call ended with.
 */
export function sendStreamEnd(
  writer: Pick<ReplyWriter, 'frame'>,
  id: number,
  msg: MessageDef,
  ctx: CallContext,
  outcome: unknown,
  failed: boolean,
  logger: Logger,
  peer: PeerInfo,
): Code {
  sendHeaders(writer, id, ctx);
  // A worker's stream failed: its ERROR is encoded already (its stack went to our log there).
  if (failed && outcome instanceof OffloadReply) {
    writer.frame(FrameType.ERROR, outcome.flags, id, outcome.body, writeBytes);
    return outcome.code as Code;
  }
  if (failed) {
    const draft = withTrailers(errorDraftFor(msg, outcome), ctx);
    if (draft.code === Code.INTERNAL) logger.error({ err: outcome, message: msg.name, peer }, 'handler failed');
    sendError(writer, id, draft);
    return draft.code as Code;
  }
  const trailers = ctx.takeTrailer();
  if (trailers === undefined) writer.frame(FrameType.END, 0, id, undefined, writeEmpty);
  else writer.frame(FrameType.END, Flag.METADATA, id, trailers, writeMetadata);
  return Code.OK;
}

/** An empty body (END without trailers). */
function writeEmpty(_value: undefined, _buf: Buffer, pos: number): number {
  return pos;
}

/** Sends the call's response headers, if it has any not yet sent (HEADERS, SPEC.md section 13). */
export function sendHeaders(writer: Pick<ReplyWriter, 'frame'>, id: number, ctx: CallContext): void {
  const headers = ctx.takeHeader();
  if (headers !== undefined) writer.frame(FrameType.HEADERS, 0, id, headers, writeMetadata);
}

/** An ERROR draft with the call's trailers in its metadata (the error's own entries win). */
export function withTrailers(draft: ErrorDraft, ctx: CallContext | undefined): ErrorDraft {
  const trailers = ctx?.takeTrailer();
  if (trailers === undefined) return draft;
  return { ...draft, metadata: draft.metadata === undefined ? trailers : ({ ...trailers, ...draft.metadata } as Metadata) };
}

/** A response value with its trailers; `undefined` from a handler of a `null` message is its null. */
function trailed(msg: MessageDef, trailers: Metadata, value: unknown): TrailedValue {
  return { trailers, type: msg.response, value: value === undefined && msg.response.typeName === 'null' ? null : value };
}
