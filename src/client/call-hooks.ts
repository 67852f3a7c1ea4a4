import type { RpcError } from '../errors/rpc-error.js';
import { NO_METADATA, type Metadata } from '../framing/bodies.js';

/**
 * Receives the server's response headers or trailers of one call (`CallOptions.onHeader` / `onTrailer`);
 * trailers come with the call's error when it failed.
 */
export type MetadataHook = (metadata: Metadata, error?: RpcError) => void;

/**
 * The server's response headers and trailers of one call (SPEC.md section 13), for the caller's
 * `onHeader`/`onTrailer`; a stream's state extends it (`ClientStream`). Created only for calls that
 * want them, so a plain unary call allocates nothing here. The session reports what arrives; the call
 * reports its end once, with the final attempt's trailers.
 */
export class CallHooks {
  /** True once the headers were handed to the caller (those that came, or `{}`). */
  protected headersDelivered = false;
  /** Trailers of the current attempt, once they came (RESPONSE's METADATA map, END's, the ERROR's metadata). */
  private lastTrailers: Metadata | undefined = undefined;
  /**
   * True once the caller saw something of this call (an element, headers) or gave it something (a
   * request pulled from its iterable): a stream is then never sent again (see `CallRunner.attemptFailed`).
   */
  touched = false;

  constructor(
    private readonly onHeader: MetadataHook | undefined,
    private readonly onTrailer: MetadataHook | undefined,
  ) {}

  /** A HEADERS frame of the current attempt. Later ones (a retry's) are ignored: the caller hears once. */
  gotHeaders(headers: Metadata): void {
    if (this.headersDelivered) return;
    this.headersDelivered = true;
    this.deliverHeaders(headers);
  }

  /** The trailers of the current attempt arrived (they are handed over when the call ends). */
  gotTrailers(trailers: Metadata): void {
    this.lastTrailers = trailers;
  }

  /**
   * The call settled (`error` undefined: it succeeded): headers not yet handed over go as `{}`, then the
   * trailers (`{}` when none came). Runs before the caller sees the result.
   */
  ended(error: RpcError | undefined): void {
    if (!this.headersDelivered) {
      this.headersDelivered = true;
      this.deliverHeaders(NO_METADATA);
    }
    this.deliverTrailers(this.lastTrailers ?? NO_METADATA, error);
  }

  /** Hands the headers to the caller; a stream also resolves its `headers` promise. */
  protected deliverHeaders(headers: Metadata): void {
    if (this.onHeader !== undefined) callHook(this.onHeader, headers);
  }

  /** Hands the trailers to the caller at the end; a stream also resolves `trailers` and ends its iterator. */
  protected deliverTrailers(trailers: Metadata, error: RpcError | undefined): void {
    if (this.onTrailer !== undefined) callHook(this.onTrailer, trailers, error);
  }
}

/**
 * Runs a caller's hook. What it throws is dropped: it runs inside a frame handler of the connection,
 * which must go on serving the other calls, and the call's own outcome is unchanged by it.
 */
function callHook(hook: MetadataHook, metadata: Metadata, error?: RpcError): void {
  try {
    if (error === undefined) hook(metadata);
    else hook(metadata, error);
  } catch {
    // See above: the hook's failure is the caller's, not the call's.
  }
}
