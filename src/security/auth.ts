import type { Metadata } from '../framing/bodies.js';
import { invalid } from '../util/validate.js';

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

/**
 * Server hook: returns the principal of a new connection, or throws to refuse it (UNAUTHENTICATED).
 * A principal that is an object with a numeric `expiresAt` (epoch ms, as `createHmacAuth`'s has)
 * authorizes its connection until then only: a principal already expired is refused like a throw;
 * once it expires, calls are refused UNAUTHENTICATED (no handler runs), the server sends GOAWAY
 * UNAUTHENTICATED and closes once the calls running end. The client reconnects with fresh credentials.
 */
export type Authenticator<P = Principal> = (
  handshake: HandshakeInfo,
  peer: { address: string; port: number; certificate?: PeerCertificateInfo },
) => P | Promise<P>;

/** Server hook: may this principal call this message? Refused calls get PERMISSION_DENIED. */
export type Authorizer = (principal: Principal, message: string, metadata: Metadata) => boolean | Promise<boolean>;

/**
 * Who an ACL entry lets in: everyone (`'*'`), a principal by id (`{ id: 'alice' }`), or every
 * principal holding a role (`{ role: 'admin' }`). Strings are a shorthand: `'role:admin'` is the role
 * `admin`, any other string but `'*'` is an id. An entry is one kind only, so no id can pass as a role:
 * the principal `{ id: 'role:admin' }` matches neither `'role:admin'` nor `{ role: 'admin' }` (name such
 * an id with `{ id: 'role:admin' }`).
 */
export type AclEntry = '*' | string | { readonly id: string } | { readonly role: string };

/** Declarative per-message access list: message name (or `'*'` for the rest) to the entries allowed. */
export type Acl = Readonly<Record<string, readonly AclEntry[]>>;

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

/** When a principal's authorization ends, epoch ms: its `expiresAt` if that is a number (see {@link Authenticator}). */
export function principalExpiry(p: Principal): number | undefined {
  if (p === null || typeof p !== 'object') return undefined;
  const at = (p as { expiresAt?: unknown }).expiresAt;
  return typeof at === 'number' && !Number.isNaN(at) ? at : undefined;
}

/** One message's entries, compiled: ids and roles in separate sets, so one never reads as the other. */
interface AllowList {
  everyone: boolean;
  ids: Set<string>;
  roles: Set<string>;
}

function compileEntries(path: string, entries: unknown): AllowList {
  if (!Array.isArray(entries)) invalid(path, "must be an array of entries ('*', an id, 'role:<name>', { id } or { role })");
  const list: AllowList = { everyone: false, ids: new Set(), roles: new Set() };
  entries.forEach((e: unknown, i) => {
    if (e === '*') list.everyone = true;
    else if (typeof e === 'string' && e.startsWith('role:')) list.roles.add(e.slice(5));
    else if (typeof e === 'string') list.ids.add(e);
    else if (e !== null && typeof e === 'object' && Object.keys(e).length === 1 && typeof (e as { id?: unknown }).id === 'string')
      list.ids.add((e as { id: string }).id);
    else if (e !== null && typeof e === 'object' && Object.keys(e).length === 1 && typeof (e as { role?: unknown }).role === 'string')
      list.roles.add((e as { role: string }).role);
    else invalid(`${path}[${i}]`, "must be '*', an id, 'role:<name>', { id: string } or { role: string }");
  });
  return list;
}

/**
 * Compiles an ACL into an authorizer. A message not listed (and no `'*'`) is denied. Throws
 * INVALID_ARGUMENT naming `path` and the entry when the ACL is malformed.
 */
export function aclAuthorizer(acl: Acl, path = 'aclAuthorizer: acl'): Authorizer {
  if (acl === null || typeof acl !== 'object') invalid(path, 'must be an object of message name to entry list');
  // A Map: a message named like an Object.prototype member must not find that member.
  const lists = new Map<string, AllowList>();
  for (const [message, entries] of Object.entries(acl)) lists.set(message, compileEntries(`${path}.${message}`, entries));
  const rest = lists.get('*');
  return (principal, message) => {
    const allowed = lists.get(message) ?? rest;
    if (allowed === undefined) return false;
    if (allowed.everyone) return true;
    const id = principalId(principal);
    if (id !== undefined && allowed.ids.has(id)) return true;
    return allowed.roles.size > 0 && principalRoles(principal).some((r) => allowed.roles.has(r));
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
