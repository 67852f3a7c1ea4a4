import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';

/**
 * How a connection attempt that never completed its handshake failed, for the pool's decision to
 * keep retrying or to fail the calls waiting for it:
 * - `transient`: the server is down, restarting, slow or unreachable (refused, reset, timed out): it
 *   may come back, so calls wait up to `waitForReadyMs`;
 * - `permanent`: retrying cannot help until someone changes a configuration: the TLS handshake failed
 *   (certificate not trusted, wrong name, expired; TLS spoken to a plaintext port), or the peer sent
 *   bytes that are not avrpc (an HTTP server, garbage instead of WELCOME);
 * - `suspect`: the peer accepted the connection and closed it soon (within a second) after our HELLO
 *   without a byte: what a TLS server does to a plaintext client, but also what a server in the middle
 *   of a restart may do once, so it counts as permanent only after a few attempts in a row (the pool's
 *   rule). A close that comes later (an overloaded avrpc server's handshakeTimeoutMs) is transient.
 */
export type ConnectFailure = 'transient' | 'suspect' | 'permanent';

/** Node and OpenSSL codes of a failed TLS handshake (Node's own `ERR_TLS_HANDSHAKE_TIMEOUT` is not one: it may pass). */
const TLS_FAILURE =
  /^(?:ERR_SSL_|ERR_TLS_CERT|UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|INVALID_CA|INVALID_PURPOSE|ERR_TLS_INVALID|ERR_TLS_ALERT)/;

function nodeCode(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : '';
}

/**
 * Classifies why a connection closed before WELCOME OK (`error` as the socket reported it);
 * `closedAfterHello`: the peer, not our connect timer, ended the connection soon after our HELLO.
 */
export function connectFailureKind(error: RpcError, closedAfterHello: boolean): ConnectFailure {
  if (TLS_FAILURE.test(nodeCode(error.cause))) return 'permanent';
  // Our own decoder refused what the peer sent (a frame it cannot be, a WELCOME that does not parse).
  if (!error.isRemote && (error.code === Code.INTERNAL || error.code === Code.RESOURCE_EXHAUSTED)) return 'permanent';
  if (error.code === Code.UNAVAILABLE && error.cause === undefined && closedAfterHello) return 'suspect';
  return 'transient';
}

/**
 * The error callers get for a permanent failure: UNAVAILABLE, naming the endpoint and the real cause
 * in words (and the Node error or our decoder's error as `cause`). `firstBytes` are the first bytes
 * the peer sent, if any: they tell an HTTP server or a TLS server from other garbage.
 */
export function permanentFailure(error: RpcError, endpoint: string, firstBytes: Buffer | undefined): RpcError {
  const code = nodeCode(error.cause);
  // The peer refused our certificate: fromNodeError's message says so already.
  if (error.code === Code.UNAUTHENTICATED) return error;
  if (TLS_FAILURE.test(code)) {
    const cause = error.cause;
    const detail = (cause instanceof Error ? cause.message : error.message).split('\n')[0]!.trim();
    return new RpcError(
      Code.UNAVAILABLE,
      `TLS handshake with ${endpoint} failed: ${tlsHint(code)} (${detail.includes(code) ? detail : `${code}: ${detail}`})`,
      { cause },
    );
  }
  // One of our own limits refused what an avrpc-looking peer sent (a WELCOME beyond maxProtocolBytes):
  // its message says which. HTTP or TLS bytes read as a huge length are told as what they are.
  if (error.code === Code.RESOURCE_EXHAUSTED && !error.isRemote && foreign(firstBytes) === undefined) return error;
  return new RpcError(Code.UNAVAILABLE, `${endpoint} is not an avrpc v1 server: ${whatItSent(firstBytes, error)}`, { cause: error });
}

function tlsHint(code: string): string {
  if (/ALTNAME|HOSTNAME/.test(code)) return "the server's certificate is not for this name (tls.servername)";
  if (/EXPIRED|NOT_YET_VALID/.test(code)) return "the server's certificate is expired or not yet valid";
  if (/^(?:UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|CERT_UNTRUSTED|CERT_SIGNATURE|INVALID_CA)/.test(code)) {
    return "the server's certificate is not signed by a CA this client trusts (tls.ca)";
  }
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH|UNKNOWN_PROTOCOL|RECORD_LAYER|HTTP_REQUEST/.test(code))
    return 'the server does not speak TLS (a plaintext port?)';
  return 'TLS refused';
}

/** What the first bytes show the peer to be, when they are HTTP or TLS; undefined otherwise. */
function foreign(first: Buffer | undefined): string | undefined {
  if (first !== undefined && first.length >= 5 && first.subarray(0, 5).toString('latin1') === 'HTTP/') {
    const line = first
      .toString('latin1')
      .split('\r\n')[0]!
      .replace(/[^\x20-\x7e]/g, '?');
    return `it answered in HTTP (${JSON.stringify(line)})`;
  }
  if (first !== undefined && first.length >= 2 && (first[0] === 0x15 || first[0] === 0x16) && first[1] === 0x03) {
    return "it answered with a TLS record: a TLS server spoken to in plaintext? (set the client's tls option)";
  }
  return undefined;
}

function whatItSent(first: Buffer | undefined, error: RpcError): string {
  const known = foreign(first);
  if (known !== undefined) return known;
  const bytes = first === undefined ? '' : `; first bytes ${first.subarray(0, 16).toString('hex')}`;
  return `${error.message}${bytes}`;
}
