/**
 * Test helper: grpc-js clients of an avrpc server's gRPC bridge, built as a gRPC user would, with
 * `makeGenericClientConstructor` and avsc serializers (and, for the health service, @grpc/proto-loader
 * reading the standard health.proto, an independent protobuf implementation).
 */
import { createConnection, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import * as assert from 'uvu/assert';
import * as protoLoader from '@grpc/proto-loader';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Protocol } from '../../src/index.js';

/** What a unary call gave: its value or status, with the response headers and trailers. */
export interface UnaryResult {
  value?: unknown;
  error?: grpc.ServiceError;
  headers: grpc.Metadata | undefined;
  status: grpc.StatusObject | undefined;
}

/** A grpc-js client of every message of `protocol` (streams as gRPC streams of their kind), with avsc serializers. */
export function avroClient(
  protocol: Protocol,
  port: number,
  credentials = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = {},
): grpc.Client {
  const methods: grpc.ServiceDefinition = {};
  for (const msg of protocol.messages) {
    (methods as Record<string, grpc.MethodDefinition<unknown, unknown>>)[msg.name] = {
      path: `/${protocol.name}/${msg.name}`,
      requestStream: msg.stream === 'client' || msg.stream === 'bidi',
      responseStream: msg.stream === 'server' || msg.stream === 'bidi',
      requestSerialize: (v: unknown) => msg.request.toBuffer(v),
      requestDeserialize: (b: Buffer) => msg.request.fromBuffer(b),
      responseSerialize: (v: unknown) => msg.response.toBuffer(v),
      // grpc-js takes a response deserialized to null for no response at all: a void message's is undefined.
      responseDeserialize: (b: Buffer) => msg.response.fromBuffer(b) ?? undefined,
    };
  }
  const Ctor = grpc.makeGenericClientConstructor(methods, protocol.name);
  return new Ctor(`127.0.0.1:${port}`, credentials, options);
}

/** A client sending raw bytes to `path` (for requests no serializer would make). */
export function rawClient(port: number): grpc.Client {
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** Calls `method` of `client`; resolves with everything the call gave, never rejects. */
export function unary(
  client: grpc.Client,
  method: string,
  request: unknown,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
  onCall?: (call: grpc.ClientUnaryCall) => void,
): Promise<UnaryResult> {
  return new Promise((resolve) => {
    const result: UnaryResult = { headers: undefined, status: undefined };
    let pending = 2;
    const done = () => --pending === 0 && resolve(result);
    const fn = (client as unknown as Record<string, grpc.requestCallback<unknown> & ((...a: unknown[]) => grpc.ClientUnaryCall)>)[method]!;
    const call = fn.call(client, request, metadata, options, (err: grpc.ServiceError | null, value?: unknown) => {
      if (err !== null) result.error = err;
      else result.value = value;
      done();
    });
    call.on('metadata', (md: grpc.Metadata) => (result.headers = md));
    call.on('status', (s: grpc.StatusObject) => {
      result.status = s;
      done();
    });
    onCall?.(call);
  });
}

/** Calls `path` with raw `bytes`, answers raw bytes. */
export function rawUnary(client: grpc.Client, path: string, bytes: Buffer): Promise<{ value?: Buffer; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      (err, value) => resolve(err === null ? { value: value! } : { error: err }),
    );
  });
}

/** grpc/grpc-proto's health.proto (the Check half), as probes use it. */
const HEALTH_PROTO = `syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
`;

/** A grpc.health.v1.Health client from health.proto through @grpc/proto-loader. */
export function healthClient(port: number): grpc.Client {
  const dir = mkdtempSync(join(tmpdir(), 'avrpc-health-'));
  const file = join(dir, 'health.proto');
  writeFileSync(file, HEALTH_PROTO);
  const def = protoLoader.loadSync(file, { enums: String });
  rmSync(dir, { recursive: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  return new pkg.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** What a response stream gave: its elements, then its status (error set unless OK), headers and trailers. */
export interface StreamResult {
  items: unknown[];
  error?: grpc.ServiceError;
  headers: grpc.Metadata | undefined;
  status: grpc.StatusObject | undefined;
}

/** Reads a server or bidi stream `call` to its end; resolves with everything it gave, never rejects. */
export function readStream(call: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>): Promise<StreamResult> {
  return new Promise((resolve) => {
    const result: StreamResult = { items: [], headers: undefined, status: undefined };
    call.on('metadata', (md: grpc.Metadata) => (result.headers = md));
    call.on('data', (v: unknown) => result.items.push(v));
    call.on('error', (e: grpc.ServiceError) => (result.error = e));
    call.on('status', (s: grpc.StatusObject) => {
      result.status = s;
      // 'status' may come before the last 'data' and 'error' events are out: settle after them.
      setImmediate(() => resolve(result));
    });
  });
}

/** The method `name` of a generic client, typed loosely (its kind decides its arguments). */
export function methodOf<F>(client: grpc.Client, name: string): F {
  const fn = (client as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!;
  return fn.bind(client) as F;
}

/** A TCP connection to `port` that sends nothing; resolves once open. */
export async function silent(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = createConnection({ host: '127.0.0.1', port });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return { socket, closed };
}

/** Resolves true once `p` settles, false if it has not after `ms` (a bound on waiting, not a timing assertion). */
export function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout;
  return Promise.race([p.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

/**
 * Asserts that `port` (maxHandshakingPerAddress 1) refuses a second silent connection from this
 * address while a first waits in its handshake, then closes that first one.
 */
export async function assertOneHandshakeAtATime(port: number): Promise<void> {
  const first = await silent(port);
  const second = await silent(port);
  assert.ok(await within(second.closed, 10_000), 'the second handshake from the address was refused');
  assert.not.ok(await within(first.closed, 100), 'the first still waits for its handshake');
  first.socket.destroy();
  await first.closed;
}
