/**
 * The grpc-js credentials for the server's `tls` option: the same certificate, key and client CAs
 * as the avrpc port, so a server configured for TLS never serves gRPC in the clear.
 */
import type * as grpc from '@grpc/grpc-js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { PeerCertificateInfo } from '../../security/auth.js';
import type { ServerTlsOptions } from '../../security/tls.js';
import type { GrpcModule } from './grpc-module.js';

type Pem = string | Buffer | Array<string | Buffer>;

/** The PEM items of an option as Buffers. */
function pems(value: Pem | undefined): Buffer[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map((v) => (typeof v === 'string' ? Buffer.from(v) : v));
}

/**
 * Insecure credentials without `tls`; else SSL credentials from `cert`/`key` (paired in order) and
 * `ca`, asking for client certificates when `requestCert` is set and rejecting those that fail
 * unless `rejectUnauthorized` is false. Throws INVALID_ARGUMENT when cert and key do not pair up.
 */
export function grpcCredentials(g: GrpcModule, tls: ServerTlsOptions | undefined): grpc.ServerCredentials {
  if (tls === undefined) return g.ServerCredentials.createInsecure();
  const certs = pems(tls.cert);
  const keys = pems(tls.key as Pem);
  if (certs.length !== keys.length || certs.length === 0)
    throw new RpcError(Code.INVALID_ARGUMENT, 'grpc: options.tls needs one key per certificate (PEM strings or Buffers)');
  const ca = pems(tls.ca);
  return g.ServerCredentials.createSsl(
    ca.length === 0 ? null : Buffer.concat(ca),
    certs.map((cert_chain, i) => ({ cert_chain, private_key: keys[i]! })),
    verifiesClients(tls),
  );
}

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
