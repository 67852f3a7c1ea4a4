/**
 * TLS of the gRPC bridge: the server's `tls` option, the same certificate, key and client CAs as the
 * avrpc port (grpc-bridge.ts terminates it), so a server configured for TLS never serves gRPC in the
 * clear; and the verified client certificate of a call under mTLS.
 */
import type * as grpc from '@grpc/grpc-js';
import type { PeerCertificateInfo } from '../../security/auth.js';
import type { ServerTlsOptions } from '../../security/tls.js';

/** True when TLS requires and verifies client certificates (mTLS). */
function verifiesClients(tls: ServerTlsOptions): boolean {
  return tls.requestCert === true && tls.rejectUnauthorized !== false;
}

/** The client certificate of a call, when TLS verified it (mTLS); else undefined. */
export function verifiedCertificate(
  tls: ServerTlsOptions | undefined,
  call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getAuthContext'>,
): PeerCertificateInfo | undefined {
  if (tls === undefined || !verifiesClients(tls)) return undefined;
  const cert = call.getAuthContext().sslPeerCertificate;
  if (cert === undefined || Object.keys(cert).length === 0) return undefined;
  const cn = cert.subject?.CN;
  return { commonName: Array.isArray(cn) ? cn[0] : cn, subjectAltName: cert.subjectaltname, fingerprint256: cert.fingerprint256 };
}
