import type { Metadata } from '../../framing/bodies.js';
import type { ProtocolOptions } from '../../codec/protocol.js';
import type { PeerInfo } from '../call-context.js';

/**
 * What crosses the thread boundary, both ways. The request payload goes as a transferred ArrayBuffer
 * and the reply comes back as one transferred byte array: no Avro value is ever structured-cloned.
 */

/** Given to every worker once, as piscina `workerData`. */
export interface OffloadWorkerData {
  /** The server protocol's JSON text and parse options: the worker builds the same types from them. */
  protocolText: string;
  protocolOptions: ProtocolOptions;
  /** The user's handler module. */
  moduleUrl: string;
  /** One Int32 per task slot: 0 while the call runs, a `Code` once it is cancelled or timed out. */
  flags: SharedArrayBuffer;
  /** Peer protocols (and resolvers) each worker remembers. */
  resolverCacheSize: number;
  propagateDeadlines: boolean;
}

/** One offloaded call. */
export interface OffloadTask {
  /** Index into the shared cancellation flags, owned by this call until its reply arrives. */
  slot: number;
  /** Local message index. */
  index: number;
  /** The peer's message index and protocol fingerprint, when the peer's protocol differs from ours (resolution). */
  remoteIndex: number;
  remoteId: string | undefined;
  /**
   * The peer's protocol text: sent only after a worker answered that it does not know `remoteId`
   * (see {@link OffloadResult}), so a call carries just the fingerprint once each worker has seen it.
   */
  remoteText: string | undefined;
  /** Holds the request payload (Avro bytes of the request record, in the peer's schema). Transferred. */
  payload: ArrayBuffer;
  /** Where the payload starts in `payload` (it runs to the end). */
  payloadOffset: number;
  metadata: Metadata;
  /** Epoch ms or Infinity. */
  deadline: number;
  peer: PeerInfo;
  /** The client takes response headers and trailers (it negotiated streams, SPEC.md section 13). */
  responseMetadata: boolean;
}

/**
 * What a worker's task resolves with:
 * - a `Uint8Array`: the reply (head, then frame body), transferred;
 * - an `ArrayBuffer`: the worker does not know the peer protocol `remoteId` (first call of that
 *   fingerprint on this worker, a worker started after a crash, or one it evicted): this is the
 *   request's payload handed back, to be sent again with `remoteText`;
 * - a {@link FailedReply}: a reply with what its bytes do not carry: an INTERNAL error's cause, for the
 *   server's log, or the response headers the handler set (cloned, not transferred: rarer paths).
 */
export type OffloadResult = Uint8Array | ArrayBuffer | FailedReply;

/** A reply with an INTERNAL error's cause (for the server's log only, never sent) or the handler's response headers. */
export interface FailedReply {
  reply: Uint8Array;
  cause?: { name: string; message: string; stack: string | undefined };
  /** Response headers the handler set (sent as HEADERS before the reply; only to a client that negotiated streams). */
  headers?: Metadata;
}

/** Reply kinds (first byte of the reply). */
export const ReplyKind = { RESPONSE: 0, ERROR: 1 } as const;

/** Bytes before the frame body in a reply: kind, code, frame flags. */
export const REPLY_HEAD_BYTES = 3;

/** A worker's reply as the main thread reads it: which frame to send, and its body. */
export class OffloadReply {
  constructor(
    /** One of {@link ReplyKind}. */
    readonly kind: number,
    /** `Code.OK` for a response, the error's code otherwise. */
    readonly code: number,
    /** Flags of the ERROR frame (METADATA, DECLARED); 0 for a response. */
    readonly flags: number,
    /** The frame body: the encoded response, or the whole ERROR body. */
    readonly body: Buffer,
    /** Why an INTERNAL error happened, with the worker's stack: for the server's log. */
    readonly cause?: Error,
    /** Response headers the worker's handler set, to send before the reply. */
    readonly headers?: Metadata,
  ) {}

  /** Reads a reply without copying (the body is a view). */
  static read(result: Uint8Array | FailedReply): OffloadReply {
    const bytes = result instanceof Uint8Array ? result : result?.reply;
    if (!(bytes instanceof Uint8Array) || bytes.length < REPLY_HEAD_BYTES) throw new Error('offload worker sent a malformed reply');
    const body = Buffer.from(bytes.buffer, bytes.byteOffset + REPLY_HEAD_BYTES, bytes.length - REPLY_HEAD_BYTES);
    let cause: Error | undefined;
    const c = bytes === result ? undefined : (result as FailedReply).cause;
    if (c !== undefined) {
      cause = new Error(c.message);
      cause.name = c.name;
      if (c.stack !== undefined) cause.stack = c.stack;
    }
    const headers = bytes === result ? undefined : (result as FailedReply).headers;
    return new OffloadReply(bytes[0]!, bytes[1]!, bytes[2]!, body, cause, headers);
  }
}

/** Frame body writer that copies bytes already encoded (by a worker) into the frame encoder's arena. */
export function writeBytes(bytes: Buffer, buf: Buffer, pos: number): number {
  const end = pos + bytes.length;
  if (end > buf.length) return buf.length - end;
  bytes.copy(buf, pos);
  return end;
}
