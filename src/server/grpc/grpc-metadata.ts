/**
 * How gRPC metadata maps to avrpc's: request headers become the call's metadata (string values
 * only; reserved names stay out), the caller's `authorization: Bearer` token goes to `authenticate`,
 * and response headers, trailers and error metadata go back as gRPC metadata.
 */
import type { Metadata as GrpcMetadata } from '@grpc/grpc-js';
import type { Metadata } from '../../framing/bodies.js';

/** Names the transport owns: never handed to a handler as call metadata. */
const RESERVED = new Set(['content-type', 'te', 'user-agent', 'authorization', 'host']);

/** True for a header name the transport owns: `grpc-*`, pseudo-headers, HTTP/2 connection headers. */
export function reservedKey(key: string): boolean {
  return key.startsWith('grpc-') || key.startsWith(':') || RESERVED.has(key);
}

/**
 * The call metadata of a gRPC request: each non-reserved text header, its values joined by `, `
 * as HTTP joins repeated headers. Binary (`-bin`) headers have no place in avrpc's string metadata.
 */
export function callMetadata(md: GrpcMetadata): Metadata {
  const out: Record<string, string> = {};
  for (const [key, values] of Object.entries(md.toJSON())) {
    if (reservedKey(key) || key.endsWith('-bin')) continue;
    out[key] = values.map((v) => (typeof v === 'string' ? v : v.toString('utf8'))).join(', ');
  }
  return Object.freeze(out);
}

/** The token of an `authorization: Bearer <token>` header; undefined when there is none. */
export function bearerToken(md: GrpcMetadata): string | undefined {
  const value = md.get('authorization')[0];
  if (typeof value !== 'string') return undefined;
  const m = /^Bearer[ \t]+(\S.*?)[ \t]*$/i.exec(value);
  return m === null ? undefined : m[1];
}

/** Adds each entry of `from` to gRPC metadata `md` (reserved names skipped: grpc-js would refuse them or clash). */
export function addMetadata(md: GrpcMetadata, from: Readonly<Record<string, string>> | undefined): GrpcMetadata {
  if (from === undefined) return md;
  for (const [key, value] of Object.entries(from)) {
    const k = key.toLowerCase();
    if (reservedKey(k) || k.endsWith('-bin') || !/^[0-9a-z_.-]+$/.test(k)) continue;
    // Header values are printable ASCII: anything else would be refused by HTTP/2 or mangled.
    if (!/^[\x20-\x7e]*$/.test(value)) continue;
    md.add(k, value);
  }
  return md;
}

/** `{ address, port }` of a grpc-js peer string (`127.0.0.1:5000`, `[::1]:5000`). */
export function parsePeer(peer: string): { address: string; port: number } {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(peer);
  if (m === null) return { address: peer, port: 0 };
  return { address: m[1]!, port: Number(m[2]) };
}
