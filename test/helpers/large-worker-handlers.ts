/** Worker-thread handlers for the large-message protocol (test/helpers/large.ts), loaded via `workers.module`. */
import { threadId } from 'node:worker_threads';

/** Echoes the payload. */
export function echo(req: { data: Buffer }): Buffer {
  if (threadId === 0) throw new Error('ran on the main thread');
  return req.data;
}
