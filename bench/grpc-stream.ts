/**
 * The @grpc/grpc-js baseline of issue 10's server-stream benchmark: a generic service (no .proto)
 * whose one server-streaming method `Watch` takes protocol/stream.avdl's `watch` request and answers
 * with its `Item`s, serialized with avsc, the codec avrpc uses. So both sides of the comparison encode
 * and decode the same bytes with the same library, and the difference is the transport: HTTP/2 framing,
 * grpc-js's per-message work and its flow control. Plaintext on loopback.
 */
import * as grpc from '@grpc/grpc-js';
import type { Protocol } from '../src/index.js';

/** The request of `watch` as the benchmark sends it. */
export interface WatchRequest {
  from: number;
  count: number;
  failAfter: number;
}

/** The generic service definition: `Watch` with avsc serializers from `protocol`'s `watch` message. */
function watchService(protocol: Protocol): grpc.ServiceDefinition {
  const msg = protocol.message('watch');
  if (msg === undefined) throw new Error('protocol has no message watch');
  const { request, response } = msg;
  return {
    Watch: {
      path: '/avrpc.stream.Stream/Watch',
      requestStream: false,
      responseStream: true,
      requestSerialize: (r: unknown) => request.toBuffer(r),
      requestDeserialize: (b: Buffer) => request.fromBuffer(b) as unknown,
      responseSerialize: (item: unknown) => response.toBuffer(item),
      responseDeserialize: (b: Buffer) => response.fromBuffer(b) as unknown,
    },
  };
}

/** Starts the grpc-js streaming server on 127.0.0.1 port 0; `item(i)` makes the i-th element of a stream. */
export async function startGrpcStreamServer(
  protocol: Protocol,
  item: (id: number) => object,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(watchService(protocol), {
    Watch: (call: grpc.ServerWritableStream<WatchRequest, object>) => {
      const { from, count } = call.request;
      let i = 0;
      let cancelled = false;
      call.on('cancelled', () => (cancelled = true));
      // Writes until grpc-js says its buffer is full, then waits for drain: backpressure as avrpc's credit.
      const write = (): void => {
        while (i < count && !cancelled) {
          if (!call.write(item(from + i++))) {
            call.once('drain', write);
            return;
          }
        }
        if (!cancelled) call.end();
      };
      write();
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { port, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

/** A grpc-js client of `Watch`: `stream(count)` resolves with the number of Items received before the end. */
export async function grpcStreamClient(
  protocol: Protocol,
  port: number,
): Promise<{ stream(count: number, timeoutMs: number): Promise<number>; close(): void }> {
  const Client = grpc.makeGenericClientConstructor(watchService(protocol), 'Stream');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));
  const watch = (client as unknown as Record<string, (req: WatchRequest, options: grpc.CallOptions) => grpc.ClientReadableStream<unknown>>)
    .Watch!;
  return {
    stream: (count, timeoutMs) =>
      new Promise<number>((resolve, reject) => {
        let n = 0;
        const call = watch.call(client, { from: 0, count, failAfter: -1 }, { deadline: Date.now() + timeoutMs });
        call.on('data', () => n++);
        call.on('error', reject);
        call.on('end', () => resolve(n));
      }),
    close: () => client.close(),
  };
}
