import type { IncomingHttpHeaders } from 'node:http';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import type { Metadata } from '../../framing/bodies.js';

/** Prefix of the request headers that carry call metadata: `avrpc-md-tenant: blue` is `{ tenant: 'blue' }`. */
export const METADATA_PREFIX = 'avrpc-md-';

/** A W3C Trace Context header: the call metadata tracing reads, as an OpenTelemetry HTTP client sends it (compared, not hashed: every header of every request asks). */
const isTraceHeader = (name: string): boolean => name.charCodeAt(0) === 0x74 && (name === 'traceparent' || name === 'tracestate');

/**
 * The call metadata of a request's `avrpc-md-*` headers, and its W3C `traceparent`/`tracestate`
 * headers under their own names (so a traced HTTP caller's trace goes on in the server's spans; an
 * `avrpc-md-traceparent` wins). RESOURCE_EXHAUSTED over `maxBytes` (keys and values).
 */
export function metadataOf(headers: IncomingHttpHeaders, maxBytes: number): Metadata {
  let out: Record<string, string> | undefined;
  let bytes = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const prefixed = name.startsWith(METADATA_PREFIX);
    if (!prefixed && !isTraceHeader(name)) continue;
    const key = prefixed ? name.slice(METADATA_PREFIX.length) : name;
    const v = Array.isArray(value) ? value.join(', ') : value;
    bytes += Buffer.byteLength(key) + Buffer.byteLength(v);
    if (bytes > maxBytes) throw new RpcError(Code.RESOURCE_EXHAUSTED, `request metadata exceeds maxMetadataBytes (${maxBytes})`);
    out ??= {};
    if (prefixed || out[key] === undefined) out[key] = v;
  }
  return out ?? EMPTY;
}

const EMPTY: Metadata = Object.freeze({});

/** grpc-timeout units, in ms. */
const UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * The call's deadline (epoch ms) from `avrpc-timeout-ms: <ms>` or `grpc-timeout: <n><unit>`;
 * Infinity without either. INVALID_ARGUMENT for a value that does not read.
 */
export function deadlineOf(headers: IncomingHttpHeaders): number {
  const ms = headers['avrpc-timeout-ms'];
  if (typeof ms === 'string') {
    if (!/^\d{1,12}$/.test(ms.trim())) throw new RpcError(Code.INVALID_ARGUMENT, `avrpc-timeout-ms: not a number of ms: ${ms}`);
    return Date.now() + Number(ms.trim());
  }
  const grpc = headers['grpc-timeout'];
  if (typeof grpc === 'string') {
    const m = /^(\d{1,8})([HMSmun])$/.exec(grpc.trim());
    if (m === null) throw new RpcError(Code.INVALID_ARGUMENT, `grpc-timeout: does not read: ${grpc}`);
    return Date.now() + Number(m[1]) * UNITS[m[2]!]!;
  }
  return Infinity;
}
