/**
 * Loads the `etcd3` package on first use of an etcd registry. It is an optional peer dependency:
 * it pulls in grpc-js and protobufjs (about 11 MB installed, 180 ms of import time), which an
 * application that never creates an etcd registry should neither install nor load.
 *
 * A dynamic `import()` rather than a `createRequire()` of this module's URL: it works unchanged in
 * the ESM and the CommonJS build (tsc keeps `import()` as it is under module nodenext), and a
 * CommonJS module has no module URL to create a require function from.
 */
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';

type Etcd3Module = typeof import('etcd3');

let loading: Promise<Etcd3Module> | undefined;
let loaded: Etcd3Module | undefined;

/**
 * The `etcd3` module, imported once. Rejects with FAILED_PRECONDITION naming the package to install
 * when it is missing (and tries again on the next call, in case it was installed meanwhile).
 */
export function loadEtcd3(): Promise<Etcd3Module> {
  loading ??= import('etcd3').then(
    (mod) => (loaded = mod as Etcd3Module),
    (err: unknown) => {
      loading = undefined;
      throw new RpcError(Code.FAILED_PRECONDITION, 'createEtcdRegistry needs the etcd3 package: npm install etcd3', { cause: err });
    },
  );
  return loading;
}

/** The `etcd3` module if {@link loadEtcd3} has loaded it, else undefined (for synchronous error mapping). */
export function loadedEtcd3(): Etcd3Module | undefined {
  return loaded;
}
