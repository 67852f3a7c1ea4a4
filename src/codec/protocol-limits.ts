import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';

/**
 * How big a protocol a peer may make this side build. Building avsc types costs far more than the
 * text: about 1 ms per record (avsc generates and compiles several functions for each) and 25 us per
 * field on this project's reference machine, so a 100 KB protocol of 256 records takes a few hundred
 * ms, and 1000 one-field records (80 KB) over a second. A handshake may come from a peer nobody has
 * authenticated yet: its text is sized by `maxProtocolBytes`, and its shape by these, checked on the
 * parsed JSON before avsc sees it, so that no peer protocol costs more than about half a second. Real
 * protocols stay below: a large one has a hundred or two named types and a few thousand fields.
 */
export const PEER_PROTOCOL_LIMITS = {
  /** Entries of `messages` (each is a record type too: its parameters). */
  messages: 512,
  /** Named types (records, errors, enums, fixed) declared anywhere in the protocol. */
  namedTypes: 512,
  /** Record fields and message parameters, all types together. */
  fields: 8192,
  /** Nesting of JSON objects and arrays (a record's field's array of maps of... counts every level). */
  depth: 64,
  /** JSON values of every kind (objects, arrays, strings, numbers...), enum symbols and union branches included. */
  values: 131072,
} as const;

const NAMED = new Set(['record', 'error', 'enum', 'fixed']);

/**
 * Throws RESOURCE_EXHAUSTED when the parsed protocol JSON `attrs` exceeds a {@link PEER_PROTOCOL_LIMITS}
 * bound. Iterative (an explicit stack), so a deeply nested text cannot overflow the call stack, and it
 * stops at the first bound crossed: its cost is bounded by the limits, not by the text.
 */
export function checkPeerProtocol(attrs: unknown): void {
  const L = PEER_PROTOCOL_LIMITS;
  const messages = typeof attrs === 'object' && attrs !== null ? (attrs as { messages?: unknown }).messages : undefined;
  if (typeof messages === 'object' && messages !== null && Object.keys(messages).length > L.messages) {
    exceeded(`more than ${L.messages} messages`);
  }
  let values = 1;
  let named = 0;
  let fields = 0;
  // Counted as they are pushed: the stack itself never holds more than the bound.
  const stack: Array<{ v: unknown; depth: number }> = [{ v: attrs, depth: 0 }];
  const push = (v: unknown, depth: number): void => {
    if (++values > L.values) exceeded(`more than ${L.values} JSON values`);
    stack.push({ v, depth });
  };
  while (stack.length > 0) {
    const { v, depth } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= L.depth) exceeded(`nested deeper than ${L.depth} levels`);
    if (Array.isArray(v)) {
      for (const x of v) push(x, depth + 1);
      continue;
    }
    const o = v as Record<string, unknown>;
    if (typeof o.type === 'string' && NAMED.has(o.type) && ++named > L.namedTypes) exceeded(`more than ${L.namedTypes} named types`);
    // Record fields, and a message's `request` (its parameters).
    for (const list of [o.fields, o.request]) {
      if (Array.isArray(list) && (fields += list.length) > L.fields) exceeded(`more than ${L.fields} fields`);
    }
    for (const key in o) push(o[key], depth + 1);
  }
}

function exceeded(what: string): never {
  throw new RpcError(Code.RESOURCE_EXHAUSTED, `peer protocol has ${what}`);
}
