import { intOption, invalid, MAX_TIMER_MS } from '../util/validate.js';
import type { FramedSocketOptions } from './framed-socket-options.js';

/**
 * Options both sides of a connection share: frame and message limits, fragments, compression,
 * keepalive and the peer-protocol cache. `ClientOptions` and `ServerOptions` extend this; where a
 * default differs between the sides both are given. "This side" is the one the options are for;
 * "the peer" the other end of its connections.
 */
export interface TransportOptions {
  /** Largest frame body accepted, in bytes; a peer announcing a longer one loses its connection. Default 16 MiB. */
  maxFrameBytes?: number;
  /**
   * Largest message accepted (requests on a server, responses on a client), in bytes: its payload as
   * sent, and its whole body after reassembly of fragments and after decompression. A larger one fails
   * RESOURCE_EXHAUSTED for that call only (a fragmented one as soon as its declared size arrives); the
   * connection stays. May exceed `maxFrameBytes` (larger messages travel in fragments). At least 1.
   * Default 16 MiB on a server (gRPC's is 4 MiB: raise it for bulk transfers), 64 MiB on a client.
   */
  maxMessageBytes?: number;
  /**
   * Messages this side sends (requests from a client, responses from a server) larger than this many
   * bytes go out in fragments of at most this size, interleaved with other calls (when the peer supports
   * it); 0 turns fragments off both ways. 0, or 8 to 16 MiB. Default 65536.
   */
  fragmentBytes?: number;
  /**
   * Fragmented messages received at once per connection (advertised to the peer as `P`); with
   * `maxMessageBytes` it bounds reassembly memory. Default 4.
   */
  maxPartialMessages?: number;
  /**
   * Fragment bytes the peer may send ahead of this side's acknowledgements (advertised as `W`): what a
   * bulk transfer keeps in flight, so it streams without waiting on an event loop for every
   * acknowledgement. At least 1024. Default 4194304 (4 MiB).
   */
  fragmentWindowBytes?: number;
  /**
   * Fragment bytes of large messages this side keeps unacknowledged while small messages share the
   * connection (one went either way within the last 100 ms), whatever the peer's window allows: what
   * a small call may wait behind, in kernel buffers too. At least 1024. Default 262144 (256 KiB).
   */
  interleaveWindowBytes?: number;
  /**
   * Elements of one stream (SPEC.md section 13) this side buffers before its consumer takes them,
   * advertised to the peer as the stream's credit: a producer faster than its consumer waits once this
   * many are unconsumed, so memory stays bounded. 1 to 65536. Default 64.
   */
  maxBufferedElements?: number;
  /**
   * Compress messages this side sends of at least this many bytes with deflate, when the peer agrees
   * (a client offers, a server accepts); 0: off both ways. Default 0.
   */
  compressAboveBytes?: number;
  /**
   * Bytes queued for a peer that does not read them before its connection is dropped (a client's calls
   * on it fail RESOURCE_EXHAUSTED). On a server they are the bytes in the socket and those of large
   * answers waiting in fragments for the peer's acknowledgement beyond the largest one (which may alone
   * exceed this, but counts toward `maxBufferedBytes` and is cut off by `stallTimeoutMs`). At least 1024.
   * Default 16 MiB on a server (an answer of `maxFrameBytes` in one frame, to a client without
   * fragments, must fit), 32 MiB on a client.
   */
  maxQueuedBytes?: number;
  /**
   * Frames this side appends in one event-loop turn (answers to a chunk of requests read at once, calls
   * made in one loop) after which those so far are written at once; the rest go at the turn's end as
   * usual. The peer starts on the first ones while this side produces the rest, so a busy connection's
   * two processes work at the same time instead of taking turns: on a 2-core machine, 64 calls in
   * flight made about 1.8x the calls/s. It costs at most one more socket write per turn. 0: one write
   * per turn. Default 16.
   */
  earlyWriteFrames?: number;
  /**
   * Time without receiving anything before this side PINGs the peer, in ms; 0 disables keepalive.
   * While a client has calls in flight on a socket its PING goes out sooner, after an eighth of
   * `keepaliveTimeoutMs` of silence (250 ms by default, at most `keepaliveMs`): a server that stops
   * answering (SIGSTOP, a frozen VM, a cable pulled with no reset) is found within a call's deadline,
   * not after `keepaliveMs`. Default 30000.
   */
  keepaliveMs?: number;
  /**
   * Time to wait for anything at all after a PING before failing the connection, in ms; a client's
   * calls then fail over (idempotent ones, or ones that never reached the server). Stalls of this
   * process's own event loop are measured and never counted. Default 10000 on a server; 2000 on a
   * client: twice a 1 s event-loop stall of a busy server (a CPU-heavy handler, a GC pause), which must
   * not count as death, so that a silent server with calls in flight is detected about 2.3-2.5 s after
   * it stopped, leaving a retry room inside a 3 s deadline. Raise it if your servers may block longer.
   */
  keepaliveTimeoutMs?: number;
  /**
   * Peer protocols (and their resolvers) remembered, by fingerprint. On a server a protocol a client
   * sent joins them only once that client is authenticated (by `authenticate`, or a client certificate
   * TLS verified) or else once one of its calls completed successfully; until then it serves its own
   * connection only. Default 64.
   */
  resolverCacheSize?: number;
  /**
   * Largest protocol text the peer may send in its handshake (a client's HELLO, a server's WELCOME), in
   * UTF-8 bytes, checked before it is hashed or parsed; a protocol within it but with more messages,
   * named types, fields or nesting than SPEC.md section 11.3 allows is refused too, before any Avro
   * type is built. A server answers GOAWAY RESOURCE_EXHAUSTED; a client fails the connection, and the
   * calls waiting for it, with RESOURCE_EXHAUSTED. Real protocols take a few KB to about 100 KB;
   * parsing one costs about a microsecond and tens of bytes of heap per byte. Default 262144 (256 KiB).
   */
  maxProtocolBytes?: number;
}

