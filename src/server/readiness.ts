/**
 * Whether a server takes calls, for the probes that ask (the avrpc health HELLO of SPEC.md section 14,
 * HTTP `/readyz`, gRPC `grpc.health.v1.Health/Check`). One per server, shared by every transport.
 *
 * - `starting`: created, or listening but `listen()` has not finished (workers warming up, registry
 *   registration in progress): connections may already arrive, but a load balancer should not send yet.
 * - `serving`: `listen()` resolved.
 * - `draining`: `close()` was called: running calls finish, new ones are refused.
 * - `closed`: `close()` resolved.
 */
export type ReadinessState = 'starting' | 'serving' | 'draining' | 'closed';

/** A server's readiness, set by its `listen` and `close`, read by health checks. */
export class Readiness {
  private current: ReadinessState = 'starting';

  /** The state now. */
  get state(): ReadinessState {
    return this.current;
  }

  /** True while the server takes new calls (`serving`). */
  get serving(): boolean {
    return this.current === 'serving';
  }

  /**
   * Moves to `next`. Only forward: `starting` -> `serving` -> `draining` -> `closed`, with one way back,
   * `serving`/`starting` after a failed listen (`reset`); a late `serving` after close began is ignored.
   */
  set(next: ReadinessState): void {
    if (ORDER[next] > ORDER[this.current]) this.current = next;
  }

  /** A listen that failed: the server may listen again, so it is `starting` (unless closing began). */
  reset(): void {
    if (this.current === 'serving') this.current = 'starting';
  }
}

const ORDER: Record<ReadinessState, number> = { starting: 0, serving: 1, draining: 2, closed: 3 };
