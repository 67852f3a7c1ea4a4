import { getHeapStatistics } from 'node:v8';
import type { MemoryAccount } from '../connection/memory-account.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';

/**
 * Default `maxBufferedBytes`: an eighth of V8's heap limit (about 512 MiB with Node's default 4 GiB
 * limit), at least 64 MiB. Buffers live outside the V8 heap, but the heap limit is what Node derives
 * from the host's memory and what an operator tunes (`--max-old-space-size`): it scales with both.
 */
export function defaultMaxBufferedBytes(): number {
  return Math.max(64 * 1024 * 1024, Math.floor(getHeapStatistics().heap_size_limit / 8));
}

/**
 * The memory a server's peers make it hold, server-wide (SPEC.md section 11.3, `maxBufferedBytes`):
 * partial frames and messages (reassembly buffers, handshakes in progress), inflations (their input
 * and output), and answers queued (in the socket, or in fragments waiting for WINDOW). Each connection
 * reports through its own {@link ConnectionAccount}. New work that would cross `maxBytes` is refused
 * (the account's `reserve` says false); when the bytes held cross it anyway (answers already made and,
 * on accepted connections, the first 64 KiB of a partial frame are charged, never refused), the connections holding the most
 * are shed (GOAWAY RESOURCE_EXHAUSTED) until the rest holds at most `lowWaterBytes`, three quarters
 * of the budget. Connections still in their handshake (strangers, until `authenticate` and WELCOME)
 * may together take at most `handshakeMaxBytes`, an eighth of it: they cannot starve the work of
 * connections already accepted.
 */
export class MemoryBudget {
  private used = 0;
  /** Of `used`, what connections still in their handshake hold. */
  private handshakeUsed = 0;
  private readonly accounts = new Set<ConnectionAccount>();
  private shedTimer: NodeJS.Immediate | undefined;
  readonly lowWaterBytes: number;
  readonly handshakeMaxBytes: number;

  constructor(readonly maxBytes: number) {
    this.lowWaterBytes = Math.floor(maxBytes * 0.75);
    this.handshakeMaxBytes = Math.floor(maxBytes / 8);
  }

  /** Bytes held now, all connections together. */
  get bufferedBytes(): number {
    return this.used;
  }

  /** A new connection's account; `shed` closes that connection (GOAWAY with the error given). */
  account(shed: (error: RpcError) => void): ConnectionAccount {
    const a = new ConnectionAccount(this, shed);
    this.accounts.add(a);
    return a;
  }

  /**
   * @internal For {@link ConnectionAccount}: true when `bytes` more fit (and are counted). A refusal
   * sheds nobody: refusing the new work already keeps us within the budget, and the peers holding the
   * rest (a large upload under way) have done nothing wrong yet.
   */
  admit(bytes: number, handshake: boolean): boolean {
    if (this.used + bytes > this.maxBytes) return false;
    if (handshake) {
      if (this.handshakeUsed + bytes > this.handshakeMaxBytes) return false;
      this.handshakeUsed += bytes;
    }
    this.used += bytes;
    return true;
  }

  /** @internal For {@link ConnectionAccount}: `bytes` more (or fewer, negative) held. */
  add(bytes: number, handshake: boolean): void {
    this.used += bytes;
    if (handshake) this.handshakeUsed += bytes;
    if (bytes > 0 && this.used > this.maxBytes) this.shedSoon();
  }

  /** @internal For {@link ConnectionAccount.handshakeDone}: `bytes` held no longer count as a handshake's. */
  handshakeDone(bytes: number): void {
    this.handshakeUsed -= bytes;
  }

  /** @internal For {@link ConnectionAccount.close}. */
  remove(a: ConnectionAccount): void {
    this.accounts.delete(a);
  }

  /** Sheds after the current frame's work: not from inside a decoder or a write. */
  private shedSoon(): void {
    if (this.shedTimer !== undefined) return;
    this.shedTimer = setImmediate(this.shed);
    this.shedTimer.unref();
  }

  private readonly shed = (): void => {
    this.shedTimer = undefined;
    if (this.used <= this.lowWaterBytes) return;
    // The connections holding the most go first: one hostile peer usually holds most of it.
    const holders = [...this.accounts].filter((a) => !a.shedding && a.held > 0).sort((x, y) => y.held - x.held);
    let left = this.used;
    for (const a of holders) {
      if (left <= this.lowWaterBytes) break;
      left -= a.held;
      a.shedding = true;
      a.shed(
        new RpcError(
          Code.RESOURCE_EXHAUSTED,
          `server memory budget exhausted (maxBufferedBytes ${this.maxBytes}): this connection held ${a.held} bytes, the most`,
        ),
      );
    }
  };
}

/** One connection's share of a {@link MemoryBudget}. After {@link close} it counts nothing. */
export class ConnectionAccount implements MemoryAccount {
  /** Bytes this connection holds now. */
  held = 0;
  /** True once the budget asked this connection to close. */
  shedding = false;
  private closed = false;
  /** True until {@link handshakeDone}: counted in the handshakes' share too. */
  private handshaking = true;

  constructor(
    private readonly budget: MemoryBudget,
    readonly shed: (error: RpcError) => void,
  ) {}

  reserve(bytes: number): boolean {
    if (this.closed) return true;
    if (!this.budget.admit(bytes, this.handshaking)) return false;
    this.held += bytes;
    return true;
  }

  frame(bytes: number): boolean {
    if (this.handshaking) return this.reserve(bytes);
    this.charge(bytes);
    return true;
  }

  charge(bytes: number): void {
    if (this.closed) return;
    this.held += bytes;
    this.budget.add(bytes, this.handshaking);
  }

  credit(bytes: number): void {
    if (this.closed) return;
    this.held -= bytes;
    this.budget.add(-bytes, this.handshaking);
  }

  /** The connection completed its handshake: what it holds is no longer a stranger's. */
  handshakeDone(): void {
    if (this.closed || !this.handshaking) return;
    this.handshaking = false;
    this.budget.handshakeDone(this.held);
  }

  /** The connection is gone: whatever it still held is given back, and late reports are ignored. */
  close(): void {
    if (this.closed) return;
    this.budget.add(-this.held, this.handshaking);
    this.held = 0;
    this.closed = true;
    this.budget.remove(this);
  }
}
