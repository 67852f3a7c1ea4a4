import { constants, deflateRaw, inflateRaw } from 'node:zlib';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';

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

/**
 * Inflates message bytes, refusing (RESOURCE_EXHAUSTED) as soon as the output would exceed
 * `maxBytes`: zlib stops there, so a small decompression bomb cannot allocate more. Corrupt data
 * rejects with a plain Error.
 */
export function decompress(data: Buffer, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    inflateRaw(data, { maxOutputLength: Math.max(1, maxBytes) }, (err, out) => {
      if (err === null) return resolve(out);
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        return reject(new RpcError(Code.RESOURCE_EXHAUSTED, `compressed message inflates beyond maxMessageBytes (${maxBytes})`));
      }
      reject(err);
    });
  });
}
