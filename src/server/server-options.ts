import type { Protocol } from '../codec/protocol.js';
import { Protocol as ProtocolClass } from '../codec/protocol.js';
import { intOption, invalid } from '../util/validate.js';
import type { CallContext } from './call-context.js';

/**
 * A message handler: gets the request record (parameters by name) and the call context; returns the
 * response (or a promise of it). Throwing an `RpcError` keeps its code; throwing a value of one of the
 * message's declared Avro errors sends it as a declared error; anything else becomes INTERNAL.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handler = (request: any, ctx: CallContext) => unknown;

/** Options of `createServer`. Everything but `protocol` and `handlers` is optional. */
export interface ServerOptions {
  /** The protocol served (from `loadProtocol`). */
  protocol: Protocol;
  /** Handlers by message name. A message without a handler answers UNIMPLEMENTED. */
  handlers: Record<string, Handler>;
  /** Largest frame body accepted, in bytes. Default 16 MiB. */
  maxFrameBytes?: number;
  /** Calls one connection may have running at once; beyond it RESOURCE_EXHAUSTED. Default 16384. */
  maxConcurrentCalls?: number;
  /** Time a new connection has to complete its handshake, in ms. Default 10000. */
  handshakeTimeoutMs?: number;
  /** Idle time before the server PINGs a client, in ms; 0 disables. Default 30000. */
  keepaliveMs?: number;
  /** Time to wait for any answer to a PING before dropping the connection, in ms. Default 10000. */
  keepaliveTimeoutMs?: number;
  /** Peer protocols (and their resolvers) remembered, by fingerprint. Default 64. */
  resolverCacheSize?: number;
}

/** {@link ServerOptions} with every default filled in. */
export interface ResolvedServerOptions {
  protocol: Protocol;
  /** Handlers indexed by local message index (undefined: UNIMPLEMENTED). */
  handlers: (Handler | undefined)[];
  maxFrameBytes: number;
  maxConcurrentCalls: number;
  handshakeTimeoutMs: number;
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  resolverCacheSize: number;
}

const MiB = 1024 * 1024;

/** Validates and fills server options once; throws INVALID_ARGUMENT naming the bad option. */
export function resolveServerOptions(options: ServerOptions): ResolvedServerOptions {
  const at = 'createServer: options';
  if (options === null || typeof options !== 'object') invalid(at, 'must be an object');
  if (!(options.protocol instanceof ProtocolClass)) invalid(`${at}.protocol`, 'must be a Protocol from loadProtocol()');
  const protocol = options.protocol;
  if (options.handlers === null || typeof options.handlers !== 'object') invalid(`${at}.handlers`, 'must be an object of functions');
  const handlers: (Handler | undefined)[] = protocol.messages.map(() => undefined);
  for (const [name, fn] of Object.entries(options.handlers)) {
    const msg = protocol.message(name);
    if (msg === undefined) invalid(`${at}.handlers.${name}`, `names no message of protocol ${protocol.name}`);
    if (typeof fn !== 'function') invalid(`${at}.handlers.${name}`, 'must be a function');
    handlers[msg.index] = fn;
  }
  return {
    protocol,
    handlers,
    maxFrameBytes: intOption(`${at}.maxFrameBytes`, options.maxFrameBytes, 16 * MiB, 64, 0xffffffff),
    maxConcurrentCalls: intOption(`${at}.maxConcurrentCalls`, options.maxConcurrentCalls, 16384, 1),
    handshakeTimeoutMs: intOption(`${at}.handshakeTimeoutMs`, options.handshakeTimeoutMs, 10_000, 1),
    keepaliveMs: intOption(`${at}.keepaliveMs`, options.keepaliveMs, 30_000, 0),
    keepaliveTimeoutMs: intOption(`${at}.keepaliveTimeoutMs`, options.keepaliveTimeoutMs, 10_000, 1),
    resolverCacheSize: intOption(`${at}.resolverCacheSize`, options.resolverCacheSize, 64, 1),
  };
}
