import { checkFingerprint } from '../codec/fingerprint.js';
import type { Protocol } from '../codec/protocol.js';
import type { ResolverCache } from '../codec/resolver-cache.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import {
  HELLO_FLOOR_BYTES,
  helloType,
  readHandshake,
  welcomeType,
  writeHandshake,
  type Hello,
  type Welcome,
} from '../framing/handshake.js';

/** What a client remembers of an endpoint's handshake, across its connections. */
export interface HandshakeMemory {
  /** The server's fingerprint once known: sent as `knownServerFingerprint`. */
  serverFingerprint: Buffer | null;
  /** Set once a server asked for our protocol text: send it up front from then on. */
  sendProtocol: boolean;
}

/** Writes a HELLO body (SPEC.md section 3). */
export const writeHello = writeHandshake(helloType);

/**
 * The client's HELLO: our fingerprint, our protocol text when the server is known to need it (or asked
 * for it), the server fingerprint we expect (so a server we know can skip its own text), and `meta`.
 */
export function hello(protocol: Protocol, endpoint: HandshakeMemory, withProtocol: boolean, meta: Record<string, Buffer>): Hello {
  return {
    fingerprint: protocol.fingerprint,
    protocol: withProtocol ? protocol.text : null,
    knownServerFingerprint: endpoint.serverFingerprint,
    meta,
  };
}

/**
 * True when a HELLO carrying our protocol text and `meta` stays within {@link HELLO_FLOOR_BYTES}, which
 * every server accepts before authenticating us. A longer text goes only in a second HELLO, after
 * NEED_PROTOCOL (the server has authenticated us by then), or not at all if the server knows it.
 */
export function helloFits(protocol: Protocol, meta: Record<string, Buffer>): boolean {
  // Fingerprints and union indexes: 34 bytes; each length prefix: at most 5.
  let n = 34 + 5 + Buffer.byteLength(protocol.text) + 1;
  for (const [k, v] of Object.entries(meta)) n += 10 + Buffer.byteLength(k) + v.length;
  return n <= HELLO_FLOOR_BYTES;
}

/** What a WELCOME OK gave: the server's protocol, and its `meta` (extensions it accepted). */
export interface WelcomeOk {
  remote: Protocol;
  meta: Record<string, Buffer>;
}

/**
 * Reads a WELCOME: `'NEED_PROTOCOL'` when the server asks for our protocol text (the endpoint then
 * sends it up front from now on), or the server's protocol, learned from the text it sent (checked
 * against its fingerprint) or known from the cache. Throws an `Error` saying what is wrong for a
 * WELCOME that breaks the handshake's rules; the caller turns it into a protocol error. A protocol text
 * longer than `maxProtocolBytes` (UTF-8) throws RESOURCE_EXHAUSTED before it is hashed or parsed, and
 * one beyond `PEER_PROTOCOL_LIMITS` RESOURCE_EXHAUSTED before any Avro type is built of it.
 */
export function readWelcome(
  body: Buffer,
  cache: ResolverCache,
  endpoint: HandshakeMemory,
  sentProtocol: boolean,
  maxProtocolBytes: number,
): WelcomeOk | 'NEED_PROTOCOL' {
  const w = readHandshake<Welcome>(welcomeType, body);
  const id = w.fingerprint.toString('hex');
  let remote: Protocol | undefined;
  if (w.protocol !== null) {
    // Parsing a protocol costs far more than its bytes: a hostile server must not make us parse megabytes.
    const bytes = Buffer.byteLength(w.protocol);
    if (bytes > maxProtocolBytes) {
      throw new RpcError(Code.RESOURCE_EXHAUSTED, `server protocol text of ${bytes} bytes exceeds maxProtocolBytes (${maxProtocolBytes})`);
    }
    checkFingerprint(w.protocol, id, 'server');
    remote = cache.learn(w.protocol, id);
  } else {
    remote = cache.protocol(id);
  }
  if (w.status === 'NEED_PROTOCOL') {
    if (sentProtocol) throw new Error('server asked twice for the client protocol');
    endpoint.sendProtocol = true;
    if (remote !== undefined) endpoint.serverFingerprint = w.fingerprint;
    return 'NEED_PROTOCOL';
  }
  if (remote === undefined) throw new Error('server omitted a protocol this client does not know');
  endpoint.serverFingerprint = w.fingerprint;
  return { remote, meta: w.meta };
}

/**
 * What to tell callers when a connection closed before its handshake completed: a close right after
 * our HELLO usually means a TLS server spoken to in plaintext, and bytes we could not parse mean the
 * endpoint is not (yet) an avrpc server; both are UNAVAILABLE, so the pool tries elsewhere.
 */
export function handshakeFailure(error: RpcError, endpoint: string, helloSent: boolean): RpcError {
  if (error.code === Code.UNAVAILABLE && error.cause === undefined && helloSent) {
    return new RpcError(
      Code.UNAVAILABLE,
      `${endpoint} closed the connection during the handshake ` +
        `(${error.message}); a TLS server spoken to in plaintext, or not an avrpc server?`,
      { cause: error },
    );
  }
  if (!error.isRemote && (error.code === Code.INTERNAL || error.code === Code.RESOURCE_EXHAUSTED)) {
    return new RpcError(Code.UNAVAILABLE, `${endpoint} is not an avrpc v1 server (${error.message})`, { cause: error });
  }
  return error;
}
