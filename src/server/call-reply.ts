import { describeInvalid } from '../codec/invalid-value.js';
import type { MessageDef } from '../codec/protocol.js';
import type { FramedSocket } from '../connection/framed-socket.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { BodyWriter } from '../framing/frame-encoder.js';
import { FrameType } from '../framing/frame.js';
import type { Logger } from '../observability/observer.js';
import type { PeerInfo } from './call-context.js';
import { errorDraftFor, sendError } from './error-reply.js';
import { OffloadReply, ReplyKind, writeBytes } from './offload/offload-task.js';

/** What a session writes answers with: a `FramedSocket` in production, a fake in unit tests. */
export type ReplyWriter = Pick<FramedSocket, 'frame' | 'message' | 'messageBytes'>;

/**
 * Sends a two-way call's answer: the handler's value as a RESPONSE (an ERROR INTERNAL if it does not
 * encode), what it threw (`failed`) as an ERROR, or a worker's reply as it is. Returns the code the
 * call ended with. Handler failures of code INTERNAL go to `logger` with their stack; the client gets
 * their message only.
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
  if (failed) {
    const draft = errorDraftFor(msg, outcome);
    if (draft.code === Code.INTERNAL) logger.error({ err: outcome, message: msg.name, peer }, 'handler failed');
    sendError(writer, id, draft);
    return draft.code as Code;
  }
  try {
    writer.message(FrameType.RESPONSE, 0, id, outcome, write);
    return Code.OK;
  } catch (err) {
    const invalid = new RpcError(
      Code.INTERNAL,
      `handler of ${msg.name} returned an invalid response: ${describeInvalid(msg.response, outcome, 'response') ?? (err as Error).message}`,
      { cause: err },
    );
    logger.error({ err: invalid, message: msg.name, peer }, 'handler returned an invalid response');
    sendError(writer, id, errorDraftFor(msg, invalid));
    return Code.INTERNAL;
  }
}