/** {@link TransportOptions} with every default filled in. */
export type ResolvedTransportOptions = Readonly<Required<TransportOptions>>;

/** Every option name of {@link TransportOptions}, for the sides' `KNOWN_*` lists. */
export const KNOWN_TRANSPORT_OPTIONS = {
  maxFrameBytes: true,
  maxMessageBytes: true,
  fragmentBytes: true,
  maxPartialMessages: true,
  fragmentWindowBytes: true,
  interleaveWindowBytes: true,
  compressAboveBytes: true,
  maxBufferedElements: true,
  maxQueuedBytes: true,
  earlyWriteFrames: true,
  keepaliveMs: true,
  keepaliveTimeoutMs: true,
  resolverCacheSize: true,
  maxProtocolBytes: true,
} as const satisfies Record<keyof TransportOptions, true>;

const KiB = 1024;
const MiB = 1024 * KiB;
/** Limits are carried in u32 fields on the wire (advertised windows) or compared with u32 lengths. */
const U32 = 0xffffffff;

/** Accepted values of one option: an integer within [min, max]; `offOrAtLeast`: 0 (off) or at least that. */
interface Bounds {
  readonly min: number;
  readonly max: number;
  readonly offOrAtLeast?: number;
}

/**
 * The one set of bounds per option, whichever side it configures. Durations arm timers as they are, so
 * they stop at {@link MAX_TIMER_MS} (a longer delay would fire at once); a fragment must hold its
 * header fields, and is at most 16 MiB so that one fits a default frame.
 */
export const TRANSPORT_BOUNDS = {
  maxFrameBytes: { min: 64, max: U32 },
  maxMessageBytes: { min: 1, max: U32 },
  fragmentBytes: { min: 0, max: 16 * MiB, offOrAtLeast: 8 },
  maxPartialMessages: { min: 1, max: U32 },
  fragmentWindowBytes: { min: KiB, max: U32 },
  interleaveWindowBytes: { min: KiB, max: U32 },
  compressAboveBytes: { min: 0, max: Number.MAX_SAFE_INTEGER },
  maxBufferedElements: { min: 1, max: 65536 },
  maxQueuedBytes: { min: KiB, max: Number.MAX_SAFE_INTEGER },
  earlyWriteFrames: { min: 0, max: U32 },
  keepaliveMs: { min: 0, max: MAX_TIMER_MS },
  keepaliveTimeoutMs: { min: 1, max: MAX_TIMER_MS },
  resolverCacheSize: { min: 1, max: Number.MAX_SAFE_INTEGER },
  maxProtocolBytes: { min: 0, max: U32 },
} as const satisfies Record<keyof TransportOptions, Bounds>;

