import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Metadata } from '../framing/bodies.js';
import type { PeerCertificateInfo } from '../security/auth.js';
import { MAX_TIMER_MS } from '../util/validate.js';

/** Who is calling. */
export interface PeerInfo {
  /** Remote IP address. */
  readonly address: string;
  /** Remote port. */
  readonly port: number;
  /** The verified client certificate, under mTLS. */
  readonly certificate?: PeerCertificateInfo;
  /** Who the caller is, as `authenticate` decided (or the mTLS certificate); undefined without auth. */
  readonly principal?: unknown;
}

/**
 * What a handler gets besides its request: metadata, deadline, a cancellation signal and the peer.
 * The AbortSignal is created only when a handler reads `signal`, so calls that never look pay nothing.
 */
export class CallContext {
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private abortReason: RpcError | undefined;
  /** `performance.now()` when the call began; set only when an observer measures durations. */
  startedAt = 0;

  constructor(
    /** The message being called. */
    readonly message: string,
    /** Metadata sent by the caller; an empty frozen object when there is none. */
    readonly metadata: Metadata,
    /** Deadline as epoch milliseconds (`Date.now()` clock), or `Infinity` when the caller set none. */
    readonly deadline: number,
    /** The calling peer. */
    readonly peer: PeerInfo,
  ) {}

  /** Aborts when the caller cancels, the deadline passes, or the connection goes away. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
      else if (this.deadline !== Infinity) {
        if (this.deadline <= Date.now()) this.controller.abort(deadlineError());
        else this.armDeadline();
      }
    }
    return this.controller.signal;
  }

  /** Aborts at the deadline. A u32 timeout can exceed what setTimeout takes (2^31-1 ms): wait in steps. */
  private armDeadline(): void {
    const ms = this.deadline - Date.now();
    if (ms <= 0) this.cancel(deadlineError());
    else this.timer = setTimeout(() => this.armDeadline(), Math.min(ms, MAX_TIMER_MS));
  }

  /** True once the call was cancelled or timed out: its result will not be sent. */
  get cancelled(): boolean {
    return this.abortReason !== undefined;
  }

  /** Why the call was cancelled: CANCELLED (client, disconnect) or DEADLINE_EXCEEDED; OK while it runs. */
  get cancelCode(): Code {
    return this.abortReason?.code ?? Code.OK;
  }

  /** Marks the call cancelled and aborts the signal (if a handler asked for it). */
  cancel(reason: RpcError): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.finish();
    this.controller?.abort(reason);
  }

  /** Releases the deadline timer; called when the call completes either way. */
  finish(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function deadlineError(): RpcError {
  return new RpcError(Code.DEADLINE_EXCEEDED, 'deadline exceeded');
}
