import type { MessageDef } from '../codec/protocol.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { NO_METADATA, type Metadata } from '../framing/bodies.js';
import type { ResponseStream } from './client-stream.js';
import type { CallKind } from './interceptor.js';

/** The client method for each kind of message. */
const METHOD: Record<CallKind, string> = {
  unary: 'call',
  oneWay: 'call',
  server: 'serverStream',
  client: 'clientStream',
  bidi: 'bidiStream',
};

/**
 * The INVALID_ARGUMENT for a message used through the wrong method (`call` on a stream, `serverStream`
 * on a bidi stream...): refused locally, nothing sent.
 */
export function kindError(msg: MessageDef, used: CallKind): RpcError {
  const kind = msg.stream;
  const what = kind === undefined ? 'not a stream' : `a ${kind} stream`;
  const method = kind === undefined ? 'call' : METHOD[kind];
  return new RpcError(Code.INVALID_ARGUMENT, `message ${msg.name} is ${what}: use client.${method}, not client.${METHOD[used]}`, {
    mayHaveRun: false,
  });
}

/** A stream that failed before it started: iterating throws `error`; headers and trailers are `{}`. */
export function failedStream<T>(error: RpcError): ResponseStream<T> {
  let iterated = false;
  const empty = Promise.resolve(NO_METADATA);
  return {
    headers: empty,
    trailers: empty,
    [Symbol.asyncIterator](): AsyncIterator<T> {
      if (iterated) throw new RpcError(Code.FAILED_PRECONDITION, 'a response stream can be iterated only once');
      iterated = true;
      let thrown = false;
      return {
        next: () => {
          if (thrown) return Promise.resolve({ done: true, value: undefined });
          thrown = true;
          return Promise.reject(error);
        },
        return: () => Promise.resolve({ done: true, value: undefined }),
      };
    },
  };
}

/**
 * The response stream of a call through interceptors, which hand it over asynchronously (`next()`
 * resolves with it): a stream that forwards to it once it comes. Whatever an interceptor throws, or
 * resolves with instead of a stream, the iterator throws as an `RpcError`.
 */
export function deferredStream<T>(result: Promise<unknown>): ResponseStream<T> {
  const inner = result.then(
    (s) => {
      if (s === null || typeof s !== 'object' || typeof (s as Partial<ResponseStream<T>>)[Symbol.asyncIterator] !== 'function')
        throw new RpcError(Code.INTERNAL, 'a client interceptor resolved a stream with something other than its response stream');
      return s as ResponseStream<T>;
    },
    (err: unknown) => {
      throw RpcError.from(err);
    },
  );
  const metadata = (pick: (s: ResponseStream<T>) => Promise<Metadata>): Promise<Metadata> =>
    inner.then(
      (s) => Promise.resolve(pick(s)).then(undefined, () => NO_METADATA),
      () => NO_METADATA,
    );
  let iterated = false;
  return {
    headers: metadata((s) => s.headers),
    trailers: metadata((s) => s.trailers),
    [Symbol.asyncIterator](): AsyncIterator<T> {
      if (iterated) throw new RpcError(Code.FAILED_PRECONDITION, 'a response stream can be iterated only once');
      iterated = true;
      // yield* forwards return() (a break) to the inner stream, which cancels it.
      return (async function* () {
        yield* await inner;
      })();
    },
  };
}
