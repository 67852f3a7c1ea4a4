/**
 * @grpc/grpc-js: the unary Echo of bench/echo.proto (protobuf through @grpc/proto-loader), plaintext
 * HTTP/2 on one loopback connection; the server and client of bench/grpc-echo.ts.
 */
import { benchItem } from '../payload.js';
import { grpcClient, startGrpcServer } from '../grpc-echo.js';
import type { Peer } from './peer.js';
import { packageVersion } from './support.js';

/** The grpc-js peer. */
export const peer: Peer = {
  id: 'grpc',
  label: 'grpc-js',
  description: `@grpc/grpc-js ${packageVersion('@grpc/grpc-js')}: unary gRPC over plaintext HTTP/2 (one connection), protobuf via @grpc/proto-loader.`,

  startServer: ({ delayMs }) => startGrpcServer(delayMs),

  async connect(port) {
    const client = await grpcClient(port);
    return { call: () => client.call(benchItem), close: () => client.close() };
  },
};
