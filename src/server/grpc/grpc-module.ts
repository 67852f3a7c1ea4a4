/**
 * Loads `@grpc/grpc-js` when a server is given the `grpc` option. It is an optional peer dependency:
 * a server that never bridges to gRPC should neither install nor load it (about 2 MB and 60 ms of
 * import time). A dynamic `import()` works unchanged in the ESM and the CommonJS build.
 */
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';

/** The `@grpc/grpc-js` module's type. */
export type GrpcModule = typeof import('@grpc/grpc-js');

let loading: Promise<GrpcModule> | undefined;

/**
 * The `@grpc/grpc-js` module, imported once. Rejects with FAILED_PRECONDITION naming the package to
 * install when it is missing (and tries again on the next call, in case it was installed meanwhile).
 */
export function loadGrpc(): Promise<GrpcModule> {
  loading ??= import('@grpc/grpc-js').then(
    (mod) => mod as GrpcModule,
    (err: unknown) => {
      loading = undefined;
      throw new RpcError(Code.FAILED_PRECONDITION, 'the grpc option needs the @grpc/grpc-js package: npm install @grpc/grpc-js', {
        cause: err,
      });
    },
  );
  return loading;
}
