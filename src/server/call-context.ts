import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Metadata } from '../framing/bodies.js';
import type { CallInfo } from '../observability/call-info.js';
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

/** Where a call's response headers go when its handler sends them early (the session; internal). */
export interface HeaderSink {
  writeHeader(id: number, headers: Metadata): void;
}

/** True when `m` has at least one entry. */
function hasEntries(m: Record<string, string> | undefined): m is Record<string, string> {
  if (m === undefined) return false;
  for (const _ in m) return true;
  return false;
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
  /** What the observer is told about this call; set only when there is an observer (internal). */
  info: CallInfo | undefined = undefined;
  /** The call's request id on its connection (internal: for response headers sent early). */
  id = 0;
  /** Its index in its HTTP connection's running calls, -1 when in none (internal: see RunningCalls). */
  httpSlot = -1;
  /** Where {@link sendHeader} writes; undefined when the client cannot take headers (internal). */
  headerSink: HeaderSink | undefined = undefined;
  private cancelHook: ((reason: RpcError) => void) | undefined = undefined;
  private header: Record<string, string> | undefined = undefined;
  private trailer: Record<string, string> | undefined = undefined;
  private headerSent = false;

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

  /**
   * Response headers: set entries here before the first response element (or the response) goes out,
   * and they reach the client first (its `onHeader`, a stream's `headers`). Created on first access.
   */
  get responseHeader(): Record<string, string> {
    return (this.header ??= {});
  }

  /** Response trailers: sent when the call ends, with its response, its end or its error. Created on first access. */
  get responseTrailer(): Record<string, string> {
    return (this.trailer ??= {});
  }

  /**
   * Sends {@link responseHeader} now, before any response (a stream that waits for its first element
   * lets the client see them early). Once sent, later changes to them are not sent. Idempotent.
   */
  sendHeader(): void {
    const headers = this.takeHeader();
    if (headers !== undefined) this.headerSink?.writeHeader(this.id, headers);
  }

  /** The headers not sent yet, if any, now marked sent (internal: the reply path sends them). */
  takeHeader(): Metadata | undefined {
    if (this.headerSent) return undefined;
    this.headerSent = true;
    return hasEntries(this.header) ? this.header : undefined;
  }

  /** The trailers, if any entry was set (internal). */
  takeTrailer(): Metadata | undefined {
    return hasEntries(this.trailer) ? this.trailer : undefined;
  }

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

  /** Why the call was cancelled or timed out; undefined while it runs. */
  get cancelReason(): RpcError | undefined {
    return this.abortReason;
  }

  /** Marks the call cancelled and aborts the signal (if a handler asked for it). */
  cancel(reason: RpcError): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.finish();
    this.controller?.abort(reason);
    this.cancelHook?.(reason);
  }

  /**
   * `hook` is called once if the call is cancelled (internal: a transport stops waiting for the
   * handler without making an AbortSignal per call). One hook; a later one replaces it.
   */
  onCancel(hook: (reason: RpcError) => void): void {
    this.cancelHook = hook;
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
