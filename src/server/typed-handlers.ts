/**
 * The handler types of a server typed by a generated API type (`createServer<EchoApi>`): one handler
 * per message, whose parameters and result follow the message's kind, request and response.
 */
import type { Elements } from '../codec/api-types.js';
import type { CallContext } from './call-context.js';

/** A value, or a promise of it. */
type Awaitable<T> = T | PromiseLike<T>;

/** The handler of one message of kind `S['kind']`, with its request and response types. */
export type HandlerOf<S> = S extends { kind: infer K; request: infer Req; response: infer Res }
  ? K extends 'unary'
    ? (request: Req, ctx: CallContext) => Awaitable<Res | (null extends Res ? void : never)>
    : K extends 'oneWay'
      ? (request: Req, ctx: CallContext) => Awaitable<unknown>
      : K extends 'server'
        ? (request: Req, ctx: CallContext) => Awaitable<Elements<Res>>
        : K extends 'client'
          ? (requests: AsyncIterable<Req>, ctx: CallContext) => Awaitable<Res>
          : K extends 'bidi'
            ? (requests: AsyncIterable<Req>, ctx: CallContext) => Awaitable<Elements<Res>>
            : never
  : never;

/** The handlers of a typed server: exactly one per message of `Api`, each with its message's types. */
export type HandlersOf<Api> = { [M in keyof Api]: HandlerOf<Api[M]> };
