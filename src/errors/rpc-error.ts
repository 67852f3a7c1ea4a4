import { Code, codeName, isCode } from './code.js';

/** Options of {@link RpcError}: all optional. */
export interface RpcErrorOptions {
  /** The underlying error (a socket error, a handler's exception). */
  cause?: unknown;
  /** Metadata attached to the error (string keys and values). */
  metadata?: Readonly<Record<string, string>>;
  /** True when the error was produced by the peer and received over the wire. */
  isRemote?: boolean;
  /** The value of a declared Avro error (the message's `throws` clause), when there is one. */
  details?: unknown;
  /**
   * The full schema name of the declared error `details` holds, e.g. `'avrpc.echo.EchoError'`. On a
   * server it says which branch of the message's error union to encode `details` as (two error types
   * with the same fields are otherwise told apart by declaration order only); a name the union lacks,
   * or `details` that do not fit it, fall back to the first branch `details` fit.
   */
  errorType?: string;
  /** False when the call certainly did not run on any server (see {@link RpcError.mayHaveRun}). Default true. */
  mayHaveRun?: boolean;
}

/** Marks every RpcError, whichever copy of avrpc made it (a registry-wide symbol: two installs share it). */
const BRAND = Symbol.for('avrpc.RpcError');

/**
 * The one error type every failure a caller can see is reported with. `code` is one of {@link Code}.
 * Errors from the peer have `isRemote: true`; declared Avro errors carry their decoded value in
 * `details` and their schema's full name in `errorType`. The type parameters are for typed clients
 * (`RpcError<'avrpc.echo.EchoError', EchoError>`); both default to "any declared error or none".
 */
export class RpcError<T extends string | undefined = string | undefined, D = unknown> extends Error {
  /** The status code, one of {@link Code}. */
  readonly code: Code;
  /** Metadata attached to the error; an empty object when there is none. */
  readonly metadata: Readonly<Record<string, string>>;
  /** True when the peer produced this error. */
  readonly isRemote: boolean;
  /** Decoded value of a declared Avro error, or `undefined`. */
  readonly details: D;
  /**
   * The full schema name of the declared error in {@link details}, e.g. `'avrpc.echo.EchoError'`:
   * set by the client from the union branch it decoded; `undefined` when `details` holds no declared value.
   */
  readonly errorType: T;
  /**
   * Whether a handler may have run for the call that failed: false only when avrpc knows that no
   * attempt of it ran on any server (never written, refused before dispatch with the REFUSED flag,
   * withdrawn after GOAWAY), so even a non-idempotent call is safe to send again. True otherwise,
   * and for errors that belong to no call.
   */
  readonly mayHaveRun: boolean;

  constructor(code: Code, message: string, options: RpcErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.metadata = options.metadata ?? EMPTY;
    this.isRemote = options.isRemote ?? false;
    this.details = options.details as D;
    // A constructor never throws over its options: anything but a string is no name.
    this.errorType = (typeof options.errorType === 'string' ? options.errorType : undefined) as T;
    this.mayHaveRun = options.mayHaveRun ?? true;
    (this as unknown as Record<symbol, true>)[BRAND] = true;
  }

  /**
   * `err instanceof RpcError` holds for an RpcError made by another copy of avrpc too (two versions in
   * one dependency tree, a bundled copy): it checks a shared brand, not the prototype chain.
   */
  static [Symbol.hasInstance](value: unknown): value is RpcError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  override get name(): string {
    return `RpcError[${codeName(this.code)}]`;
  }

  /** This error with {@link mayHaveRun} set to `mayHaveRun` (itself when it already says so). */
  withMayHaveRun(mayHaveRun: boolean): RpcError<T, D> {
    if (this.mayHaveRun === mayHaveRun) return this;
    const copy = new RpcError<T, D>(this.code, this.message, {
      cause: this.cause,
      metadata: this.metadata,
      isRemote: this.isRemote,
      details: this.details,
      errorType: this.errorType,
      mayHaveRun,
    });
    copy.stack = this.stack;
    return copy;
  }

