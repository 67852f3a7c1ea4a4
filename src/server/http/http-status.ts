import { Code } from '../../errors/code.js';

/** HTTP status of each code, as grpc-gateway maps gRPC codes (runtime/errors.go HTTPStatusFromCode). */
const STATUS: Record<number, number> = {
  [Code.OK]: 200,
  [Code.CANCELLED]: 499,
  [Code.UNKNOWN]: 500,
  [Code.INVALID_ARGUMENT]: 400,
  [Code.DEADLINE_EXCEEDED]: 504,
  [Code.NOT_FOUND]: 404,
  [Code.ALREADY_EXISTS]: 409,
  [Code.PERMISSION_DENIED]: 403,
  [Code.UNAUTHENTICATED]: 401,
  [Code.RESOURCE_EXHAUSTED]: 429,
  [Code.FAILED_PRECONDITION]: 400,
  [Code.ABORTED]: 409,
  [Code.OUT_OF_RANGE]: 400,
  [Code.UNIMPLEMENTED]: 501,
  [Code.INTERNAL]: 500,
  [Code.UNAVAILABLE]: 503,
  [Code.DATA_LOSS]: 500,
};

/** The HTTP status an error of `code` answers with. */
export function httpStatus(code: number): number {
  return STATUS[code] ?? 500;
}

/** Methods an HTTP/1.1 request line may start with, as the first bytes of a connection. */
const METHODS = ['GET ', 'POST ', 'HEAD ', 'PUT ', 'OPTIONS ', 'DELETE ', 'PATCH '].map((m) => Buffer.from(m, 'latin1'));

/**
 * Whether a connection's first bytes start an HTTP request: an avrpc connection starts with its
 * preface, whose first byte is none of these letters. Looks at no more than 8 bytes.
 */
export function looksLikeHttp(first: Buffer): boolean {
  const c = first[0];
  // Cheap first: every method starts with one of these upper-case letters.
  if (c !== 0x47 && c !== 0x50 && c !== 0x48 && c !== 0x4f && c !== 0x44) return false;
  for (const m of METHODS) {
    const n = Math.min(m.length, first.length);
    if (first.subarray(0, n).equals(m.subarray(0, n))) return true;
  }
  return false;
}
