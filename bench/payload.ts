/**
 * The one benchmark payload every scenario sends (avrpc, grpc-js and the raw floor): an `Item` with an
 * id, an 8-character name, 3 tags, a score and a 64-byte blob.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The benchmark Item (protocol/echo.avdl `Item`, bench/echo.proto `Item`). */
export const benchItem = {
  id: 1234567890123,
  name: 'bench-01',
  tags: ['alpha', 'beta', 'gamma'],
  score: 3.14159,
  blob: Buffer.alloc(64, 7),
};

/** The benchmark Item in Avro's JSON encoding (bytes as code points 0-255), as an HTTP/JSON caller sends it. */
export const benchItemJson = { ...benchItem, blob: benchItem.blob.toString('latin1') };

/** The body of an HTTP/JSON echo call: the echo message's parameters, `{ item }`, as JSON text. */
export const benchRequestJson: string = JSON.stringify({ item: benchItemJson });

/** The repository root, from this compiled file's location (dist/bench/payload.js). */
export const repoRoot: string = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Absolute path of a file given relative to the repository root. */
export function repoFile(...parts: string[]): string {
  return join(repoRoot, ...parts);
}

/**
 * `{ maxBufferedElements }` from BENCH_STREAM_WINDOW for both sides of the stream benchmarks, or
 * nothing (avrpc's default window) when it is unset.
 */
export function streamWindow(): { maxBufferedElements?: number } {
  const w = process.env.BENCH_STREAM_WINDOW;
  return w === undefined || w === '' ? {} : { maxBufferedElements: Number(w) };
}
