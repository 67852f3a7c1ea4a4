import { createHmac, timingSafeEqual } from 'node:crypto';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { intOption, invalid, knownOptions } from '../util/validate.js';
import type { Authenticator, HandshakeInfo } from './auth.js';

/** Options of {@link createHmacAuth}. */
export interface HmacAuthOptions {
  /** Shared secret, at least 32 bytes. Required. */
  secret: string | Buffer;
  /** Lifetime of issued tokens, in ms. Default 3600000 (one hour). */
  ttlMs?: number;
  /**
   * The service these tokens are for, their `aud` claim: `issue` puts it in every token (unless given
   * another), and `verify` accepts only tokens whose `aud` is exactly this. Without it, tokens carry no
   * `aud` and only tokens without one verify, so a token minted for an audience is refused by every
   * verifier of another audience or of none. Services that share a secret should each set their own
   * (the secret alone cannot tell them apart). Default: none.
   */
  audience?: string;
  /**
   * Clock of `issue` and `verify`, injectable for tests. Default `Date.now`. A server ends a
   * connection at its principal's `expiresAt` by `Date.now`, so a clock far from it moves that moment.
   */
  now?: () => number;
}

/** What a verified token says. */
export interface HmacPrincipal {
  id: string;
  roles: string[];
  /**
   * Expiry, epoch ms. The server ends the authorization of the connection then (calls after it are
   * refused UNAUTHENTICATED, then GOAWAY), see `Authenticator`.
   */
  expiresAt: number;
  /** The token's audience (`aud`), when it has one. */
  audience?: string;
}

/** A shared-secret token issuer and the matching server `authenticate` hook. */
export interface HmacAuth {
  /**
   * Issues a token for `id` with `roles`, valid for `ttlMs` (default: the option), for `audience`
   * (default: the `audience` option; a token for another audience is for another verifier).
   */
  issue(id: string, roles?: string[], ttlMs?: number, audience?: string): string;
  /**
   * Verifies a token; throws UNAUTHENTICATED when it is malformed, forged, expired or for another
   * audience, always with the same message (`invalid token`): the reason is the error's `cause`, which
   * the server logs (warn) and never sends.
   */
  verify(token: string): HmacPrincipal;
  /** For `createServer({ authenticate })`. */
  authenticate: Authenticator<HmacPrincipal>;
}

const KNOWN_HMAC_OPTIONS = { secret: true, ttlMs: true, audience: true, now: true } as const satisfies Record<keyof HmacAuthOptions, true>;

/** The one message of every refused token: telling reasons apart would help a forger, not the caller. */
const REFUSED = 'invalid token';

/**
 * The bytes of `text` if it is the canonical spelling of them in unpadded base64url, else undefined.
 * Node's decoder accepts padding, the '+' and '/' alphabet, whitespace, junk after padding and
 * non-zero spare bits, so one MAC would have many spellings: only the one it re-encodes to is taken.
 */
function strictBase64url(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : undefined;
}

/**
 * Built-in authentication with HMAC-SHA256 tokens:
 * `base64url(JSON {sub, roles, exp, aud?}) "." base64url(mac)`, both parts unpadded base64url in
 * their one canonical spelling. Verification compares MACs in constant time, then checks the claims,
 * the expiry and the audience.
 */
export function createHmacAuth(options: HmacAuthOptions): HmacAuth {
  const at = 'createHmacAuth: options';
  if (options === null || typeof options !== 'object') invalid(at, 'must be an object');
  knownOptions(at, options, KNOWN_HMAC_OPTIONS);
  const secret = typeof options.secret === 'string' ? Buffer.from(options.secret) : options.secret;
  if (!Buffer.isBuffer(secret) || secret.length < 32) invalid(`${at}.secret`, 'must be at least 32 bytes');
  const ttlMs = intOption(`${at}.ttlMs`, options.ttlMs, 3_600_000, 1);
  const audience = options.audience;
  if (audience !== undefined && (typeof audience !== 'string' || audience === '')) invalid(`${at}.audience`, 'must be a non-empty string');
  if (options.now !== undefined && typeof options.now !== 'function') invalid(`${at}.now`, 'must be a function');
  const now = options.now ?? Date.now;
  const mac = (payload: string) => createHmac('sha256', secret).update(payload).digest();
  const refuse = (why: string): never => {
    throw new RpcError(Code.UNAUTHENTICATED, REFUSED, { cause: new Error(`token refused: ${why}`) });
  };

  const verify = (token: string): HmacPrincipal => {
    if (typeof token !== 'string') return refuse('missing');
    const dot = token.indexOf('.');
    if (dot <= 0) refuse('malformed');
    const payload = token.slice(0, dot);
    const given = strictBase64url(token.slice(dot + 1));
    const expected = mac(payload);
    if (given === undefined || given.length !== expected.length || !timingSafeEqual(given, expected)) refuse('bad signature');
    let claims: { sub?: unknown; roles?: unknown; exp?: unknown; aud?: unknown };
    try {
      const json = strictBase64url(payload);
      if (json === undefined) return refuse('malformed payload');
      claims = JSON.parse(json.toString('utf8')) as typeof claims;
    } catch {
      return refuse('malformed payload');
    }
    if (
      claims === null ||
      typeof claims !== 'object' ||
      typeof claims.sub !== 'string' ||
      typeof claims.exp !== 'number' ||
      !Number.isFinite(claims.exp)
    ) {
      refuse('malformed claims');
    }
    if ((claims.exp as number) <= now()) refuse('expired');
    if (claims.aud !== audience) refuse(`audience ${JSON.stringify(claims.aud ?? null)} is not ${JSON.stringify(audience ?? null)}`);
    const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
    return { id: claims.sub as string, roles, expiresAt: claims.exp as number, ...(audience === undefined ? {} : { audience }) };
  };

  return {
    issue(id, roles = [], lifetimeMs = ttlMs, aud = audience) {
      if (typeof id !== 'string') invalid('createHmacAuth: issue: id', 'must be a string');
      if (aud !== undefined && (typeof aud !== 'string' || aud === ''))
        invalid('createHmacAuth: issue: audience', 'must be a non-empty string');
      const claims = { sub: id, roles, exp: now() + lifetimeMs, ...(aud === undefined ? {} : { aud }) };
      const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
      return `${payload}.${mac(payload).toString('base64url')}`;
    },
    verify,
    authenticate: (handshake: HandshakeInfo) => verify(handshake.token ?? refuse('missing')),
  };
}
