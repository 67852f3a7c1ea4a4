import { intOption, invalid, knownOptions, msOption } from '../../util/validate.js';
import { resolveCorsOptions, type CorsOptions, type ResolvedCorsOptions } from './http-cors.js';

/**
 * The HTTP/JSON gateway (`createServer({ http: {} })`): without `port`, the avrpc port answers HTTP/1.1
 * too (told apart by the first bytes; HTTPS when the server has `tls`, the same certificate); with
 * `port`, plain HTTP is served on that port instead.
 */
export interface HttpOptions {
  /** A separate port for HTTP (0 picks a free one); default: the avrpc port serves both. */
  port?: number;
  /** Time a client has to send a request's headers, in ms (node:http `headersTimeout`). Default 10000. */
  headersTimeoutMs?: number;
  /** Time a client has to send a whole request, in ms (node:http `requestTimeout`). Default 60000. */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open, in ms (node:http `keepAliveTimeout`). Default 5000. */
  keepAliveTimeoutMs?: number;
  /** Cross-origin calls from browsers: the origins allowed (see {@link CorsOptions}). Default off. */
  cors?: CorsOptions;
}

/** {@link HttpOptions} with defaults filled in. */
export interface ResolvedHttpOptions {
  port: number | undefined;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  cors: ResolvedCorsOptions | undefined;
}

const KNOWN_HTTP_OPTIONS = {
  port: true,
  headersTimeoutMs: true,
  requestTimeoutMs: true,
  keepAliveTimeoutMs: true,
  cors: true,
} as const satisfies Record<keyof HttpOptions, true>;

/** Checks `options.http`; undefined when HTTP is off. Throws INVALID_ARGUMENT on a bad value. */
export function resolveHttpOptions(path: string, http: HttpOptions | undefined): ResolvedHttpOptions | undefined {
  if (http === undefined) return undefined;
  if (http === null || typeof http !== 'object') invalid(path, 'must be an object');
  knownOptions(path, http, KNOWN_HTTP_OPTIONS);
  return {
    port: http.port === undefined ? undefined : intOption(`${path}.port`, http.port, 0, 0, 65535),
    headersTimeoutMs: msOption(`${path}.headersTimeoutMs`, http.headersTimeoutMs, 10_000, 1),
    requestTimeoutMs: msOption(`${path}.requestTimeoutMs`, http.requestTimeoutMs, 60_000, 1),
    keepAliveTimeoutMs: msOption(`${path}.keepAliveTimeoutMs`, http.keepAliveTimeoutMs, 5_000, 1),
    cors: resolveCorsOptions(`${path}.cors`, http.cors),
  };
}
