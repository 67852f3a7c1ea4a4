import { Code } from './code.js';
import { RpcError } from './rpc-error.js';

/**
 * The one way a peer's violation of the wire protocol (SPEC.md) becomes an error: INTERNAL, its
 * message starting "protocol error: ", sent in the GOAWAY that ends the connection.
 */
export function protocolError(message: string, cause?: unknown): RpcError {
  return new RpcError(Code.INTERNAL, `protocol error: ${message}`, cause === undefined ? {} : { cause });
}

/** A frame of a type that is not allowed from this peer, or not in this phase of the connection (`when`). */
export function unexpectedFrame(type: number, when: string): RpcError {
  return protocolError(`unexpected frame type ${type} ${when}`);
}

/**
 * A handshake that failed on bytes the peer sent: an `RpcError` it threw keeps its code (a limit is
 * RESOURCE_EXHAUSTED), anything else (a malformed body, a wrong fingerprint) is a protocol error.
 */
export function handshakeError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  return protocolError(`in handshake: ${err instanceof Error ? err.message : String(err)}`, err);
}
