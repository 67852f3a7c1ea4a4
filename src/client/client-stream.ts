import { invalidRequest } from '../codec/invalid-value.js';
import type { MessageDef, StreamKind } from '../codec/protocol.js';
import { ElementPump, type ElementSink, type ElementSource } from '../connection/element-pump.js';
import { ElementQueue, type ElementQueueOwner } from '../connection/element-queue.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Metadata } from '../framing/bodies.js';
import type { BodyWriter } from '../framing/frame-encoder.js';
import { observeElement, type RpcObserver } from '../observability/observer.js';
import { CallHooks, type MetadataHook } from './call-hooks.js';
import type { ClientCall } from './call-table.js';

/** The responses of a server or bidi stream, with the server's headers and trailers. */
export interface ResponseStream<T> extends AsyncIterable<T> {
  /** The server's response headers: resolves when they arrive, or with {} at the first element or the end if none came. Never rejects. */
  readonly headers: Promise<Metadata>;
  /** The trailers: resolves when the stream ends (END's trailers, or the ERROR's metadata; {} otherwise). Never rejects. */
  readonly trailers: Promise<Metadata>;
}

/** How a stream writes its frames: the session of its current attempt (`ClientSession`). */
export interface StreamWire {
  /** One request element: a DATA frame. Throws, appending nothing, when `write` throws. */
  data(id: number, value: object, write: BodyWriter<object>): void;
  /** Our half-close: an empty END. */
  end(id: number): void;
  /** The consumer took `n` elements: CREDIT `n`. */
  credit(id: number, n: number): void;
}

/** Who can take a call back (the `CallRunner`): CANCEL to the server, the call rejects with `error`. */
export interface StreamOwner {
  abandon(call: ClientCall, error: RpcError): void;
}

/**
 * The state of one client stream (SPEC.md section 13) beside its `ClientCall`: the responses received
 * and not yet taken (an `ElementQueue`, which returns CREDIT as the consumer takes them), the caller's
 * requests pumped out under the server's credit (an `ElementPump`), and the headers and trailers
 * promises. The session reports frames here; the call's end (END, RESPONSE, ERROR, cancel, deadline,
 * connection loss) ends it all at once.
 */
export class ClientStream extends CallHooks implements ElementQueueOwner, ElementSink<object> {
  /** Responses of a server or bidi stream; none for a client stream (its response settles the call). */
  readonly queue: ElementQueue<unknown> | undefined;
  readonly headers: Promise<Metadata>;
  readonly trailers: Promise<Metadata>;
  /** DATA received and not yet credited back: never more than {@link window} (the session checks). */
  outstanding = 0;
  private pump: ElementPump<object> | undefined = undefined;
  private call: ClientCall | undefined = undefined;
  private owner: StreamOwner | undefined = undefined;
  private wire: StreamWire | undefined = undefined;
  private wireId = 0;
  private iterated = false;
  private resolveHeaders!: (h: Metadata) => void;
  private resolveTrailers!: (t: Metadata) => void;
  /** Encodes one request element (a DATA body) with the message's request record. */
  private readonly writeElement: BodyWriter<object>;

  constructor(
    readonly msg: MessageDef,
    readonly kind: StreamKind,
    /** The caller's requests (client, bidi streams). */
    private readonly requests: ElementSource<object> | undefined,
    /** Our `S`: responses buffered before the consumer takes them. */
    readonly window: number,
    private readonly observer: RpcObserver | undefined,
    onHeader: MetadataHook | undefined,
    onTrailer: MetadataHook | undefined,
  ) {
    super(onHeader, onTrailer);
    this.queue = kind === 'client' ? undefined : new ElementQueue<unknown>(this, window);
    this.headers = new Promise((resolve) => (this.resolveHeaders = resolve));
    this.trailers = new Promise((resolve) => (this.resolveTrailers = resolve));
    const type = msg.request;
    this.writeElement = (value, buf, pos) => type.encode(value, buf, pos);
  }

