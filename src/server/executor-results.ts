/**
 * The call executor's results (call-executor.ts): a handler's value or throw as an outcome (as an
 * avrpc session would send it), a worker's reply read back, a stream's responses pulled into the
 * transport's sink, and a client or bidi stream's request bytes decoded as its handler takes them.
 */
import { describeInvalid } from '../codec/invalid-value.js';
import type { MessageDef } from '../codec/protocol.js';
import { isElementSource } from '../connection/element-pump.js';
import { decodeExact, matchDeclared } from '../connection/payload.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { CallContext } from './call-context.js';
import { errorDraftFor } from './error-reply.js';
import { OffloadReply } from './offload/offload-task.js';
import { replyOutcome, type CallOutcome } from './offload-outcome.js';
import type { ServerShared } from './server-shared.js';

/** A failed outcome. */
export function failed(error: RpcError): CallOutcome {
  return { ok: false, error };
}

/**
 * A handler's value: checked against the response type (`undefined` is a `null` message's null); a
 * worker's reply read back.
 */
export function answered(shared: ServerShared, msg: MessageDef, value: unknown, ctx: CallContext): CallOutcome {
  if (ctx.cancelled) return failed(ctx.cancelReason!);
  if (value instanceof OffloadReply) return logged(shared, msg, ctx, replyOutcome(msg, value, ctx), value);
  if (msg.oneWay) return { ok: true, value: null };
  const v = value === undefined && msg.response.typeName === 'null' ? null : value;
  if (msg.response.isValid(v)) return { ok: true, value: v };
  const invalid = new RpcError(
    Code.INTERNAL,
    `handler of ${msg.name} returned an invalid response: ${describeInvalid(msg.response, v, 'response') ?? 'does not fit the type'}`,
  );
  shared.options.logger.error({ err: invalid, message: msg.name, peer: ctx.peer }, 'handler returned an invalid response');
  return failed(invalid);
}

/** What a handler threw, as the avrpc session would send it (declared errors kept, INTERNAL logged). */
export function thrown(shared: ServerShared, msg: MessageDef, err: unknown, ctx: CallContext): CallOutcome {
  if (ctx.cancelled) return failed(ctx.cancelReason!);
  // A worker's stream failed: its ERROR is encoded already.
  if (err instanceof OffloadReply) return logged(shared, msg, ctx, replyOutcome(msg, err, ctx), err);
  const draft = errorDraftFor(msg, err);
  const code = draft.code as Code;
  if (code === Code.INTERNAL) shared.options.logger.error({ err, message: msg.name, peer: ctx.peer }, 'handler failed');
  const source = err instanceof RpcError ? err.details : err;
  const match =
    draft.declared === undefined ? undefined : matchDeclared(msg.errors, source, err instanceof RpcError ? err.errorType : undefined);
  const metadata = draft.metadata;
  return failed(
    new RpcError(code, draft.message, {
      cause: err,
      ...(metadata === undefined ? {} : { metadata }),
      ...(match === undefined ? {} : { details: source, errorType: match.branch.name ?? match.branch.typeName }),
    }),
  );
}

/** A worker's INTERNAL failure goes to our log with its stack, as sessions log it (call-reply.ts). */
function logged(shared: ServerShared, msg: MessageDef, ctx: CallContext, outcome: CallOutcome, reply: OffloadReply): CallOutcome {
  if (!outcome.ok && outcome.error.code === Code.INTERNAL)
    shared.options.logger.error({ err: reply.cause, message: msg.name, peer: ctx.peer }, 'handler failed in a worker');
  return outcome;
}

/**
 * Pulls a stream's responses into `sink`, one at a time, until it ends, fails, or the call is
 * cancelled. `validate`: each is checked against the element type first (a worker's bytes are not).
 */
export async function produce(
  shared: ServerShared,
  msg: MessageDef,
  source: unknown,
  ctx: CallContext,
  sink: (element: unknown) => void | Promise<void>,
  validate: boolean,
): Promise<CallOutcome> {
  if (!isElementSource(source))
    return failed(new RpcError(Code.INTERNAL, `handler of ${msg.name} must return an AsyncIterable of responses (an async generator)`));
  const s = source as AsyncIterable<unknown> & Iterable<unknown>;
  const it = (typeof s[Symbol.asyncIterator] === 'function' ? s[Symbol.asyncIterator]() : s[Symbol.iterator]()) as
    AsyncIterator<unknown> | Iterator<unknown>;
  try {
    for (;;) {
      if (ctx.cancelled) return failed(ctx.cancelReason!);
      const next = await it.next();
      if (next.done === true) return { ok: true, value: null };
      if (validate && !msg.response.isValid(next.value)) {
        const e = new RpcError(
          Code.INTERNAL,
          `handler of ${msg.name} produced an invalid response: ${describeInvalid(msg.response, next.value, 'response') ?? 'does not fit the type'}`,
        );
        shared.options.logger.error({ err: e, message: msg.name, peer: ctx.peer }, 'handler produced an invalid response');
        return failed(e);
      }
      await sink(next.value);
    }
  } catch (err) {
    return thrown(shared, msg, err, ctx);
  } finally {
    // Ended early (cancel, sink failure): the generator's finally blocks run.
    void Promise.resolve(it.return?.()).catch(() => undefined);
  }
}

/**
 * A client or bidi stream's requests for an inline handler: each element's bytes decoded as the
 * handler takes it. One that does not decode cancels the call INVALID_ARGUMENT (as a session's
 * `streamFailed` does), which the handler's `for await` throws too.
 */
export function decodedElements(msg: MessageDef, source: AsyncIterable<Buffer> | undefined, ctx: CallContext): AsyncIterable<unknown> {
  const it = source?.[Symbol.asyncIterator]();
  const done: IteratorResult<unknown> = { done: true, value: undefined };
  const elements: AsyncIterableIterator<unknown> = {
    [Symbol.asyncIterator]: () => elements,
    async next() {
      if (it === undefined) return done;
      if (ctx.cancelled) throw ctx.cancelReason;
      const r = await it.next();
      if (r.done === true) return done;
      try {
        return { done: false, value: decodeExact(msg.request, r.value, 0, undefined) };
      } catch (err) {
        const e = new RpcError(Code.INVALID_ARGUMENT, `cannot decode request element of ${msg.name}: ${(err as Error).message}`);
        ctx.cancel(e);
        throw e;
      }
    },
    async return() {
      await it?.return?.();
      return done;
    },
  };
  return elements;
}
