import type { IncomingRequest, PeerCodec } from '../codec/peer-codec.js';
import type { MessageDef } from '../codec/protocol.js';
import { Code } from '../errors/code.js';
import { protocolError } from '../errors/protocol-error.js';
import type { RpcError } from '../errors/rpc-error.js';
import type { RequestHead } from '../framing/bodies.js';

/**
 * Which requests a session takes: all of them ({@link OPEN}), or, once it drains, only those GOAWAY
 * admitted (partly received when it went out; SPEC.md section 6). `expired`: it drains because the
 * principal's `expiresAt` passed, so refusals say UNAUTHENTICATED rather than UNAVAILABLE.
 */
export type Gate =
  { readonly open: true } | { readonly open: false; readonly admitted: Set<number> | undefined; readonly expired: boolean };

/** The gate of a session taking calls. */
export const OPEN: Gate = { open: true };

/** The gate of a session whose principal expired: nothing more runs, not even requests GOAWAY admitted. */
export const EXPIRED: Gate = { open: false, admitted: undefined, expired: true };

/** The gate of a session draining (GOAWAY sent): only the `admitted` ids still run. */
export function draining(admitted: Set<number> | undefined): Gate {
  return { open: false, admitted, expired: false };
}

/** What admission reads of the calls a session runs. */
export interface RunningCalls {
  /** Calls holding a slot of `maxConcurrentCalls` (running, one-way, cancelled but still running). */
  readonly inFlight: number;
  /** Whether a two-way call with this id runs (its id is still the server's). */
  isRunning(id: number): boolean;
}

/** The limits a request is held to (server options). */
export interface RequestLimits {
  readonly maxConcurrentCalls: number;
  readonly maxMetadataBytes: number;
  readonly maxMessageBytes: number;
}

/** The offload pool, as admission sees it: which local messages it runs. */
export interface Offload {
  serves(index: number): boolean;
}

/** A request answered without running any handler: an ERROR flagged REFUSED, so the client may send it elsewhere. */
export class Refusal {
  constructor(
    readonly code: Code,
    readonly message: string,
  ) {}
}

/**
 * First look at a REQUEST, before its body is read: undefined when it may go on, a {@link Refusal},
 * or the protocol error (an RpcError) that ends the connection. Only refusals and errors allocate.
 * A closed gate consumes the id it admitted: GOAWAY admitted each id once.
 */
export function admitRequest(id: number, gate: Gate, calls: RunningCalls, limits: RequestLimits): Refusal | RpcError | undefined {
  // Id 0 is for connection-level frames: an ERROR for it would read as the connection failing.
  if (id === 0) return protocolError('REQUEST with id 0');
  // Before any refusal: an ERROR for a running id would read, to the client, as the answer of its running call.
  if (calls.isRunning(id)) return protocolError(`request id ${id} already in use`);
  if (!gate.open && gate.admitted?.delete(id) !== true) {
    return gate.expired
      ? new Refusal(Code.UNAUTHENTICATED, 'credentials expired')
      : new Refusal(Code.UNAVAILABLE, 'server is shutting down');
  }
  if (calls.inFlight >= limits.maxConcurrentCalls) {
    return new Refusal(Code.RESOURCE_EXHAUSTED, `too many concurrent calls (max ${limits.maxConcurrentCalls})`);
  }
  return undefined;
}

/**
 * Second look, once the request's head is read (`bodyBytes`: the whole body): the peer's message it
 * names, or a {@link Refusal} (metadata or message over its limit, an unknown index, a message this
 * server does not serve (no handler in `handlers` by local index, nor `offload`), or whose schemas
 * do not resolve).
 */
export function admitHead(
  head: RequestHead,
  bodyBytes: number,
  limits: RequestLimits,
  codec: Pick<PeerCodec, 'requests'>,
  handlers: readonly unknown[],
  offload: Offload | undefined,
): IncomingRequest | Refusal {
  if (head.metadataBytes > limits.maxMetadataBytes) return metadataRefusal(limits.maxMetadataBytes);
  const messageBytes = bodyBytes - head.offset;
  if (messageBytes > limits.maxMessageBytes) {
    return new Refusal(Code.RESOURCE_EXHAUSTED, `request of ${messageBytes} bytes exceeds maxMessageBytes (${limits.maxMessageBytes})`);
  }
  const incoming = codec.requests[head.index];
  if (incoming === undefined) return unknownIndex(head.index);
  const local = incoming.local;
  if (local === null) return new Refusal(Code.UNIMPLEMENTED, `unknown message ${incoming.name}`);
  // A message the server's protocol declares but nothing serves: say so, it is not a typo of the caller's.
  if (handlers[local.index] === undefined && offload?.serves(local.index) !== true) {
    return new Refusal(Code.UNIMPLEMENTED, `message ${incoming.name} has no handler on this server`);
  }
  if (incoming.incompatible !== undefined) {
    return new Refusal(Code.FAILED_PRECONDITION, `message ${incoming.name}: incompatible schemas: ${incoming.incompatible}`);
  }
  return incoming;
}

/** Metadata beyond `maxMetadataBytes` (read no further than the limit). */
export function metadataRefusal(maxMetadataBytes: number): Refusal {
  return new Refusal(Code.RESOURCE_EXHAUSTED, `request metadata exceeds maxMetadataBytes (${maxMetadataBytes})`);
}

/** A message index the peer's protocol does not have. */
export function unknownIndex(index: number): Refusal {
  return new Refusal(Code.UNIMPLEMENTED, `unknown message index ${index}`);
}

/**
 * Why a stream REQUEST is refused before its handler runs (SPEC.md section 13.3): streams not
 * negotiated (`peerStreamWindow` 0), a ONE_WAY flag, a client or bidi stream's REQUEST with a payload,
 * or `maxConcurrentStreams` streams already holding their slots. `undefined`: admitted.
 */
export function admitStream(
  msg: MessageDef,
  oneWay: boolean,
  payloadBytes: number,
  peerStreamWindow: number,
  streams: number,
  maxConcurrentStreams: number,
): Refusal | undefined {
  if (peerStreamWindow === 0)
    return new Refusal(Code.FAILED_PRECONDITION, `message ${msg.name} is a stream, and this connection did not negotiate streams`);
  if (oneWay) return new Refusal(Code.INVALID_ARGUMENT, `message ${msg.name} is a stream: its REQUEST cannot be one-way`);
  if (msg.stream !== 'server' && payloadBytes !== 0)
    return new Refusal(Code.INVALID_ARGUMENT, `REQUEST of ${msg.stream} stream ${msg.name} carries a payload (its requests come as DATA)`);
  if (streams >= maxConcurrentStreams)
    return new Refusal(Code.RESOURCE_EXHAUSTED, `too many concurrent streams (max ${maxConcurrentStreams})`);
  return undefined;
}
