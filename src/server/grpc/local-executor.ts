/**
 * A stand-in for `executeCall` (src/server/call-executor.ts) until that lands: runs one unary call
 * through `authorize` and the chained handler, with the deadline scope, and normalizes its outcome.
 */
import type { MessageDef } from '../../codec/protocol.js';
import { Code, errorCode } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import { callHook } from '../../util/call-hook.js';
import { callScope, scopeWanted } from '../../util/call-scope.js';
import type { CallContext } from '../call-context.js';
import { errorDraftFor } from '../error-reply.js';
import type { ServerShared } from '../server-shared.js';

/** Outcome of a call: its response, or the error the caller sees. */
export type CallOutcome = { ok: true; value: unknown } | { ok: false; error: RpcError };

/** Runs one unary or one-way call of `msg` for a non-avrpc transport. Never rejects. */
export async function executeCall(shared: ServerShared, msg: MessageDef, request: unknown, ctx: CallContext): Promise<CallOutcome> {
  const o = shared.options;
  const handler = o.handlers[msg.index];
  try {
    if (handler === undefined) throw new RpcError(Code.UNIMPLEMENTED, `message ${msg.name} has no handler`);
    if (o.authorize !== undefined) {
      const allowed = await callHook(() => o.authorize!(ctx.peer.principal, msg.name, ctx.metadata)).catch(() => false);
      if (allowed !== true) throw new RpcError(Code.PERMISSION_DENIED, `not allowed to call ${msg.name}`);
    }
    const scoped = o.propagateDeadlines && scopeWanted.value;
    const value: unknown = await (scoped ? callScope.run(ctx, handler, request, ctx) : handler(request, ctx));
    return { ok: true, value: value === undefined && msg.response.typeName === 'null' ? null : value };
  } catch (thrown) {
    const draft = errorDraftFor(msg, thrown);
    const error = new RpcError(errorCode(draft.code), draft.message, {
      ...(draft.metadata === undefined ? {} : { metadata: draft.metadata }),
      ...(draft.declared === undefined ? {} : { details: draft.declared.value }),
    });
    return { ok: false, error };
  } finally {
    ctx.finish();
  }
}
