/**
 * The client's type when an API type from `avrpc gen` is given (`createClient<EchoApi>`): each method
 * takes only the names of messages of its kind, checks the request's fields and types the result.
 * Types only; the object is the same as an untyped client's.
 */
import type { CallResultOf, Elements, MessagesOf, RequestOf, ResponseOf } from '../codec/api-types.js';
import type { CallOptions } from './client-options.js';
import type { ResponseStream } from './client-stream.js';
import type { EndpointStats } from './pool.js';

/**
 * A client typed by `Api`. The methods behave as those of the untyped client (see `Client`); a call
 * rejects with an `RpcError`, whose declared errors `CallError<Api, M>` describes.
 */
export interface TypedClient<Api> {
  /** Calls a unary or one-way message with its request record; resolves with its response. */
  call<M extends MessagesOf<Api, 'unary' | 'oneWay'>>(
    message: M,
    request: RequestOf<Api, M>,
    options?: CallOptions,
  ): Promise<CallResultOf<Api, M>>;
  /** Like `call`, with the request as its Avro bytes and the response returned as bytes, undecoded. */
  callRaw(message: MessagesOf<Api, 'unary' | 'oneWay'>, request: Uint8Array, options?: CallOptions): Promise<Buffer>;
  /** Opens a server stream: one request, the responses as they come. */
  serverStream<M extends MessagesOf<Api, 'server'>>(
    message: M,
    request: RequestOf<Api, M>,
    options?: CallOptions,
  ): ResponseStream<ResponseOf<Api, M>>;
  /** Opens a client stream: sends `requests` as the server takes them; resolves with the one response. */
  clientStream<M extends MessagesOf<Api, 'client'>>(
    message: M,
    requests: Elements<RequestOf<Api, M>>,
    options?: CallOptions,
  ): Promise<ResponseOf<Api, M>>;
  /** Opens a bidi stream: `requests` go out as the server takes them, the responses come as they are sent. */
  bidiStream<M extends MessagesOf<Api, 'bidi'>>(
    message: M,
    requests: Elements<RequestOf<Api, M>>,
    options?: CallOptions,
  ): ResponseStream<ResponseOf<Api, M>>;
  /** Stops taking calls, waits for calls in flight, and closes every socket. */
  close(): Promise<void>;
  /** The pool's state per endpoint right now: sockets, calls in flight, latency, ejection. */
  stats(): EndpointStats[];
}
