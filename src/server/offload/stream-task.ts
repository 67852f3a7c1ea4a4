import type { MessagePort } from 'node:worker_threads';
import type { Metadata } from '../../framing/bodies.js';
import type { PeerInfo } from '../call-context.js';
import type { FailedReply } from './offload-task.js';

/**
 * What crosses the thread boundary for a stream whose handler runs in a worker. The stream starts as
 * a short piscina task ({@link StreamTask}) that hands the worker one end of a MessageChannel and
 * returns at once: the stream then lives on that worker's event loop, not as a piscina task, so an
 * open stream (mostly waiting for credit or requests) never holds a thread the way a running unary
 * task does. Everything after the start goes over the port, as bytes ({@link ToWorker}, {@link ToMain}).
 */

/** The task that starts one stream in a worker (piscina task name {@link STREAM_TASK_NAME}). */
export interface StreamTask {
  /** Index into the shared cancellation flags, owned by this stream until it is done. */
  slot: number;
  /** Local message index. */
  index: number;
  /** The peer's message index, and its protocol text when it differs from ours (for resolution). */
  remoteIndex: number;
  remoteId: string | undefined;
  /**
   * Sent with every stream from a peer whose protocol differs (a worker caches its codec by
   * `remoteId`): once per stream, never per element, so the fingerprint round trip of unary tasks
   * is not worth a port that would have to come back.
   */
  remoteText: string | undefined;
  /** A server stream's request record (peer schema), transferred; undefined for client and bidi streams. */
  request: ArrayBuffer | undefined;
  metadata: Metadata;
  /** Epoch ms or Infinity. */
  deadline: number;
  peer: PeerInfo;
  /** The worker's end of the stream's channel (transferred). */
  port: MessagePort;
}

/** The piscina task name of {@link StreamTask}, a named export of the worker script. */
export const STREAM_TASK_NAME = 'openStream';

/** What a stream's start task resolves with: the worker thread that now runs it. */
export interface StreamStarted {
  threadId: number;
}

/** Main thread to worker. */
export type ToWorker =
  /** The main thread takes `n` more responses (server and bidi streams: the read-ahead it keeps). */
  | { t: 'pull'; n: number }
  /** The next request element (peer schema), in answer to `want`. Transferred. */
  | { t: 'req'; bytes: ArrayBuffer }
  /** The requests ended (the client's END). */
  | { t: 'reqEnd' }
  /** The requests failed (the call was cancelled): the handler's `for await` throws this. */
  | { t: 'reqFail'; code: number; message: string }
  /** The call is over from the main thread's side (cancel, deadline, disconnect, producer closed). */
  | { t: 'cancel'; code: number; message: string };

/** Worker to main thread. */
export type ToMain =
  /** The handler called `ctx.sendHeader()`. */
  | { t: 'headers'; headers: Metadata }
  /** One response element (server schema), transferred; with the headers if they were not sent yet. */
  | { t: 'data'; bytes: Uint8Array; headers: Metadata | undefined }
  /** The handler asks for the next request element. */
  | { t: 'want' }
  /** The handler stopped reading requests before their end. */
  | { t: 'reqStop' }
  /**
   * The stream is over in the worker and its handler has finished (its generator closed). `reply`:
   * a client stream's RESPONSE, or any stream's ERROR (trailers inside); undefined for a server or bidi
   * stream that ended (`trailers` then go into the END) or that was cancelled.
   */
  | { t: 'done'; reply: Uint8Array | FailedReply | undefined; headers: Metadata | undefined; trailers: Metadata | undefined };

/** Responses the main thread asks a worker for ahead of the pump: amortises the thread hop, bounds memory. */
export const STREAM_READ_AHEAD = 4;