  /** The call this stream belongs to, and who can cancel it. */
  attach(call: ClientCall, owner: StreamOwner): void {
    this.call = call;
    this.owner = owner;
  }

  /**
   * The REQUEST of an attempt went out on `wire` as `id` with the server's credit `peerWindow`: the
   * requests of a client or bidi stream start flowing (DATA may follow the REQUEST at once).
   */
  started(wire: StreamWire, id: number, peerWindow: number): void {
    this.wire = wire;
    this.wireId = id;
    if (this.requests === undefined || this.pump !== undefined) return;
    // From the first pull on, the caller's iterable has given something up: no retry replays it.
    this.touched = true;
    this.pump = new ElementPump(this.requests, peerWindow, this);
    this.pump.start();
  }

  /** CREDIT from the server: more request elements may go. */
  granted(n: number): void {
    this.pump?.grant(n);
  }

  /** A response element arrived, `bytes` long (the session checked the window and decoded it). */
  received(value: unknown, bytes = 0): void {
    this.touched = true;
    this.outstanding++;
    if (!this.headersDelivered) this.gotHeaders({});
    if (this.observer !== undefined) observeElement(this.observer, this.msg.name, 'received', this.call?.info);
    this.queue!.push(value, bytes);
  }

  override gotHeaders(headers: Metadata): void {
    this.touched = true;
    super.gotHeaders(headers);
  }

  /** The public face: iterable once; `headers` and `trailers` never reject. */
  responses<T>(): ResponseStream<T> {
    const iterate = (): AsyncIterator<T> => {
      if (this.iterated) throw new RpcError(Code.FAILED_PRECONDITION, `the response stream of ${this.msg.name} can be iterated only once`);
      this.iterated = true;
      return this.queue as ElementQueue<T>;
    };
    return { headers: this.headers, trailers: this.trailers, [Symbol.asyncIterator]: iterate };
  }

  protected override deliverHeaders(headers: Metadata): void {
    super.deliverHeaders(headers);
    this.resolveHeaders(headers);
  }

  protected override deliverTrailers(trailers: Metadata, error: RpcError | undefined): void {
    // The server answered (or the call is over): pull nothing more from the caller, send nothing more.
    this.pump?.stop();
    this.wire = undefined;
    super.deliverTrailers(trailers, error);
    this.resolveTrailers(trailers);
    if (error === undefined) this.queue?.end();
    else this.queue?.fail(error);
  }

  // ElementSink: the request elements of the current attempt.

  send(value: object): void {
    const wire = this.wire;
    if (wire === undefined) return;
    try {
      wire.data(this.wireId, value, this.writeElement);
    } catch (err) {
      // Over the server's advertised limits (RESOURCE_EXHAUSTED), else a value the schema cannot encode.
      throw err instanceof RpcError && err.code === Code.RESOURCE_EXHAUSTED ? err : invalidRequest(this.msg, value, err)!;
    }
    if (this.observer !== undefined) observeElement(this.observer, this.msg.name, 'sent', this.call?.info);
  }

  end(): void {
    this.wire?.end(this.wireId);
  }

  fail(error: unknown): void {
    // The caller's iterable threw, or an element did not encode: the stream is cancelled with that error.
    const e = error instanceof RpcError ? error : RpcError.from(error, Code.CANCELLED);
    if (this.call !== undefined) this.owner!.abandon(this.call, e);
  }

  /** Cancels the stream with `error` (the client is closing): the server is told, the caller gets the error. */
  cancel(error: RpcError): void {
    if (this.call !== undefined) this.owner!.abandon(this.call, error);
  }

  // ElementQueueOwner: the consumer of the responses.

  credit(n: number): void {
    this.outstanding -= n;
    this.wire?.credit(this.wireId, n);
  }

  abandoned(): void {
    if (this.call !== undefined)
      this.owner!.abandon(this.call, new RpcError(Code.CANCELLED, `stream ${this.msg.name} cancelled: the consumer stopped`));
  }
}
