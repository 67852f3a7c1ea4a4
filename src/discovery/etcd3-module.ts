/**
 * Loads the `etcd3` package on first use. It pulls in grpc-js and protobufjs (about 180 ms of
 * import time), which a process that never creates an etcd registry should not pay for.
 */
import { createRequire } from 'node:module';

type Etcd3Module = typeof import('etcd3');
let loaded: Etcd3Module | undefined;

/** The `etcd3` module, required synchronously the first time it is needed (it is CommonJS). */
export function etcd3(): Etcd3Module {
  loaded ??= createRequire(import.meta.url)('etcd3') as Etcd3Module;
  return loaded;
}