  /** The code's name, e.g. `'DEADLINE_EXCEEDED'`. */
  get codeName(): string {
    return codeName(this.code);
  }

  /**
   * Normalises anything thrown into an `RpcError`: an `RpcError` is returned as is, a Node system
   * error is mapped by {@link fromNodeError}, anything else becomes `fallback` (INTERNAL by default)
   * with the original as `cause`.
   */
  static from(err: unknown, fallback: Code = Code.INTERNAL): RpcError {
    if (err instanceof RpcError) return err;
    if (isSystemError(err)) return fromNodeError(err);
    return new RpcError(fallback, thrownMessage(err), { cause: err });
  }
}

/**
 * The text of anything thrown: an Error's message, an object's string `message`, else its string
 * form. Never throws itself (a null-prototype object or a throwing `toString` cannot be converted).
 */
export function thrownMessage(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === 'object' && thrown !== null) {
    const message = (thrown as { message?: unknown }).message;
    if (typeof message === 'string') return message;
  }
  try {
    return String(thrown);
  } catch {
    return Object.prototype.toString.call(thrown);
  }
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

interface SystemError extends Error {
  code: string;
}

function isSystemError(err: unknown): err is SystemError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string';
}

/** Node error codes that mean "the peer cannot be reached or went away": retry elsewhere or later. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'ERR_SOCKET_CLOSED',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_WRITE_AFTER_END',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/** Node error codes of a process out of descriptors, buffers or memory. */
const EXHAUSTED_CODES = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

/**
 * TLS alerts by which the peer refuses the certificate we presented (or the lack of one): OpenSSL's
 * "alert received" errors, e.g. ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED from a server that requires
 * a client certificate. Our own refusal of the peer's certificate has a verification code instead.
 */
const REFUSED_CERTIFICATE =
  /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(?:CERTIFICATE_\w+|BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|UNKNOWN_CA|ACCESS_DENIED)$/;

/**
 * The one place Node socket and TLS errors are mapped to codes: unreachable or dropped peers are
 * UNAVAILABLE, certificate failures UNAVAILABLE too (as gRPC does) except a peer's refusal of our
 * certificate, which is UNAUTHENTICATED (no retry fixes it: like refused credentials), no
 * descriptors or memory left RESOURCE_EXHAUSTED, EACCES/EPERM (e.g. listening on a privileged port)
 * PERMISSION_DENIED, anything else INTERNAL.
 */
export function fromNodeError(err: Error & { code?: unknown }): RpcError {
  const nodeCode = typeof err.code === 'string' ? err.code : '';
  if (isCode(err.code)) return new RpcError(err.code, err.message, { cause: err });
  let code: Code = Code.INTERNAL;
  if (REFUSED_CERTIFICATE.test(nodeCode)) code = Code.UNAUTHENTICATED;
  else if (UNAVAILABLE_CODES.has(nodeCode)) code = Code.UNAVAILABLE;
  else if (EXHAUSTED_CODES.has(nodeCode)) code = Code.RESOURCE_EXHAUSTED;
  else if (nodeCode === 'EACCES' || nodeCode === 'EPERM') code = Code.PERMISSION_DENIED;
  else if (
    nodeCode.startsWith('ERR_TLS') ||
    nodeCode.startsWith('ERR_SSL') ||
    nodeCode.includes('CERT') ||
    // OpenSSL verification codes such as UNABLE_TO_VERIFY_LEAF_SIGNATURE (a server from an untrusted CA).
    nodeCode.startsWith('UNABLE_TO_') ||
    nodeCode === 'HOSTNAME_MISMATCH'
  ) {
    code = Code.UNAVAILABLE;
  }
  const detail = nodeCode && !err.message.includes(nodeCode) ? `${nodeCode}: ${err.message}` : err.message;
  if (code === Code.UNAUTHENTICATED) return new RpcError(code, `TLS certificate refused by the peer (${detail.trim()})`, { cause: err });
  // Only an unreachable or dropped peer is a failed connection; EADDRINUSE from listen() is not.
  return new RpcError(code, code === Code.UNAVAILABLE ? `connection failed (${detail})` : detail, { cause: err });
}
