import { createHash } from 'node:crypto';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { readErrorHead, readGoaway } from '../framing/bodies.js';
import { FrameDecoder } from '../framing/frame-decoder.js';
import { FrameEncoder } from '../framing/frame-encoder.js';
import { FrameType, PREFACE } from '../framing/frame.js';
import { helloType, readHandshake, welcomeType, writeHandshake, type Hello, type Welcome } from '../framing/handshake.js';
import { HEALTH_META_KEY, decodeHealth, type HealthStatusName } from '../framing/health.js';
import { KNOWN_CLIENT_TLS_OPTIONS, dialer, readyEvent, type ClientTlsOptions } from '../security/tls.js';
import { invalid, knownOptions, msOption } from '../util/validate.js';
import { parseEndpoint, type Endpoint } from './client-options.js';

/** Options of {@link checkHealth}. */
export interface HealthCheckOptions {
  /** Connect over TLS with these options. */
  tls?: ClientTlsOptions;
  /** Ask about this service (a protocol's full name, e.g. `avrpc.echo.Echo`); default: the whole server. */
  service?: string;
  /** Time allowed for connect and answer, in ms. Default 5000. */
  timeoutMs?: number;
}

/** What {@link checkHealth} learnt. */
export interface HealthCheckResult {
  /** SERVING: the server takes calls. SERVICE_UNKNOWN: it does not serve `service`. */
  status: HealthStatusName;
  /**
   * False when the server predates the health check (SPEC.md section 14): it completed a plain
   * handshake, so it is up, but could not say whether it is ready; `status` is then SERVING.
   */
  supported: boolean;
}

const KNOWN_HEALTH_OPTIONS = { tls: true, service: true, timeoutMs: true } as const satisfies Record<keyof HealthCheckOptions, true>;

/** The largest answer read: a WELCOME from a server that predates health carries its whole protocol. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/** The fingerprint a health HELLO claims: of an empty protocol, which no server serves. */
const PROBE_FINGERPRINT = createHash('md5').update('{"protocol":"Health","namespace":"avrpc.probe","messages":{}}').digest();

/**
 * Asks a server whether it takes calls, without its protocol (SPEC.md section 14): one connection, one
 * HELLO and its WELCOME. Resolves with the status; a server that cannot be reached, refuses (GOAWAY,
 * ERROR) or does not answer in time rejects with an RpcError (UNAVAILABLE, its code, DEADLINE_EXCEEDED).
 */
export async function checkHealth(endpoint: string | Endpoint, options: HealthCheckOptions = {}): Promise<HealthCheckResult> {
  if (options === null || typeof options !== 'object') invalid('checkHealth: options', 'must be an object');
  knownOptions('checkHealth: options', options, KNOWN_HEALTH_OPTIONS);
  if (options.tls !== undefined) {
    if (options.tls === null || typeof options.tls !== 'object') invalid('checkHealth: options.tls', 'must be an object');
    knownOptions('checkHealth: options.tls', options.tls, KNOWN_CLIENT_TLS_OPTIONS);
  }
  const service = options.service ?? '';
  if (typeof service !== 'string') invalid('checkHealth: options.service', 'must be a string');
  const timeoutMs = msOption('checkHealth: options.timeoutMs', options.timeoutMs, 5000, 1);
  const { host, port } = parseEndpoint('checkHealth: endpoint', endpoint);
  const socket = dialer(options.tls)(host, port);
  try {
    return await new Promise<HealthCheckResult>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new RpcError(Code.DEADLINE_EXCEEDED, `health check of ${host}:${port}: no answer in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const settle = (f: () => void): void => {
        clearTimeout(timer);
        f();
      };
      const decoder = new FrameDecoder({ maxFrameBytes: MAX_ANSWER_BYTES, expectPreface: false }, (type, flags, id, body) => {
        settle(() => {
          try {
            resolve(answer(type, flags, id, body));
          } catch (err) {
            reject(RpcError.from(err));
          }
        });
      });
      socket.on('data', (chunk: Buffer) => {
        try {
          decoder.push(chunk);
        } catch (err) {
          settle(() => reject(RpcError.from(err)));
        }
      });
      socket.on('error', (err) => settle(() => reject(new RpcError(Code.UNAVAILABLE, `health check of ${host}:${port}: ${err.message}`))));
      socket.on('close', () => settle(() => reject(new RpcError(Code.UNAVAILABLE, `health check of ${host}:${port}: connection closed`))));
      socket.once(readyEvent(socket), () => socket.write(helloBytes(service)));
    });
  } finally {
    socket.destroy();
  }
}

/** The preface and the health HELLO. */
function helloBytes(service: string): Buffer {
  const hello: Hello = {
    fingerprint: PROBE_FINGERPRINT,
    protocol: null,
    knownServerFingerprint: null,
    meta: { [HEALTH_META_KEY]: Buffer.from(service, 'utf8') },
  };
  const enc = new FrameEncoder();
  enc.frame(FrameType.HELLO, 0, 0, hello, writeHandshake(helloType));
  return Buffer.concat([PREFACE, ...enc.take()]);
}

/** Reads the server's first frame: a WELCOME, or why it refused. */
function answer(type: number, flags: number, id: number, body: Buffer): HealthCheckResult {
  if (type === FrameType.WELCOME) {
    const welcome = readHandshake<Welcome>(welcomeType, body);
    const value = welcome.meta[HEALTH_META_KEY];
    if (value === undefined) return { status: 'SERVING', supported: false };
    return { status: decodeHealth(value), supported: true };
  }
  if (type === FrameType.GOAWAY) {
    const g = readGoaway(body);
    throw new RpcError(g.code === Code.OK ? Code.UNAVAILABLE : (g.code as Code), `server refused: ${g.message}`);
  }
  if (type === FrameType.ERROR && id === 0) {
    const e = readErrorHead(flags, body);
    throw new RpcError(e.code === Code.OK ? Code.UNKNOWN : (e.code as Code), e.message);
  }
  throw new RpcError(Code.INTERNAL, `health check: unexpected frame type ${type} before WELCOME`);
}
