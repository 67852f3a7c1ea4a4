import { Code, codeName } from '../errors/code.js';
import type { RpcError } from '../errors/rpc-error.js';
import type { Logger } from './observer.js';

/** A pino level avrpc logs at. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** How a closed connection is described to the logger. */
export interface CloseLog {
  level: LogLevel;
  msg: string;
}

/**
 * Which level a closed connection is logged at (never per call: successful calls log nothing).
 * - `debug`: an orderly close (ours, a graceful GOAWAY, a server's peer hanging up);
 * - `info`: a client losing a working connection (it reconnects by itself);
 * - `warn`: a client failing to connect, or a protocol error, limit or handshake timeout on either side
 *   (a misbehaving or incompatible peer); a server refusing a client's credentials;
 * - `error`: a client whose credentials the server refuses (retrying cannot fix it).
 */
export function closeLog(side: 'server' | 'client', error: RpcError, wasReady: boolean, draining: boolean): CloseLog {
  const code = error.code;
  if (code === Code.UNAVAILABLE || code === Code.CANCELLED) {
    if (side === 'server' || draining) return { level: 'debug', msg: 'connection closed' };
    return wasReady ? { level: 'info', msg: 'connection lost' } : { level: 'warn', msg: 'connect failed' };
  }
  if (code === Code.UNAUTHENTICATED || code === Code.PERMISSION_DENIED) {
    return side === 'client'
      ? { level: 'error', msg: 'server refused our credentials' }
      : { level: 'warn', msg: 'client refused at handshake' };
  }
  return { level: 'warn', msg: `connection closed: ${codeName(code)}` };
}

/**
 * Logs a closed connection by {@link closeLog}; `where` names the peer (server) or endpoint (client).
 * An orderly close (`debug`) carries only its `reason`, as text; any other its code and error (`err`).
 */
export function logClose(
  logger: Logger,
  side: 'server' | 'client',
  error: RpcError,
  wasReady: boolean,
  draining: boolean,
  where: object,
): void {
  const { level, msg } = closeLog(side, error, wasReady, draining);
  // An orderly close is routine: its reason in words, not an error with a stack.
  if (level === 'debug') logger.debug({ ...where, reason: error.message }, msg);
  else logger[level]({ ...where, code: codeName(error.code), err: error }, msg);
}
