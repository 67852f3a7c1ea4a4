import { parseProtocol, type Protocol } from '../codec/protocol.js';
import { DEFAULT_RESOLVER_CACHE_BYTES, ResolverCache } from '../codec/resolver-cache.js';
import { ClientConnection } from './client-connection.js';
import type { HandshakeMemory } from './client-handshake.js';
import { EndpointHealth } from './endpoint-health.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { resolveClientOptions, type ClientOptions, type Endpoint } from './client-options.js';
import { invalid, knownOptions } from '../util/validate.js';

/** Options of {@link describeServer}: connection settings of a client, plus a time limit. */
export interface DescribeOptions extends Pick<ClientOptions, 'tls' | 'credentials' | 'maxFrameBytes' | 'maxProtocolBytes'> {
  /** Time allowed for connect and handshake, in ms. Default 5000. */
  timeoutMs?: number;
}

const KNOWN_DESCRIBE_OPTIONS = {
  tls: true,
  credentials: true,
  maxFrameBytes: true,
  maxProtocolBytes: true,
  timeoutMs: true,
} as const satisfies Record<keyof DescribeOptions, true>;

/**
 * An empty protocol: its fingerprint matches no server's, so the server sends its own protocol text
 * in the handshake, which is what we want to learn.
 */
const probe = parseProtocol('{"protocol": "Describe", "namespace": "avrpc.probe", "messages": {}}');

/**
 * Connects to a server, completes a handshake, and returns the server's protocol as the server sent
 * it (what `avrpc describe` prints). Rejects with UNAVAILABLE / UNAUTHENTICATED like any connection.
 */
export async function describeServer(endpoint: string | Endpoint, options: DescribeOptions = {}): Promise<Protocol> {
  if (options === null || typeof options !== 'object') invalid('describeServer: options', 'must be an object');
  knownOptions('describeServer: options', options, KNOWN_DESCRIBE_OPTIONS);
  const o = resolveClientOptions({
    ...options,
    protocol: probe,
    endpoints: [endpoint],
    connectTimeoutMs: options.timeoutMs ?? 5000,
    keepaliveMs: 0,
  });
  const { host, port } = o.endpoints[0]!;
  // Room for the one protocol we came for, however large `maxProtocolBytes` allows it.
  const cache = new ResolverCache(probe, 4, Math.max(DEFAULT_RESOLVER_CACHE_BYTES, o.maxProtocolBytes + 1));
  const memory: HandshakeMemory = { serverFingerprint: null, sendProtocol: false };
  const target = { host, port, health: new EndpointHealth(`${host}:${port}`), memory };
  let conn: ClientConnection | undefined;
  await new Promise<void>((resolve, reject) => {
    conn = new ClientConnection(target, probe, cache, o, (c, _prev, next) => {
      if (next === 'ready') resolve();
      else if (next === 'closed') reject(c.closeError ?? new RpcError(Code.UNAVAILABLE, 'connection closed'));
    });
  });
  const fingerprint = memory.serverFingerprint;
  const protocol = fingerprint === null ? undefined : cache.protocol(fingerprint.toString('hex'));
  await conn!.close();
  if (protocol === undefined) throw new RpcError(Code.INTERNAL, 'server did not send its protocol');
  return protocol;
}
