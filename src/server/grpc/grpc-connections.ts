/**
 * The gRPC bridge's connections: the bridge accepts its TCP sockets itself and hands them to grpc-js
 * (its connection injector), so each counts against the server's `maxConnections` with avrpc's and
 * HTTP's, and the principal `authenticate` gives a Bearer token is kept per connection.
 *
 * Why a per-connection cache is sound: an avrpc connection runs `authenticate` once, at its handshake,
 * and keeps the principal for its life (until its `expiresAt`). A gRPC connection carries the token
 * on every call instead, and may carry several (a proxy multiplexing users), so the cache is keyed by
 * connection and token: a call with the same token on the same connection (same peer address, same
 * TLS session) gets the principal the first one got, as it would on avrpc, and any other token is
 * authenticated afresh. A principal with `expiresAt` is kept until then only; a failure is not kept.
 */
import type { Socket } from 'node:net';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import { callHook } from '../../util/call-hook.js';
import { principalExpiry, type Authenticator } from '../../security/auth.js';
import type { PeerInfo } from '../call-context.js';

/** Tokens whose principals one connection keeps at most (more: the oldest go). */
const MAX_TOKENS_PER_CONNECTION = 64;

type Cached = { principal: Promise<unknown>; expiresAt: number };

/** One accepted gRPC connection. */
interface GrpcConnection {
  readonly principals: Map<string, Cached>;
}

/** The key grpc-js's `call.getPeer()` gives a connection: `address:port`, as grpc-js joins them (IPv6 unbracketed). */
export function peerKey(address: string | undefined, port: number | undefined): string {
  return `${address ?? ''}:${port}`;
}

/** The bridge's open connections, by peer, and the principals each keeps. */
export class GrpcConnections {
  private readonly byPeer = new Map<string, GrpcConnection>();

  /** Open connections (accepted, not closed yet). */
  get size(): number {
    return this.byPeer.size;
  }

  /** A socket was accepted: tracked until it closes. */
  add(socket: Socket): void {
    const key = peerKey(socket.remoteAddress, socket.remotePort);
    this.byPeer.set(key, { principals: new Map() });
    socket.once('close', () => this.byPeer.delete(key));
  }

  /**
   * The principal for `token` on the connection of `peerString`: `authenticate`'s, kept per
   * connection and token (see the module comment). Rejects UNAUTHENTICATED when it throws, or when the
   * principal has expired.
   */
  authenticate(authenticate: Authenticator, peerString: string, token: string | undefined, peer: PeerInfo): Promise<unknown> {
    const conn = this.byPeer.get(peerString);
    const key = token ?? '';
    const now = Date.now();
    const hit = conn?.principals.get(key);
    if (hit !== undefined && hit.expiresAt > now) return hit.principal;
    const principal = callHook(() => authenticate({ token, meta: {} }, peer)).then(
      (p) => {
        const expiresAt = principalExpiry(p) ?? Infinity;
        if (expiresAt <= Date.now()) throw new RpcError(Code.UNAUTHENTICATED, 'authentication failed: credentials expired');
        if (cached !== undefined) cached.expiresAt = expiresAt;
        return p;
      },
      (err: unknown) => {
        throw new RpcError(Code.UNAUTHENTICATED, `authentication failed: ${RpcError.from(err).message}`);
      },
    );
    let cached: Cached | undefined;
    if (conn !== undefined) {
      cached = { principal, expiresAt: Infinity };
      const map = conn.principals;
      map.delete(key);
      if (map.size >= MAX_TOKENS_PER_CONNECTION) map.delete(map.keys().next().value!);
      map.set(key, cached);
      // A failure is not kept: the next call asks again.
      principal.catch(() => {
        if (map.get(key) === cached) map.delete(key);
      });
    }
    return principal;
  }
}