/** The defaults the sides choose for themselves; every other transport default is shared. */
export type SideTransportDefaults = Pick<ResolvedTransportOptions, 'maxMessageBytes' | 'maxQueuedBytes' | 'keepaliveTimeoutMs'>;

/** Defaults both sides share (documented in SPEC.md section 11.3 and README). */
export const SHARED_TRANSPORT_DEFAULTS: Readonly<Omit<ResolvedTransportOptions, keyof SideTransportDefaults>> = Object.freeze({
  maxFrameBytes: 16 * MiB,
  fragmentBytes: 64 * KiB,
  maxPartialMessages: 4,
  fragmentWindowBytes: 4 * MiB,
  interleaveWindowBytes: 256 * KiB,
  compressAboveBytes: 0,
  maxBufferedElements: 64,
  earlyWriteFrames: 16,
  keepaliveMs: 30_000,
  resolverCacheSize: 64,
  maxProtocolBytes: 256 * KiB,
});

/** One side's transport defaults: the shared ones plus that side's own. */
export function transportDefaults(side: SideTransportDefaults): ResolvedTransportOptions {
  return Object.freeze({ ...SHARED_TRANSPORT_DEFAULTS, ...side });
}

/**
 * Validates the transport options of `input` and fills the rest from `defaults`; throws
 * INVALID_ARGUMENT naming the option under `path` (`createServer: options.maxFrameBytes must be ...`).
 * Unknown names are the caller's to refuse (it knows its side's other options).
 */
export function resolveTransportOptions(
  path: string,
  input: TransportOptions,
  defaults: ResolvedTransportOptions,
): ResolvedTransportOptions {
  const out = {} as Record<keyof TransportOptions, number>;
  for (const name of Object.keys(KNOWN_TRANSPORT_OPTIONS) as (keyof TransportOptions)[]) {
    const bounds: Bounds = TRANSPORT_BOUNDS[name];
    const at = `${path}.${name}`;
    const n = intOption(at, input[name], defaults[name], bounds.min, bounds.max);
    if (bounds.offOrAtLeast !== undefined && n > 0 && n < bounds.offOrAtLeast)
      invalid(at, `must be 0 (off) or at least ${bounds.offOrAtLeast}, got ${n}`);
    out[name] = n;
  }
  return out;
}

/** The transport options a `FramedSocket` takes as they are. */
type FramedTransport = Pick<FramedSocketOptions, keyof FramedSocketOptions & keyof TransportOptions>;

/** What a side adds to its transport options to make a `FramedSocket`'s. */
export type FramedSocketSide = Omit<FramedSocketOptions, keyof FramedTransport>;

/**
 * A `FramedSocket`'s options: the filled transport options it uses, plus the side's own (preface,
 * read pausing, memory accounting, observer). The one place the transport options are handed over.
 */
export function framedSocketOptions(t: ResolvedTransportOptions, side: FramedSocketSide): FramedSocketOptions {
  const transport: FramedTransport = {
    maxFrameBytes: t.maxFrameBytes,
    maxMessageBytes: t.maxMessageBytes,
    fragmentBytes: t.fragmentBytes,
    maxPartialMessages: t.maxPartialMessages,
    fragmentWindowBytes: t.fragmentWindowBytes,
    interleaveWindowBytes: t.interleaveWindowBytes,
    compressAboveBytes: t.compressAboveBytes,
    maxBufferedElements: t.maxBufferedElements,
    maxQueuedBytes: t.maxQueuedBytes,
    earlyWriteFrames: t.earlyWriteFrames,
    keepaliveMs: t.keepaliveMs,
    keepaliveTimeoutMs: t.keepaliveTimeoutMs,
  };
  return { ...side, ...transport };
}
