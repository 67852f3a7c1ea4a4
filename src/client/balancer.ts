/**
 * Load-balancing policies. A balancer is a plain function over an immutable snapshot of the usable
 * connections (rebuilt by the pool only when connections come, go or change health); it reads their
 * live counters and returns the one the next call should use. Pass your own as `balancer`.
 */

/** What a balancer sees of one connection. `inFlight` and `latencyEwmaMs` are live. */
export interface ConnectionView {
  /** `host:port` of the endpoint. */
  readonly endpointKey: string;
  /** Endpoint weight from the registry (default 1). */
  readonly weight: number;
  /** Calls in flight on this connection right now. */
  readonly inFlight: number;
  /** Exponentially weighted moving average of call latency on this endpoint, in ms (0 before any call). */
  readonly latencyEwmaMs: number;
}

/** Picks one of `candidates` (never empty) for the next call. */
export type Balancer = (candidates: readonly ConnectionView[]) => ConnectionView;

/** Options of the built-in balancers. */
export interface BalancerOptions {
  /** Random source in [0, 1); injectable for tests. Default `Math.random`. */
  random?: () => number;
}

/**
 * Least-connections: the connection with the fewest calls in flight. Ties are broken by reservoir
 * sampling (the k-th tied connection replaces the pick with probability 1/k), so each tied connection
 * wins equally often wherever it sits; a random scan start alone favours one after a run of busy ones.
 */
export function leastConnections(options: BalancerOptions = {}): Balancer {
  const random = options.random ?? Math.random;
  return (c) => {
    const n = c.length;
    let best = c[0]!;
    let ties = 1;
    for (let i = 1; i < n; i++) {
      const v = c[i]!;
      if (v.inFlight < best.inFlight) {
        best = v;
        ties = 1;
      } else if (v.inFlight === best.inFlight && random() * ++ties < 1) {
        best = v;
      }
    }
    return best;
  };
}

/** Round-robin over the candidates, ignoring load. */
export function roundRobin(): Balancer {
  let next = 0;
  return (c) => c[(next = (next + 1) % 0x7fffffff) % c.length]!;
}

/** Weighted random: each connection is picked in proportion to its endpoint's weight. */
export function weighted(options: BalancerOptions = {}): Balancer {
  const random = options.random ?? Math.random;
  return (c) => {
    let total = 0;
    for (const v of c) total += v.weight > 0 ? v.weight : 0;
    if (total === 0) return c[Math.floor(random() * c.length)]!;
    let r = random() * total;
    for (const v of c) {
      r -= v.weight > 0 ? v.weight : 0;
      if (r < 0) return v;
    }
    return c[c.length - 1]!;
  };
}

/**
 * Power of two choices: two random connections, keep the one with the lower
 * `(inFlight + 1) x latency EWMA`: cheap, and it steers away from slow endpoints quickly.
 */
export function powerOfTwoChoices(options: BalancerOptions = {}): Balancer {
  const random = options.random ?? Math.random;
  const cost = (v: ConnectionView) => (v.inFlight + 1) * (v.latencyEwmaMs > 0 ? v.latencyEwmaMs : 1);
  return (c) => {
    const n = c.length;
    if (n === 1) return c[0]!;
    const i = Math.floor(random() * n);
    let j = Math.floor(random() * (n - 1));
    if (j >= i) j++;
    const a = c[i]!;
    const b = c[j]!;
    return cost(b) < cost(a) ? b : a;
  };
}

/** The built-in balancers by name, as accepted by `createClient({ balancer })`. */
export const balancers = { leastConnections, roundRobin, weighted, powerOfTwoChoices } as const;

/** Name of a built-in balancer. */
export type BalancerName = keyof typeof balancers;
