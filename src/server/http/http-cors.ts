import type { IncomingMessage, ServerResponse } from 'node:http';
import { intOption, invalid, knownOptions } from '../../util/validate.js';
import { METADATA_PREFIX } from './http-headers.js';

/**
 * Cross-origin calls from browsers (`http: { cors: { origins } }`): which page origins may call the
 * gateway. Off by default: without it a browser's cross-origin call is refused by the browser itself
 * (no `access-control-allow-origin`) and a preflight (`OPTIONS`) answers 405.
 */
export interface CorsOptions {
  /** Origins allowed, exactly as a browser sends them (`https://app.example.com`), or `'*'` for any. */
  origins: '*' | readonly string[];
  /** Whether credentials (cookies, TLS client certificates) may go with calls. Default false. */
  allowCredentials?: boolean;
  /** How long a browser may cache a preflight's answer, in seconds. Default 600. */
  maxAgeSeconds?: number;
}

/** {@link CorsOptions} with defaults filled in. */
export interface ResolvedCorsOptions {
  origins: '*' | ReadonlySet<string>;
  allowCredentials: boolean;
  maxAgeSeconds: number;
}

const KNOWN = { origins: true, allowCredentials: true, maxAgeSeconds: true } as const satisfies Record<keyof CorsOptions, true>;

/** Checks `http.cors`; undefined when CORS is off. Throws INVALID_ARGUMENT on a bad value. */
export function resolveCorsOptions(path: string, cors: CorsOptions | undefined): ResolvedCorsOptions | undefined {
  if (cors === undefined) return undefined;
  if (cors === null || typeof cors !== 'object') invalid(path, 'must be an object');
  knownOptions(path, cors, KNOWN);
  const o = cors.origins;
  if (o !== '*' && (!Array.isArray(o) || o.some((x) => typeof x !== 'string' || x === '')))
    invalid(`${path}.origins`, "must be '*' or an array of origins (strings such as 'https://app.example.com')");
  if (cors.allowCredentials !== undefined && typeof cors.allowCredentials !== 'boolean')
    invalid(`${path}.allowCredentials`, 'must be a boolean');
  return {
    origins: o === '*' ? '*' : new Set(o as readonly string[]),
    allowCredentials: cors.allowCredentials ?? false,
    maxAgeSeconds: intOption(`${path}.maxAgeSeconds`, cors.maxAgeSeconds, 600, 0, 86_400),
  };
}

/** Request headers a call may carry: what the gateway reads. */
const ALLOWED_HEADERS = new Set(['content-type', 'authorization', 'avrpc-bytes', 'avrpc-timeout-ms', 'grpc-timeout']);
const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** The CORS policy of a gateway: answers preflights and marks the answers of allowed origins. */
export class Cors {
  constructor(private readonly o: ResolvedCorsOptions) {}

  /** The request's `Origin` when it is allowed, else undefined. */
  private allowed(req: IncomingMessage): string | undefined {
    const origin = req.headers.origin;
    if (origin === undefined) return undefined;
    return this.o.origins === '*' || this.o.origins.has(origin) ? origin : undefined;
  }

  /**
   * A preflight (`OPTIONS` with `access-control-request-method`): 204 with what the origin may send
   * when it is allowed and asks for a method and headers the gateway takes; 403 otherwise.
   * Returns false for any other request.
   */
  preflight(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'OPTIONS' || req.headers['access-control-request-method'] === undefined) return false;
    res.setHeader('vary', 'origin, access-control-request-method, access-control-request-headers');
    const origin = this.allowed(req);
    const method = String(req.headers['access-control-request-method']).toUpperCase();
    const asked = String(req.headers['access-control-request-headers'] ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter((h) => h !== '');
    const headersOk = asked.every((h) => TOKEN.test(h) && (ALLOWED_HEADERS.has(h) || h.startsWith(METADATA_PREFIX)));
    if (origin === undefined || !['GET', 'HEAD', 'POST'].includes(method) || !headersOk) {
      res.writeHead(403, { 'content-length': 0 });
      res.end();
      return true;
    }
    this.allowOrigin(res, origin);
    res.setHeader('access-control-allow-methods', 'GET, HEAD, POST');
    if (asked.length > 0) res.setHeader('access-control-allow-headers', asked.join(', '));
    res.setHeader('access-control-max-age', String(this.o.maxAgeSeconds));
    res.writeHead(204, { 'content-length': 0 });
    res.end();
    return true;
  }

  /**
   * An actual request: when its origin is allowed, the answer says so, and lets the page read the
   * call's metadata headers. Runs as the answer's head is written (its metadata headers set by then).
   */
  decorate(req: IncomingMessage, res: ServerResponse): void {
    if (req.headers.origin === undefined) return;
    const origin = this.allowed(req);
    // The answer depends on the origin (unless any origin gets the same '*'): caches must keep them apart.
    if (origin === undefined || this.o.origins !== '*' || this.o.allowCredentials) res.setHeader('vary', 'origin');
    if (origin === undefined) return;
    this.allowOrigin(res, origin);
    const exposed = res.getHeaderNames().filter((h) => h.startsWith(METADATA_PREFIX) || h === 'www-authenticate');
    if (exposed.length > 0) res.setHeader('access-control-expose-headers', exposed.join(', '));
  }

  private allowOrigin(res: ServerResponse, origin: string): void {
    const any = this.o.origins === '*' && !this.o.allowCredentials;
    res.setHeader('access-control-allow-origin', any ? '*' : origin);
    if (this.o.allowCredentials) res.setHeader('access-control-allow-credentials', 'true');
  }
}

/** `res` runs `hook` just before its head is written, whichever path writes it. */
export function beforeHead(res: ServerResponse, hook: () => void): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: Parameters<ServerResponse['writeHead']>) {
    res.writeHead = writeHead;
    hook();
    return writeHead.apply(this, args);
  } as ServerResponse['writeHead'];
}
