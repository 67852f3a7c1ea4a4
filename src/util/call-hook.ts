/**
 * Runs a user hook (authenticate, authorize, credentials) and returns its result as a promise: one
 * that throws synchronously rejects, so every hook failure takes the same path.
 */
export function callHook<T>(hook: () => T | PromiseLike<T>): Promise<T> {
  return new Promise<T>((resolve) => resolve(hook()));
}
