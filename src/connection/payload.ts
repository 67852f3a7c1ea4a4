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

/** A declared error as the client decodes it: the error record and its schema's full name. */
export interface DeclaredValue {
  value: unknown;
  /** The branch's full name, e.g. `avrpc.echo.EchoError`; undefined for the union's `string` branch. */
  errorType: string | undefined;
}

type Branch = avro.Type & { branchName?: string };

const branchesOf = (errors: avro.Type): readonly Branch[] => (errors as unknown as { types: Branch[] }).types;

/** `isValid` that never throws (a thrown value may have throwing getters, or be a Proxy). */
function fits(type: avro.Type, value: unknown): boolean {
  try {
    return type.isValid(value);
  } catch {
    return false;
  }
}

/**
 * Decodes a declared error (a value of the message's error union) and unwraps it, so the caller sees
 * the error record itself whatever union representation avsc chose, with the name of the branch it
 * was encoded as.
 */
export function decodeDeclared(errors: avro.Type, body: Buffer, offset: number, resolver: avro.Resolver | undefined): DeclaredValue {
  const value = decodeExact(errors, body, offset, resolver);
  const branches = branchesOf(errors);
  if (errors.typeName === 'union:wrapped' && value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 1) {
      const branch = branches.find((b) => b.branchName === keys[0]);
      return { value: (value as Record<string, unknown>)[keys[0]!], errorType: branch?.typeName === 'string' ? undefined : branch?.name };
    }
  }
  // An unwrapped union: its branches take values of distinct kinds, so one at most fits.
  const branch = branches.find((b) => b.typeName !== 'string' && fits(b, value));
  return { value, errorType: branch?.name };
}

/** The value to encode with the error union for `details` of `branch`. */
function asBranch(errors: avro.Type, branch: Branch, details: unknown): unknown {
  return errors.typeName === 'union:wrapped' ? { [branch.branchName!]: details } : details;
}

/**
 * Finds the branch of a message's error union to send `thrown` as (never the implicit `string`
 * branch): the one named `errorType` (a full schema name) when `thrown` fits it, else the type of
 * the avsc record `thrown` was made with (`protocol.type('X').clone(...)`), else the first branch
 * `thrown` is a valid value of, so two error types of the same fields are told apart by name.
 * Returns the value to encode with the union type and the branch, or `undefined`. Never throws.
 */
export function matchDeclared(errors: avro.Type, thrown: unknown, errorType?: string): { value: unknown; branch: avro.Type } | undefined {
  if (thrown === null || typeof thrown !== 'object') return undefined;
  const branches = branchesOf(errors).filter((b) => b.typeName !== 'string');
  let own: unknown;
  try {
    own = (thrown.constructor as { type?: unknown } | undefined)?.type;
  } catch {
    own = undefined;
  }
  const preferred = [errorType === undefined ? undefined : branches.find((b) => b.name === errorType), branches.find((b) => b === own)];
  for (const branch of [...preferred, ...branches]) {
    if (branch !== undefined && fits(branch, thrown)) return { value: asBranch(errors, branch, thrown), branch };
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
    let declared: DeclaredValue | undefined;
    // When the server's error union cannot be resolved into ours, keep its code and message only.
    if (msg !== undefined && (flags & Flag.DECLARED) !== 0 && !(reading!.incompatible !== undefined && reading!.errors === undefined)) {
      declared = decodeDeclared(msg.errors, body, head.offset, reading!.errors);
    }
    return new RpcError(errorCode(head.code), head.message, {
      isRemote: true,
      metadata: head.metadata,
      details: declared?.value,
      errorType: declared?.errorType,
    });
  } catch (err) {
    return new RpcError(Code.INTERNAL, `cannot decode error frame: ${(err as Error).message}`, { cause: err });
  }
}
