import { createHmac, timingSafeEqual } from 'node:crypto';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { intOption, invalid } from '../util/validate.js';
import type { Authenticator, HandshakeInfo } from './auth.js';

/** Options of {@link createHmacAuth}. */
export interface HmacAuthOptions {
  /** Shared secret, at least 32 bytes. Required. */
  secret: string | Buffer;
  /** Lifetime of issued tokens, in ms. Default 3600000 (one hour). */
  ttlMs?: number;
  /** Clock, injectable for tests. Default `Date.now`. */
  now?: () => number;
}

/** What a verified token says. */
export interface HmacPrincipal {
  id: string;
  roles: string[];
  /** Expiry, epoch ms. */
  expiresAt: number;
}

/** A shared-secret token issuer and the matching server `authenticate` hook. */
export interface HmacAuth {
  /** Issues a token for `id` with `roles`, valid for `ttlMs` (default: the option). */
  issue(id: string, roles?: string[], ttlMs?: number): string;
  /** Verifies a token; throws UNAUTHENTICATED when it is malformed, forged or expired. */
  verify(token: string): HmacPrincipal;
  /** For `createServer({ authenticate })`. */
  authenticate: Authenticator<HmacPrincipal>;
}

/**
 * Built-in authentication with HMAC-SHA256 tokens: `base64url(JSON {sub, roles, exp}) "." base64url(mac)`.
 * Verification compares MACs in constant time and checks expiry.
 */
export function createHmacAuth(options: HmacAuthOptions): HmacAuth {
  const at = 'createHmacAuth: options';
  const secret = typeof options?.secret === 'string' ? Buffer.from(options.secret) : options?.secret;
  if (!Buffer.isBuffer(secret) || secret.length < 32) invalid(`${at}.secret`, 'must be at least 32 bytes');
  const ttlMs = intOption(`${at}.ttlMs`, options.ttlMs, 3_600_000, 1);
  const now = options.now ?? Date.now;
  const mac = (payload: string) => createHmac('sha256', secret).update(payload).digest();
  const refuse = (why: string): never => { throw new RpcError(Code.UNAUTHENTICATED, `invalid token: ${why}`); };

  const verify = (token: string): HmacPrincipal => {
    if (typeof token !== 'string') refuse('missing');
    const dot = token.indexOf('.');
    if (dot <= 0) refuse('malformed');
    const payload = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), 'base64url');
    const expected = mac(payload);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) refuse('bad signature');
    let claims: { sub?: unknown; roles?: unknown; exp?: unknown };
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return refuse('malformed payload');
    }
    if (typeof claims.sub !== 'string' || typeof claims.exp !== 'number') refuse('malformed claims');
    if ((claims.exp as number) <= now()) refuse('expired');
    const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
    return { id: claims.sub as string, roles, expiresAt: claims.exp as number };
  };

  return {
    issue(id, roles = [], lifetimeMs = ttlMs) {
      const payload = Buffer.from(JSON.stringify({ sub: id, roles, exp: now() + lifetimeMs })).toString('base64url');
      return `${payload}.${mac(payload).toString('base64url')}`;
    },
    verify,
    authenticate: (handshake: HandshakeInfo) => verify(handshake.token ?? refuse('missing')),
  };
}
