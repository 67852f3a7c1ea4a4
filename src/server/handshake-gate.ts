import { isIPv6 } from 'node:net';

/**
 * Connections still in their handshake, counted server-wide and per source address (server options
 * `maxHandshakingConnections`, `maxHandshakingPerAddress`). A socket that connects and says nothing
 * costs nothing to open, and holds its connection slot until `handshakeTimeoutMs`: without these caps
 * a few hosts could take every one of `maxConnections`, and no client, authenticated or not, could
 * connect. A connection holds its slot from accept (on a TLS port: from the TCP accept, before the TLS
 * handshake) until its handshake completes or it closes.
 */
export class HandshakeGate {
  private total = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerAddress: number,
  ) {}

  /** Connections in handshake now. */
  get size(): number {
    return this.total;
  }

  /** A slot for a new connection from `address`, or why there is none (the refusal's message). */
  enter(address: string): HandshakeSlot | string {
    if (this.total >= this.maxTotal) return `server is at maxHandshakingConnections (${this.maxTotal})`;
    const key = addressKey(address);
    const n = this.byAddress.get(key) ?? 0;
    if (n >= this.maxPerAddress) return `too many connections in handshake from ${key} (maxHandshakingPerAddress ${this.maxPerAddress})`;
    this.total++;
    this.byAddress.set(key, n + 1);
    return new HandshakeSlot(this, key);
  }

  /** Called once per slot, by {@link HandshakeSlot.release}. */
  leave(key: string): void {
    this.total--;
    const n = this.byAddress.get(key)! - 1;
    if (n === 0) this.byAddress.delete(key);
    else this.byAddress.set(key, n);
  }
}

/** One connection's place in the {@link HandshakeGate}; released once, however often it is asked to. */
export class HandshakeSlot {
  private held = true;

  constructor(
    private readonly gate: HandshakeGate,
    private readonly key: string,
  ) {}

  /** Gives the slot back: the handshake completed, or the connection closed. Idempotent. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    this.gate.leave(this.key);
  }
}

/**
 * What one source counts as: an IPv4 address (IPv4-mapped IPv6 addresses included) as it is, an IPv6
 * address by its /64 prefix (one host is commonly given a whole /64, so counting single addresses
 * would let it open any number of handshakes).
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const noZone = address.split('%')[0]!;
  const [head, tail] = noZone.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail takes two groups; only the first four groups matter here.
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
