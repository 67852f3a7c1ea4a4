/**
 * One etcd registration: a key held by a lease with keepalive. If the lease is lost (etcd was
 * unreachable for longer than the TTL, or the lease was revoked behind our back) the instance
 * would silently vanish, so it re-grants a lease and re-puts the key, with backoff, until it
 * succeeds or the registration is removed.
 */
import type { Etcd3, Lease } from 'etcd3';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { loadedEtcd3 } from './etcd3-module.js';
import type { Registration, RegistryErrorListener, ServiceInstance } from './registry.js';

/** First re-registration delay; doubles per failed attempt, capped at the lease TTL. */
const RETRY_BASE_MS = 250;

/**
 * Maps anything etcd3 throws to an `RpcError`: auth failures keep their meaning, everything else
 * (connection refused, open circuit breaker, deadline) means "etcd cannot serve us now".
 */
export function etcdError(err: unknown, what: string): RpcError {
  if (err instanceof RpcError) return err;
  let code: Code = Code.UNAVAILABLE;
  // etcd3 threw it, so etcd3 is loaded; the guard only keeps this total.
  const mod = loadedEtcd3();
  if (mod && err instanceof mod.EtcdPermissionDeniedError) code = Code.PERMISSION_DENIED;
  else if (
    mod &&
    (err instanceof mod.EtcdAuthenticationFailedError ||
      err instanceof mod.EtcdInvalidAuthTokenError ||
      err instanceof mod.GRPCUnauthenticatedError)
  )
    code = Code.UNAUTHENTICATED;
  const message = err instanceof Error ? err.message : String(err);
  return new RpcError(code, `${what}: ${message}`, { cause: err });
}

/** What a registration needs from its registry. */
export interface LeaseOwner {
  readonly ttlSec: number;
  readonly onError: RegistryErrorListener;
  /** Called once the registration is removed, so the registry stops tracking it. */
  forget(registration: EtcdRegistration): void;
}

/** A registration backed by an etcd lease. Create it, then `await put()` once. */
export class EtcdRegistration implements Registration {
  /** The lease currently meant to hold the key (possibly still being granted). */
  private lease: Lease | undefined;
  /** True once `lease` holds the key: only then does losing it mean "re-register". */
  private live = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private removed: Promise<void> | undefined;

  constructor(
    readonly instance: ServiceInstance,
    private readonly key: string,
    private readonly owner: LeaseOwner,
    /** The registry's etcd client: a registration exists only once etcd3 is loaded. */
    private readonly client: Etcd3,
  ) {}

  /** Grants a lease and puts the key under it. Rejects with an RpcError, leaving no lease behind. */
  async put(): Promise<void> {
    const lease = this.client.lease(this.owner.ttlSec);
    this.lease = lease;
    this.live = false;
    lease.on('lost', (err) => this.lost(lease, err));
    try {
      await lease.put(this.key).value(JSON.stringify(this.instance));
    } catch (err) {
      if (this.lease === lease) this.lease = undefined;
      // The grant may have succeeded before the put failed; a kept-alive lease without a key is a leak.
      lease.revoke().catch(() => undefined);
      throw etcdError(err, `register ${this.key}`);
    }
    if (this.lease === lease) this.live = true;
  }

  deregister(): Promise<void> {
    return (this.removed ??= this.remove());
  }

  private async remove(): Promise<void> {
    clearTimeout(this.retryTimer);
    const lease = this.lease;
    this.lease = undefined;
    this.live = false;
    this.owner.forget(this);
    try {
      // Revoking (not just releasing) deletes the key now instead of after the TTL.
      await lease?.revoke();
    } catch (err) {
      throw etcdError(err, `deregister ${this.key} (the key expires within ${this.owner.ttlSec} s anyway)`);
    }
  }

  private lost(lease: Lease, err: unknown): void {
    if (lease !== this.lease || !this.live || this.removed) return; // stale lease, or a failed put
    this.lease = undefined;
    this.live = false;
    this.owner.onError(etcdError(err, `lease of ${this.key} lost, re-registering`));
    this.retry();
  }

  private retry(): void {
    const delay = Math.min(RETRY_BASE_MS * 2 ** this.attempt++, this.owner.ttlSec * 1000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.put().then(
        () => {
          this.attempt = 0;
        },
        (err: unknown) => {
          if (this.removed) return;
          this.owner.onError(etcdError(err, `re-registering ${this.key} failed, retrying`));
          this.retry();
        },
      );
    }, delay);
  }
}
