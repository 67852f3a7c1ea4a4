import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Reassembler } from '../framing/reassembler.js';
import type { Clock, Timer } from '../util/clock.js';
import type { LargeMessagesSink } from './large-messages.js';
import type { Outbox } from './outbox.js';

/** What a {@link StallCheck} needs of the socket it watches. */
export interface StallCheckHost {
  fail(error: RpcError): void;
  /** True once the socket is gone: no check starts (nor, for the incoming side, late decompression results). */
  readonly gone: boolean;
  /** True while we do not read the peer (its socket paused): its uploads cannot progress, no stall. */
  readonly readsPaused?: boolean;
}

/**
 * The stall check (`stallTimeoutMs`) of large messages both ways: a message being received in
 * fragments that got no byte for a whole period is refused RESOURCE_EXHAUSTED (its buffer freed);
 * fragments of ours the peer left unacknowledged for a whole period, with no WINDOW, end the
 * connection. Checked once per period, so stalled after one to two; it runs only while something is
 * partial or queued, and a late check (our own event loop stalled) judges nothing.
 */
export class StallCheck {
  /** WINDOW frames received so far (the incoming side counts them), and what the check last saw of them. */
  windows = 0;
  private windowsMark = 0;
  /** Whether the last check saw fragments of ours unacknowledged. */
  private waitedForWindow = false;
  /** The check's interval, while it runs. */
  private timer: Timer | undefined;
  private lastCheck = 0;

  constructor(
    /** The period; 0: no check. */
    private readonly ms: number,
    /** Partial messages received. */
    private readonly reassembler: Reassembler,
    /** Our fragments waiting to go out or to be acknowledged. */
    private readonly outbox: Outbox,
    private readonly host: StallCheckHost,
    /** Where a stalled partial message is refused (the connection's handler). */
    private readonly sink: Pick<LargeMessagesSink, 'onRefused'>,
    private readonly clock: Clock,
  ) {}

  /** Starts the check if it is wanted and not running. Cheap when running. */
  watch(): void {
    if (this.timer !== undefined || this.ms === 0 || this.host.gone) return;
    this.lastCheck = this.clock.now();
    this.reassembler.stalled(true);
    this.waitedForWindow = false;
    this.timer = this.clock.interval(this.onCheck, this.ms);
  }

  /** Stops the check (the connection is gone or failed). */
  stop(): void {
    this.clock.clear(this.timer);
    this.timer = undefined;
  }

  private readonly onCheck = (): void => {
    const ms = this.ms;
    const now = this.clock.now();
    // Late by half a period or more: our own event loop stalled, the peer may have sent meanwhile.
    const late = now - this.lastCheck >= 1.5 * ms;
    this.lastCheck = now;
    if (this.reassembler.size === 0 && this.outbox.size === 0) return this.stop();
    for (const s of this.reassembler.stalled(late || this.host.readsPaused === true)) {
      this.reassembler.discard(s.id);
      this.sink.onRefused(
        s.type,
        s.flags,
        s.id,
        new RpcError(Code.RESOURCE_EXHAUSTED, `request stalled: no fragment of it for ${ms} ms (stallTimeoutMs)`),
      );
    }
    const waiting = this.outbox.size > 0 && this.outbox.unacknowledged > 0;
    if (waiting && this.waitedForWindow && !late && this.windows === this.windowsMark) {
      return this.host.fail(
        new RpcError(
          Code.RESOURCE_EXHAUSTED,
          `peer acknowledged none of ${this.outbox.unacknowledged} fragment bytes for ${ms} ms (stallTimeoutMs); ${this.outbox.pendingBytes} bytes unsent`,
        ),
      );
    }
    this.waitedForWindow = waiting;
    this.windowsMark = this.windows;
  };
}
