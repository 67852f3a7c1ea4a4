import type { ResolverCache } from '../codec/resolver-cache.js';
import { ClientConnection, type EndpointMemory } from '../connection/client-connection.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Endpoint, ResolvedClientOptions } from './client-options.js';

/** The sockets of one endpoint. */
interface EndpointSlot {
  readonly endpoint: Endpoint;
  readonly memory: EndpointMemory;
  readonly conns: ClientConnection[];
}

/**
 * Keeps `connectionsPerEndpoint` sockets per endpoint, replacing closed or draining ones on demand,
 * and picks for each call the usable socket with the fewest calls in flight (least-connections),
 * scanning from a rotating start so that ties are not always won by the same socket.
 */
export class EndpointPool {
  private readonly slots: EndpointSlot[];
  private rotation = 0;
  private closed = false;

  constructor(
    private readonly options: ResolvedClientOptions,
    private readonly cache: ResolverCache,
  ) {
    this.slots = options.endpoints.map((endpoint) => ({
      endpoint, memory: { serverFingerprint: null, sendProtocol: false }, conns: [],
    }));
  }

  /** The connection the next call should use. Throws UNAVAILABLE once the pool is closed. */
  pick(): ClientConnection {
    if (this.closed) throw new RpcError(Code.UNAVAILABLE, 'client is closed');
    const slots = this.slots;
    let best: ClientConnection | undefined;
    let bestScore = Infinity;
    const n = slots.length;
    const start = n === 1 ? 0 : (this.rotation = (this.rotation + 1) % n);
    for (let i = 0; i < n; i++) {
      const slot = slots[(start + i) % n]!;
      this.refill(slot);
      const conns = slot.conns;
      for (let j = 0; j < conns.length; j++) {
        const c = conns[j]!;
        // A socket still connecting is usable (calls wait for its handshake) but ranks after ready ones.
        const score = c.state === 'ready' ? c.inFlight : c.state === 'connecting' ? c.inFlight + 1e6 : Infinity;
        if (score < bestScore) {
          bestScore = score;
          best = c;
        }
      }
    }
    if (best === undefined) throw new RpcError(Code.UNAVAILABLE, 'no usable connection');
    return best;
  }

  /** Closes every socket once its in-flight calls finish. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.flatMap((s) => s.conns.map((c) => c.close())));
  }

  private refill(slot: EndpointSlot): void {
    const conns = slot.conns;
    for (let j = conns.length - 1; j >= 0; j--) {
      const s = conns[j]!.state;
      if (s === 'closed' || s === 'draining') conns.splice(j, 1);
    }
    while (conns.length < this.options.connectionsPerEndpoint) {
      const { host, port } = slot.endpoint;
      conns.push(new ClientConnection(host, port, this.options.protocol, this.cache, slot.memory, this.options));
    }
  }
}
