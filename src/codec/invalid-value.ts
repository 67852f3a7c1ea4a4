import { inspect } from 'node:util';
import type avro from 'avsc';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { MessageDef } from './protocol.js';

/**
 * Says why `value` is not a valid value of `type`, naming the first offending path, e.g.
 * `item.id: 18446744073709551616n is not a valid long`; `undefined` when it is valid. Only for the
 * error path (after an encode failed): it walks the whole value. `label` names `type` itself in the
 * message. Never throws, whatever `value` holds
 * (avsc's own messages JSON-encode the value, which fails on a BigInt).
 */
export function describeInvalid(type: avro.Type, value: unknown, label = typeLabel(type)): string | undefined {
  let found: { path: string[]; value: unknown; type: avro.Type } | undefined;
  try {
    const valid = type.isValid(value, {
      errorHook: (path: string[], v: unknown, t: avro.Type) => {
        found ??= { path: [...path], value: v, type: t };
      },
    });
    if (valid) return undefined;
  } catch (err) {
    return `not a valid ${label} (${(err as Error).message})`;
  }
  if (found === undefined) return `not a valid ${label}`;
  if (found.type === type) return `${show(found.value)} is not a valid ${label}`;
  const at = found.path.length === 0 ? '' : `${found.path.join('.')}: `;
  if (found.value === undefined) return `${at}missing (${typeLabel(found.type)} required)`;
  return `${at}${show(found.value)} is not a valid ${typeLabel(found.type)}`;
}

/** `long`, `array<string>`, `avrpc.echo.Item`: how a type is named in messages. */
function typeLabel(type: avro.Type): string {
  if (type.name !== undefined) return type.name;
  const t = type as avro.Type & { itemsType?: avro.Type; valuesType?: avro.Type; types?: avro.Type[] };
  if (t.itemsType !== undefined) return `array<${typeLabel(t.itemsType)}>`;
  if (t.valuesType !== undefined) return `map<${typeLabel(t.valuesType)}>`;
  if (t.types !== undefined) return `union { ${t.types.map(typeLabel).join(', ')} }`;
  return type.typeName.replace(/^abstract:/, '');
}

/** A short, safe rendering of any value (BigInts, cycles, long strings). */
function show(value: unknown): string {
  return inspect(value, { depth: 1, breakLength: Infinity, maxArrayLength: 5, maxStringLength: 60 });
}

const REQUEST_LABEL = 'request (an object of the parameters by name)';

/**
 * The INVALID_ARGUMENT error for a request that `msg`'s request record cannot encode, naming the
 * message and the offending field; `cause` is the encoder's own error, when there was one.
 * `undefined` when the request is valid (or `msg` is a raw-bytes view that cannot check it).
 */
export function invalidRequest(msg: MessageDef, request: unknown, cause?: unknown): RpcError | undefined {
  const checkable = typeof (msg.request as Partial<avro.Type>).isValid === 'function';
  const why = checkable ? describeInvalid(msg.request, request, REQUEST_LABEL) : undefined;
  if (why === undefined && cause === undefined) return undefined;
  const text = why ?? (cause instanceof Error ? cause.message : String(cause));
  return new RpcError(Code.INVALID_ARGUMENT, `invalid request for ${msg.name}: ${text}`, cause === undefined ? {} : { cause });
}
