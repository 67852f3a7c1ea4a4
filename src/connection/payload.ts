import type avro from 'avsc';
import type { IncomingResponse } from '../codec/peer-codec.js';
import type { MessageDef } from '../codec/protocol.js';
import { Code, errorCode } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { readErrorHead } from '../framing/bodies.js';
import { Flag } from '../framing/frame.js';

/**
 * Decodes an Avro value that must fill `body` from `offset` to its end: a short or over-long payload
 * is malformed, never silently accepted. Throws on malformed input.
 */
export function decodeExact(type: avro.Type, body: Buffer, offset: number, resolver: avro.Resolver | undefined): unknown {
  const r = type.decode(body, offset, resolver);
  if (r.offset !== body.length) throw new Error(r.offset < 0 ? 'truncated payload' : 'trailing bytes after payload');
  return r.value;
}

/**
 * Decodes a declared error (a value of the message's error union) and unwraps it, so the caller sees
 * the error record itself whatever union representation avsc chose.
 */
export function decodeDeclared(errors: avro.Type, body: Buffer, offset: number, resolver: avro.Resolver | undefined): unknown {
  const value = decodeExact(errors, body, offset, resolver);
  if (errors.typeName === 'union:wrapped' && value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 1) return (value as Record<string, unknown>)[keys[0]!];
  }
  return value;
}

/**
 * Finds the branch of a message's error union that `thrown` is a valid value of (skipping the
 * implicit `string` branch), and returns the value to encode with the union type, or `undefined`.
 */
export function matchDeclared(errors: avro.Type, thrown: unknown): unknown {
  if (thrown === null || typeof thrown !== 'object') return undefined;
  const branches = (errors as unknown as { types: avro.Type[] }).types;
  for (const branch of branches) {
    if (branch.typeName === 'string' || !branch.isValid(thrown)) continue;
    if (errors.typeName === 'union:wrapped') return { [branch.branchName!]: thrown };
    return thrown;
  }
  return undefined;
}

/**
 * The `RpcError` an ERROR frame carries (code, message, metadata, and for a call's declared error its
 * value in `details`), or an INTERNAL one saying why the frame could not be read.
 */
export function readRemoteError(flags: number, body: Buffer, msg: MessageDef | undefined, reading: IncomingResponse | undefined): RpcError {
  try {
    const head = readErrorHead(flags, body);
    let details: unknown;
    // When the server's error union cannot be resolved into ours, keep its code and message only.
    if (msg !== undefined && (flags & Flag.DECLARED) !== 0 && !(reading!.incompatible !== undefined && reading!.errors === undefined)) {
      details = decodeDeclared(msg.errors, body, head.offset, reading!.errors);
    }
    return new RpcError(errorCode(head.code), head.message, { isRemote: true, metadata: head.metadata, details });
  } catch (err) {
    return new RpcError(Code.INTERNAL, `cannot decode error frame: ${(err as Error).message}`, { cause: err });
  }
}
