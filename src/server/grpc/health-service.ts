/**
 * The standard gRPC health service, `grpc.health.v1.Health/Check` (grpc/grpc-proto health.proto), as
 * grpc_health_probe and Kubernetes gRPC probes call it. Its two messages are tiny protobuf records,
 * encoded here by hand so the bridge needs no protobuf library:
 *   HealthCheckRequest  { string service = 1; }
 *   HealthCheckResponse { ServingStatus status = 1; }   UNKNOWN 0, SERVING 1, NOT_SERVING 2
 */
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';

/** The method path of the health check. */
export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

/** `HealthCheckResponse.ServingStatus` values. */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2 } as const;

/** Longest service name read from a request: names are short; a longer one is refused, not scanned. */
const MAX_SERVICE_BYTES = 1024;

/** Reads a base-128 varint at `pos`: [value, next position]; throws on a truncated or over-long one. */
function readVarint(buf: Buffer, pos: number): [number, number] {
  let value = 0;
  for (let shift = 0; shift < 64; shift += 7) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++]!;
    // Only lengths and enum values are kept: past 2^49 precision does not matter, only the position does.
    if (shift < 49) value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, pos];
  }
  throw new Error('varint longer than 10 bytes');
}

/**
 * The `service` field of a HealthCheckRequest (empty when absent: the whole server). Unknown fields
 * are skipped as protobuf requires; a malformed message throws INVALID_ARGUMENT.
 */
export function decodeHealthRequest(buf: Buffer): string {
  let service = '';
  let pos = 0;
  try {
    while (pos < buf.length) {
      let key: number;
      [key, pos] = readVarint(buf, pos);
      const field = Math.floor(key / 8);
      const wire = key % 8;
      if (wire === 0) [, pos] = readVarint(buf, pos);
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) {
        let len: number;
        [len, pos] = readVarint(buf, pos);
        if (pos + len > buf.length) throw new Error('truncated field');
        if (field === 1) {
          if (len > MAX_SERVICE_BYTES) throw new Error(`service name over ${MAX_SERVICE_BYTES} bytes`);
          service = buf.toString('utf8', pos, pos + len);
        }
        pos += len;
      } else throw new Error(`wire type ${wire} not supported`);
      if (pos > buf.length) throw new Error('truncated field');
    }
  } catch (err) {
    throw new RpcError(Code.INVALID_ARGUMENT, `bad HealthCheckRequest: ${(err as Error).message}`);
  }
  return service;
}

/** A HealthCheckResponse with `status`: field 1 as a varint (proto3 leaves a zero out). */
export function encodeHealthResponse(status: number): Buffer {
  return status === 0 ? Buffer.alloc(0) : Buffer.from([0x08, status]);
}

/** The encoding of a HealthCheckRequest for `service`: for clients and tests. */
export function encodeHealthRequest(service: string): Buffer {
  if (service === '') return Buffer.alloc(0);
  const name = Buffer.from(service, 'utf8');
  const len: number[] = [];
  for (let n = name.length; ; n = Math.floor(n / 128)) {
    if (n < 128) {
      len.push(n);
      break;
    }
    len.push((n % 128) | 0x80);
  }
  return Buffer.concat([Buffer.from([0x0a, ...len]), name]);
}

/** The status of a HealthCheckResponse (UNKNOWN when absent). */
export function decodeHealthResponse(buf: Buffer): number {
  let pos = 0;
  let status = 0;
  while (pos < buf.length) {
    let key: number;
    [key, pos] = readVarint(buf, pos);
    if (key % 8 !== 0) throw new RpcError(Code.INTERNAL, 'bad HealthCheckResponse');
    let v: number;
    [v, pos] = readVarint(buf, pos);
    if (key === 0x08) status = v;
  }
  return status;
}

/**
 * What Check answers for `service`: the server's state for `''` and for the protocol's full name
 * (SERVING only while serving), NOT_FOUND for any other service, as health.proto asks.
 */
export function healthStatus(service: string, protocolName: string, serving: boolean): number {
  if (service !== '' && service !== protocolName) throw new RpcError(Code.NOT_FOUND, `unknown service ${JSON.stringify(service)}`);
  return serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
}
