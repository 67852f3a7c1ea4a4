/**
 * The types that make a client and a server typed by a protocol: `avrpc gen` writes an API type per
 * protocol (`EchoApi`), `createClient<EchoApi>` and `createServer<EchoApi>` read it (the handler types
 * are in server/typed-handlers.ts). Types only: this module emits no code, and without a type
 * parameter the client and server stay untyped.
 */
import type { RpcError } from '../errors/rpc-error.js';

/** A message's kind: a unary call, a one-way call, or one of the three stream kinds (SPEC.md section 13). */
export type MessageKind = 'unary' | 'oneWay' | 'server' | 'client' | 'bidi';

/** One message as a generated API type describes it. */
export interface MessageSpec {
  /** The message's kind. */
  kind: MessageKind;
  /** The request record (parameters by name); for client and bidi streams, one request element. */
  request: object;
  /** The response (`null` for `void` and one-way messages); for server and bidi streams, one element. */
  response: unknown;
  /** The declared errors (`throws`) by full Avro schema name; `{}` when there are none. */
  errors: object;
}

/**
 * What an API type must be: an object type of {@link MessageSpec} by message name. Written as a
 * mapped self-constraint so that a generated `interface` qualifies (interfaces have no index signature).
 */
export type ApiShape<Api> = { [M in keyof Api]: MessageSpec };

/** The names of `Api`'s messages of one of `kinds`. */
export type MessagesOf<Api, Kinds extends MessageKind> = {
  [M in keyof Api]: Api[M] extends { kind: infer K } ? (K extends Kinds ? M : never) : never;
}[keyof Api] &
  string;

/** The request record of message `M`. */
export type RequestOf<Api, M extends keyof Api> = Api[M] extends { request: infer R } ? R : never;

/** The response of message `M` (one element for a stream). */
export type ResponseOf<Api, M extends keyof Api> = Api[M] extends { response: infer R } ? R : never;

/** What `client.call` resolves with for `M`: the response, or nothing for a one-way message. */
export type CallResultOf<Api, M extends keyof Api> = Api[M] extends { kind: 'oneWay' } ? void : ResponseOf<Api, M>;

/** The declared errors of message `M`, by full schema name. */
export type ErrorsOf<Api, M extends keyof Api> = Api[M] extends { errors: infer E } ? E : never;

/**
 * An `RpcError` carrying the declared error `Name` (its full Avro schema name in `errorType`) with
 * its value in `details`.
 */
export type DeclaredError<Name extends string, Value> = RpcError & { readonly errorType: Name; readonly details: Value };

/**
 * What a call to `M` can reject with, discriminated by `errorType`: one {@link DeclaredError} per
 * declared error of the message, or an `RpcError` that carries none (`errorType` undefined: a code
 * such as UNAVAILABLE or DEADLINE_EXCEEDED, or a plain handler failure).
 *
 * ```ts
 * catch (e) {
 *   const err = e as CallError<EchoApi, 'fail'>;
 *   if (err.errorType === 'avrpc.echo.EchoError') console.log(err.details.reason);
 * }
 * ```
 */
export type CallError<Api, M extends keyof Api> =
  | { [N in keyof ErrorsOf<Api, M> & string]: DeclaredError<N, ErrorsOf<Api, M>[N]> }[keyof ErrorsOf<Api, M> & string]
  | (RpcError & { readonly errorType: undefined; readonly details: undefined });

/** Elements a stream produces or takes: an async iterable (an async generator) or an iterable. */
export type Elements<T> = AsyncIterable<T> | Iterable<T>;
