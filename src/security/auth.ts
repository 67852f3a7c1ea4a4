import type { Metadata } from '../framing/bodies.js';

/**
 * Who a caller is, as the server's `authenticate` hook decided: any value; a string or an object with
 * `id` and `roles` works with the declarative ACL.
 */
export type Principal = unknown;

/** What `authenticate` sees of a handshake. */
export interface HandshakeInfo {
  /** The client's credential token (`credentials` option), if it sent one. */
  token: string | undefined;
  /** All HELLO meta fields, as bytes. */
  meta: Readonly<Record<string, Buffer>>;
}

/** Server hook: returns the principal of a new connection, or throws to refuse it (UNAUTHENTICATED). */
export type Authenticator<P = Principal> = (handshake: HandshakeInfo, peer: { address: string; port: number; certificate?: PeerCertificateInfo }) => P | Promise<P>;

/** Server hook: may this principal call this message? Refused calls get PERMISSION_DENIED. */
export type Authorizer = (principal: Principal, message: string, metadata: Metadata) => boolean | Promise<boolean>;

/**
 * Declarative per-message access list: message name (or `'*'` for the rest) to the principals
 * allowed, by id (`'alice'`), by role (`'role:admin'`), or everyone (`'*'`).
 */
export type Acl = Readonly<Record<string, readonly string[]>>;

/** The verified TLS client certificate's identity (mTLS). */
export interface PeerCertificateInfo {
  /** Subject common name. */
  commonName: string | undefined;
  /** Subject alternative names, as Node prints them (`DNS:x, URI:y`). */
  subjectAltName: string | undefined;
  /** SHA-256 fingerprint of the certificate. */
  fingerprint256: string;
}

/** HELLO meta key carrying the client's token. */
export const TOKEN_META_KEY = 'avrpc.token';

function principalId(p: Principal): string | undefined {
  if (typeof p === 'string') return p;
  if (p !== null && typeof p === 'object') {
    const id = (p as { id?: unknown }).id;
    if (typeof id === 'string') return id;
  }
  return undefined;
}

function principalRoles(p: Principal): readonly string[] {
  const roles = p !== null && typeof p === 'object' ? (p as { roles?: unknown }).roles : undefined;
  return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [];
}

/** Compiles an ACL into an authorizer. A message not listed (and no `'*'`) is denied. */
export function aclAuthorizer(acl: Acl): Authorizer {
  return (principal, message) => {
    // Own keys only: a message named like an Object.prototype member must not find that member.
    const allowed = Object.hasOwn(acl, message) ? acl[message] : Object.hasOwn(acl, '*') ? acl['*'] : undefined;
    if (allowed === undefined) return false;
    if (allowed.includes('*')) return true;
    const id = principalId(principal);
    if (id !== undefined && allowed.includes(id)) return true;
    return principalRoles(principal).some((r) => allowed.includes(`role:${r}`));
  };
}

/** Combines authorizers: every one must allow. */
export function allOf(authorizers: readonly Authorizer[]): Authorizer | undefined {
  if (authorizers.length === 0) return undefined;
  if (authorizers.length === 1) return authorizers[0];
  return async (principal, message, metadata) => {
    for (const a of authorizers) if (!(await a(principal, message, metadata))) return false;
    return true;
  };
}
