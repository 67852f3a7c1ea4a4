import type { PeerInfo } from '../call-context.js';

/**
 * What a worker handler sees as `ctx.peer`. Tasks cross threads by structured clone, which throws on a
 * function anywhere in the value: a principal holding a method would fail every call of its connection
 * with INTERNAL ("could not be cloned"). So each connection's peer is checked once (by the pool, keyed
 * by the peer object, which a connection replaces only when it authenticates), and a principal that
 * does not clone is replaced by {@link cloneableCopy} of it. A principal that clones goes as it is: the
 * worker then gets its data without prototype or methods, as structured clone always does.
 */
export interface WorkerPeer {
  /** The peer to put in tasks. */
  readonly peer: PeerInfo;
  /** True when the principal had to be copied without what could not cross. */
  readonly projected: boolean;
}

/** Checks `peer` once; see {@link WorkerPeer}. */
export function workerPeer(peer: PeerInfo): WorkerPeer {
  if (clones(peer)) return { peer, projected: false };
  return { peer: { ...peer, principal: cloneableCopy(peer.principal, new Map()) }, projected: true };
}

function clones(value: unknown): boolean {
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * `value` without what structured clone refuses: functions and symbols are left out (a property
 * holding one is omitted, an array element becomes undefined); an object that does not clone as a
 * whole is rebuilt from its own enumerable string-keyed properties, recursively; cycles are kept.
 */
export function cloneableCopy(value: unknown, seen: Map<object, unknown>): unknown {
  if (typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (value === null || typeof value !== 'object') return value;
  const known = seen.get(value);
  if (known !== undefined) return known;
  if (clones(value)) return value;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    seen.set(value, out);
    for (const v of value) out.push(cloneableCopy(v, seen));
    return out;
  }
  const out: Record<string, unknown> = {};
  seen.set(value, out);
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === 'function' || typeof v === 'symbol') continue;
    out[key] = cloneableCopy(v, seen);
  }
  return out;
}
