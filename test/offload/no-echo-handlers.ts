/** A worker module without the `echo` handler the offload tests list: `listen` must refuse it. */
export function ping(): string {
  return 'pong';
}
