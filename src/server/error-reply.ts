import type avro from 'avsc';
import type { MessageDef } from '../codec/protocol.js';
import type { FramedSocket } from '../connection/framed-socket.js';
import { matchDeclared } from '../connection/payload.js';
import { Code, errorCode } from '../errors/code.js';
import { RpcError, thrownMessage } from '../errors/rpc-error.js';
import { previewJson } from '../errors/value-preview.js';
import { errorFlags, writeError, type ErrorDraft } from '../framing/bodies.js';
import { FrameType } from '../framing/frame.js';

/**
 * Turns whatever a handler threw into an ERROR body: an `RpcError` keeps its code (and its `details`
 * go out as a declared error when they fit the message's error union, as the branch its `errorType`
 * names when it has one); a value of a declared error type goes out as a declared error with code
 * UNKNOWN; anything else is INTERNAL with its message only, never its stack.
 */
export function errorDraftFor(msg: MessageDef, thrown: unknown): ErrorDraft {
  if (thrown instanceof RpcError) {
    const match = thrown.details === undefined ? undefined : matchDeclared(msg.errors, thrown.details, thrown.errorType);
    return {
      code: errorCode(thrown.code),
      message: thrown.message,
      metadata: Object.keys(thrown.metadata).length > 0 ? thrown.metadata : undefined,
      declared: match === undefined ? undefined : { type: msg.errors, value: match.value },
    };
  }
  const match = matchDeclared(msg.errors, thrown);
  if (match !== undefined) {
    return {
      code: Code.UNKNOWN,
      message: declaredMessage(thrown, match.branch),
      metadata: undefined,
      declared: { type: msg.errors, value: match.value },
    };
  }
  const text = thrownMessage(thrown);
  return { code: Code.INTERNAL, message: text, metadata: undefined, declared: undefined };
}

/** Longest preview of a declared value in an error message. */
const PREVIEW_CHARS = 200;

/**
 * The message of a declared error value thrown as is: its `message` when that is a non-empty string
 * (a `string message` field, or an Error's), else `<simple name>: <the value as JSON>`, bounded.
 */
function declaredMessage(thrown: unknown, branch: avro.Type): string {
  let message: unknown;
  try {
    message = (thrown as { message?: unknown }).message;
  } catch {
    message = undefined;
  }
  if (typeof message === 'string' && message !== '') return message;
  const simple = (branch.name ?? branch.typeName).split('.').pop()!;
  return `${simple}: ${previewJson(thrown, PREVIEW_CHARS)}`;
}

/**
 * Appends an ERROR frame; falls back to a plain INTERNAL error if the draft cannot be encoded.
 * `flags` adds bits the draft does not determine: `Flag.REFUSED` for a request no handler ran for.
 */
export function sendError(framed: Pick<FramedSocket, 'frame'>, id: number, draft: ErrorDraft, flags = 0): void {
  try {
    framed.frame(FrameType.ERROR, errorFlags(draft) | flags, id, draft, writeError);
  } catch (err) {
    const fallback: ErrorDraft = {
      code: Code.INTERNAL,
      message: `cannot encode error: ${(err as Error).message}`,
      metadata: undefined,
      declared: undefined,
    };
    framed.frame(FrameType.ERROR, flags, id, fallback, writeError);
  }
}
