import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket, type TlsOptions } from 'node:tls';
import type { PeerCertificateInfo } from './auth.js';

/** Server TLS settings (a subset of `tls.TlsOptions`; anything else of it is passed through). */
export interface ServerTlsOptions extends TlsOptions {
  /** PEM certificate chain. Required. */
  cert: string | Buffer | Array<string | Buffer>;
  /** PEM private key. Required. */
  key: string | Buffer | Array<string | Buffer>;
  /** CA certificates trusted for client certificates (mTLS). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Ask clients for a certificate; with `rejectUnauthorized` (default true) it is required: mTLS. */
  requestCert?: boolean;
}

/** Client TLS settings (a subset of `tls.ConnectionOptions`; anything else of it is passed through). */
export interface ClientTlsOptions extends ConnectionOptions {
  /** CA certificates trusted for the server's certificate. Default: Node's bundled roots. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate and key, for mTLS. */
  cert?: string | Buffer | Array<string | Buffer>;
  key?: string | Buffer | Array<string | Buffer>;
  /** Name checked against the server certificate. Default: the endpoint host. */
  servername?: string;
}

/**
 * The names both `tls.createServer` and `tls.connect` take (Node's secure-context and common
 * connection options, as @types/node declares them), listed once for both sides' lists below.
 */
const KNOWN_COMMON_TLS_OPTIONS = {
  sessionTimeout: true,
  ticketKeys: true,
  pskCallback: true,
  ALPNCallback: true,
  allowPartialTrustChain: true,
  ca: true,
  cert: true,
  sigalgs: true,
  ciphers: true,
  clientCertEngine: true,
  crl: true,
  dhparam: true,
  ecdhCurve: true,
  honorCipherOrder: true,
  key: true,
  privateKeyEngine: true,
  privateKeyIdentifier: true,
  maxVersion: true,
  minVersion: true,
  passphrase: true,
  pfx: true,
  secureOptions: true,
  secureProtocol: true,
  sessionIdContext: true,
  secureContext: true,
  enableTrace: true,
  requestCert: true,
  ALPNProtocols: true,
  SNICallback: true,
  rejectUnauthorized: true,
} as const;

/**
 * Every name of Node's `tls.createServer` options (as @types/node declares them): `tls` is passed
 * through, so any of them is an option; anything else is a typo, refused by `createServer`.
 */
export const KNOWN_SERVER_TLS_OPTIONS = {
  ...KNOWN_COMMON_TLS_OPTIONS,
  handshakeTimeout: true,
  pskIdentityHint: true,
  allowHalfOpen: true,
  pauseOnConnect: true,
  noDelay: true,
  keepAlive: true,
  keepAliveInitialDelay: true,
  highWaterMark: true,
} as const satisfies Record<keyof ServerTlsOptions, true>;

/** Every name of Node's `tls.connect` options (as @types/node declares them), for the client's `tls`. */
export const KNOWN_CLIENT_TLS_OPTIONS = {
  ...KNOWN_COMMON_TLS_OPTIONS,
  host: true,
  port: true,
  path: true,
  socket: true,
  checkServerIdentity: true,
  servername: true,
  session: true,
  minDHSize: true,
  lookup: true,
  timeout: true,
} as const satisfies Record<keyof ClientTlsOptions, true>;

/** Returns the function that opens a client socket: plain TCP, or TLS when `tls` is given. */
export function dialer(tls: ClientTlsOptions | undefined): (host: string, port: number) => Socket {
  if (tls === undefined) return (host, port) => netConnect({ host, port });
  return (host, port) => tlsConnect({ ...tls, host, port, servername: tls.servername ?? (isIp(host) ? undefined : host) });
}

/** The event after which a socket can carry the preface: `secureConnect` for TLS. */
export function readyEvent(socket: Socket): 'connect' | 'secureConnect' {
  return (socket as TLSSocket).encrypted === true ? 'secureConnect' : 'connect';
}

/** The verified peer certificate of a TLS socket (mTLS), or undefined. */
export function peerCertificate(socket: Socket): PeerCertificateInfo | undefined {
  const tls = socket as TLSSocket;
  if (tls.encrypted !== true || !tls.authorized) return undefined;
  const cert = tls.getPeerCertificate();
  if (cert === null || Object.keys(cert).length === 0) return undefined;
  const cn = cert.subject?.CN;
  return { commonName: Array.isArray(cn) ? cn[0] : cn, subjectAltName: cert.subjectaltname, fingerprint256: cert.fingerprint256 };
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
