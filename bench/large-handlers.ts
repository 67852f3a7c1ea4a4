/**
 * The worker-thread handler module of bench/large.ts (`workers.module`): the same echo as its inline
 * server, so the 8 MB request's decode and the response's encode run off the server's main thread.
 */

/** Echoes the payload. */
export function echo(req: { data: Buffer }): Buffer {
  return req.data;
}
