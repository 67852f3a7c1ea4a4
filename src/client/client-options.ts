import { connect, type Socket } from 'node:net';
import { Protocol } from '../codec/protocol.js';
import { intOption, invalid } from '../util/validate.js';

/** A server address. */
export interface Endpoint {
  host: string;
  port: number;
}

/** Options of `createClient`. Everything but `protocol` and `endpoints` is optional. */
export interface ClientOptions {
  /** The protocol this client speaks (from `loadProtocol`). */
  protocol: Protocol;
  /** Servers, as `'host:port'` strings or `{ host, port }`. At least one. */
  endpoints: ReadonlyArray<string | Endpoint>;
  /** Default deadline of every call, in ms; a call's own `timeoutMs` wins. Default: none. */
  timeoutMs?: number;
  /** Sockets kept open per endpoint; calls go to the one with the fewest in flight. Default 1. */
  connectionsPerEndpoint?: number;
  /** Time allowed for TCP connect plus handshake, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Largest frame body accepted, in bytes. Default 16 MiB. */
  maxFrameBytes?: number;
  /** Idle time before the client PINGs the server, in ms; 0 disables. Default 30000. */
  keepaliveMs?: number;
  /** Time to wait for any answer to a PING before failing the connection, in ms. Default 10000. */
  keepaliveTimeoutMs?: number;
  /** Server protocols (and their resolvers) remembered, by fingerprint. Default 64. */
  resolverCacheSize?: number;
}

/** Per-call options. */
export interface CallOptions {
  /** Deadline of this call, in ms from now. Default: the client's `timeoutMs`, else none. */
  timeoutMs?: number;
  /** Aborting it cancels the call: the server is told, the call rejects CANCELLED. */
  signal?: AbortSignal;
  /** String metadata sent with the request; the handler reads it as `ctx.metadata`. */
  metadata?: Readonly<Record<string, string>>;
}

/** {@link ClientOptions} with every default filled in. */
export interface ResolvedClientOptions {
  protocol: Protocol;
  endpoints: Endpoint[];
  timeoutMs: number | undefined;
  connectionsPerEndpoint: number;
  connectTimeoutMs: number;
  maxFrameBytes: number;
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  resolverCacheSize: number;
  dial: (host: string, port: number) => Socket;
}

const MiB = 1024 * 1024;

/** Parses `'host:port'` (IPv6 as `[::1]:port`). Throws INVALID_ARGUMENT naming `path`. */
export function parseEndpoint(path: string, value: string | Endpoint): Endpoint {
  if (typeof value === 'object' && value !== null) {
    if (typeof value.host !== 'string' || value.host === '') invalid(`${path}.host`, 'must be a non-empty string');
    return { host: value.host, port: intOption(`${path}.port`, value.port, 0, 1, 65535) };
  }
  const m = typeof value === 'string' ? /^\[?([^\]]+?)\]?:(\d+)$/.exec(value) : null;
  if (m === null) invalid(path, `must be 'host:port', got ${JSON.stringify(value)}`);
  return { host: m[1]!, port: intOption(path, Number(m[2]), 0, 1, 65535) };
}

/** Validates and fills client options once; throws INVALID_ARGUMENT naming the bad option. */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  const at = 'createClient: options';
  if (options === null || typeof options !== 'object') invalid(at, 'must be an object');
  if (!(options.protocol instanceof Protocol)) invalid(`${at}.protocol`, 'must be a Protocol from loadProtocol()');
  if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) invalid(`${at}.endpoints`, 'must be a non-empty array');
  return {
    protocol: options.protocol,
    endpoints: options.endpoints.map((e, i) => parseEndpoint(`${at}.endpoints[${i}]`, e)),
    timeoutMs: options.timeoutMs === undefined ? undefined : intOption(`${at}.timeoutMs`, options.timeoutMs, 0, 0),
    connectionsPerEndpoint: intOption(`${at}.connectionsPerEndpoint`, options.connectionsPerEndpoint, 1, 1, 1024),
    connectTimeoutMs: intOption(`${at}.connectTimeoutMs`, options.connectTimeoutMs, 10_000, 1),
    maxFrameBytes: intOption(`${at}.maxFrameBytes`, options.maxFrameBytes, 16 * MiB, 64, 0xffffffff),
    keepaliveMs: intOption(`${at}.keepaliveMs`, options.keepaliveMs, 30_000, 0),
    keepaliveTimeoutMs: intOption(`${at}.keepaliveTimeoutMs`, options.keepaliveTimeoutMs, 10_000, 1),
    resolverCacheSize: intOption(`${at}.resolverCacheSize`, options.resolverCacheSize, 64, 1),
    dial: (host, port) => connect({ host, port }),
  };
}
