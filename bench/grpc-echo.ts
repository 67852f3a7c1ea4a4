/**
 * The @grpc/grpc-js baseline: the same Item echoed by a unary method, from bench/echo.proto loaded
 * with @grpc/proto-loader. Plaintext HTTP/2 on loopback.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { repoFile } from './payload.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
function echoService(): any {
  const def = protoLoader.loadSync(repoFile('bench/echo.proto'), { keepCase: true, longs: Number, defaults: true });
  return (grpc.loadPackageDefinition(def) as any).avrpc.echo.Echo;
}

/** Starts the grpc-js echo server on 127.0.0.1, port 0. */
export async function startGrpcServer(handlerDelayMs = 0): Promise<{ port: number; close(): Promise<void> }> {
  const Echo = echoService();
  const server = new grpc.Server();
  server.addService(Echo.service, {
    Echo: (call: any, callback: any) => {
      if (handlerDelayMs > 0) setTimeout(() => callback(null, call.request), handlerDelayMs);
      else callback(null, call.request);
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { port, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

/** A grpc-js client; `call(item)` resolves with the echoed Item. */
export async function grpcClient(port: number): Promise<{ call(item: object): Promise<unknown>; close(): void }> {
  const Echo = echoService();
  const client = new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (err: Error | undefined) => (err ? reject(err) : resolve())),
  );
  return {
    call: (item) =>
      new Promise((resolve, reject) => client.Echo(item, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res)))),
    close: () => client.close(),
  };
}
