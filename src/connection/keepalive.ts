import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { realClock, type Clock, type Timer } from '../util/clock.js';

/**
 * How long a connection that awaits replies may hear nothing before it PINGs: an eighth of the PING
 * timeout (250 ms for the client's default 2 s), at most `keepaliveMs`. A PING costs 10 bytes each
 * way and is sent only when nothing at all arrived, so a silent peer is declared dead after about
 * 1.1 to 1.3 times `keepaliveTimeoutMs` of silence, while a peer whose loop is merely blocked has the
 * whole `keepaliveTimeoutMs` to answer.
 */
export function probeAfterMs(keepaliveMs: number, keepaliveTimeoutMs: number): number {
  return Math.max(1, Math.min(keepaliveMs, Math.floor(keepaliveTimeoutMs / 8)));
}

/** What a {@link Keepalive} needs from its socket. */
export interface KeepaliveHost {
  /** Appends a PING frame with this id and schedules its write. */
  ping(id: number): void;
  /** The peer answered nothing in time: close the connection with `error`. */
  dead(error: RpcError): void;
  /** True while the owner waits for the peer to answer (see `FramedSocketHandler.awaitingReplies`). */
  awaitingReplies(): boolean;
}

/**
 * Finds a silent peer: after `keepaliveMs` without receiving anything (only {@link probeAfterMs}
 * while replies are awaited) it PINGs, and declares the peer dead when nothing at all arrives within
 * `keepaliveTimeoutMs`. Our own event-loop stalls are not held against the peer: an answer may be
 * sitting unread in the socket, so a late timer or one that fires before this turn's I/O waits.
 */
export class Keepalive {
  /** Set by the socket on every read: any bytes count as life. */
  gotData = false;
  private pingOutstanding = false;
  private pingId = 0;
  private pingSentAt = 0;
  private timer: Timer | undefined;
  private dueAt = 0;
  /** Period the timer was last armed with. */
  private armedMs = 0;
  private readonly probeMs: number;

  constructor(
    private readonly keepaliveMs: number,
    private readonly timeoutMs: number,
    private readonly host: KeepaliveHost,
    /** Time source and timers; tests pass a fake one. */
    private readonly clock: Clock = realClock,
  ) {
    this.probeMs = probeAfterMs(keepaliveMs, timeoutMs);
  }

  /** Starts the cycle (once the handshake is done: a PING before the preface would be refused). No-op when disabled or running. */
  start(): void {
    if (this.keepaliveMs > 0 && this.timer === undefined) this.arm(this.keepaliveMs);
  }

  /** Stops for good: the connection is closing. */
  stop(): void {
    this.clock.clear(this.timer);
    this.timer = undefined;
  }

  /**
   * The owner now awaits a reply (a call was sent): if the timer is waiting out a long idle period,
   * probe after {@link probeAfterMs} instead. Cheap enough to call per call.
   */
  expectReply(): void {
    if (this.armedMs > this.probeMs && !this.pingOutstanding && this.timer !== undefined) this.arm(this.probeMs);
  }

  /**
   * True when a PING has gone unanswered for at least {@link probeAfterMs}: nothing at all arrived
   * since before it was sent. Our own loop may have been blocked meanwhile, with the answer unread:
   * ask again after this turn's I/O (`Clock.afterIo`) before judging the peer by it.
   */
  get unanswered(): boolean {
    return this.pingOutstanding && !this.gotData && this.clock.now() - this.pingSentAt >= this.probeMs;
  }

  /**
   * A PONG arrived. The answer to our PING also starts the next quiet period now, not at the PING's
   * deadline: a peer that stops right after answering is still found within one period.
   */
  pong(id: number): void {
    if (this.pingOutstanding && id === this.pingId && this.timer !== undefined) this.restart();
  }

  private arm(ms: number): void {
    this.dueAt = this.clock.now() + ms;
    this.armedMs = ms;
    // A new timer each time: `refresh()` would keep the first delay, turning timeoutMs into keepaliveMs.
    this.clock.clear(this.timer);
    this.timer = this.clock.timeout(this.onTimer, ms);
  }

  /** Life seen: wait a quiet period (short while replies are awaited) before the next PING. */
  private restart(): void {
    this.gotData = false;
    this.pingOutstanding = false;
    this.arm(this.host.awaitingReplies() ? this.probeMs : this.keepaliveMs);
  }

  private readonly onTimer = (): void => {
    const now = this.clock.now();
    const lateMs = now - this.dueAt;
    if (this.gotData) {
      this.restart();
    } else if (!this.pingOutstanding) {
      this.pingOutstanding = true;
      this.pingId = (this.pingId + 1) >>> 0;
      this.pingSentAt = now;
      this.host.ping(this.pingId);
      this.arm(this.timeoutMs);
    } else if (lateMs > this.timeoutMs / 2) {
      // Our own event loop stalled: the answer may be unread in the socket. Not the peer's fault.
      this.arm(this.timeoutMs);
    } else {
      // Timers run before I/O in a loop turn: if our loop was blocked up to about now, the answer may
      // be unread in the socket. Judge after this turn's I/O has been read.
      this.clock.afterIo(this.judge);
    }
  };

  private readonly judge = (): void => {
    // Stopped, or the PONG was among what this turn read (and restarted the cycle).
    if (this.timer === undefined || !this.pingOutstanding) return;
    if (this.gotData) return this.onTimer();
    this.stop();
    this.host.dead(new RpcError(Code.UNAVAILABLE, `keepalive timeout: no answer to PING within ${this.timeoutMs} ms`));
  };
}
