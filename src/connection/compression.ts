import { constants, createInflateRaw, deflateRaw } from 'node:zlib';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { budgetExhausted, type MemoryAccount } from './memory-account.js';

/**
 * Per-message compression (SPEC.md section 12): raw DEFLATE on libuv's thread pool, so a large
 * message never blocks the event loop. Level 1: on a LAN the wire is rarely slower than zlib.
 */

/** Compresses message bytes. */
export function compress(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    deflateRaw(data, { level: constants.Z_BEST_SPEED }, (err, out) => (err === null ? resolve(out) : reject(err)));
  });
}

/** Output chunk of an inflation: what is asked of the budget at a time. */
const INFLATE_CHUNK_BYTES = 64 * 1024;

/** Rejection of an inflation whose start its owner refused (see {@link InflateOptions.head}); nothing to report. */
export const HEAD_REFUSED = Symbol('head refused');

/** What an inflation asks of its owner as it goes. */
export interface InflateOptions {
  /** Asked for every output chunk, given back when the inflation ends: refused, RESOURCE_EXHAUSTED. */
  budget?: MemoryAccount | undefined;
  /** Bytes of output handed to {@link head} before the rest is inflated. */
  headBytes?: number | undefined;
  /** Sees the first `headBytes` of output; false stops the inflation (rejects with {@link HEAD_REFUSED}). */
  head?: ((start: Buffer) => boolean) | undefined;
}

/** A running inflation: its result, and a way to stop it (its output is then dropped). */
export interface Inflation {
  readonly done: Promise<Buffer>;
  stop(): void;
}

/**
 * Inflates message bytes on the thread pool, chunk by chunk, refusing (RESOURCE_EXHAUSTED) as soon as
 * the output would exceed `maxBytes` or the budget refuses a chunk: a small decompression bomb
 * allocates no more than that. Corrupt data rejects with a plain Error.
 */
export function inflate(data: Buffer, maxBytes: number, options: InflateOptions = {}): Inflation {
  const z = createInflateRaw({ chunkSize: INFLATE_CHUNK_BYTES });
  const parts: Buffer[] = [];
  const budget = options.budget;
  let n = 0;
  let reserved = 0;
  let ended = false;
  let headSeen = options.head === undefined;
  let settle!: (err: unknown, out?: Buffer) => void;
  const done = new Promise<Buffer>((resolve, reject) => {
    settle = (err, out) => {
      if (ended) return;
      ended = true;
      z.destroy();
      parts.length = 0;
      budget?.credit(reserved);
      reserved = 0;
      if (err === undefined) resolve(out!);
      else reject(err);
    };
  });
  z.on('data', (chunk: Buffer) => {
    if (ended) return;
    n += chunk.length;
    if (n > maxBytes)
      return settle(new RpcError(Code.RESOURCE_EXHAUSTED, `compressed message inflates beyond maxMessageBytes (${maxBytes})`));
    if (budget !== undefined) {
      if (!budget.reserve(chunk.length)) return settle(new RpcError(Code.RESOURCE_EXHAUSTED, budgetExhausted('inflation')));
      reserved += chunk.length;
    }
    parts.push(chunk);
    if (!headSeen && n >= (options.headBytes ?? 0)) {
      headSeen = true;
      if (!options.head!(parts.length === 1 ? parts[0]! : Buffer.concat(parts, n))) settle(HEAD_REFUSED);
    }
  });
  z.on('end', () => settle(undefined, parts.length === 1 ? parts[0]! : Buffer.concat(parts, n)));
  z.on('error', (err) => settle(err));
  z.end(data);
  return { done, stop: () => settle(HEAD_REFUSED) };
}
