/**
 * Connect (connect-node) over HTTP/2: the Echo service of bench/echo.proto served by
 * `connectNodeAdapter` on a node:http2 server, called through one HTTP/2 session with the Connect
 * protocol and binary protobuf bodies (connect-node's gRPC protocol on the same session measured
 * about 1.7x the CPU per call here). The protobuf descriptors are built at runtime from a
 * FileDescriptorProto written here (no codegen), mirroring bench/echo.proto.
 */
import { createServer, type Http2Session } from 'node:http2';
import { create, createFileRegistry, type DescMessage, type DescService, type MessageShape } from '@bufbuild/protobuf';
import { FieldDescriptorProto_Label as Label, FieldDescriptorProto_Type as Type, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { createClient, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter, createConnectTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { benchItem } from '../payload.js';
import type { Peer } from './peer.js';
import { answer, listenLoopback, packageVersion } from './support.js';

/** bench/echo.proto as a descriptor: package avrpc.echo, message Item, service Echo. */
function echoDescriptors(): { item: DescMessage; service: DescService } {
  const field = (name: string, number: number, type: Type, label = Label.OPTIONAL) => ({ name, number, type, label, jsonName: name });
  const file = create(FileDescriptorProtoSchema, {
    name: 'bench/echo.proto',
    package: 'avrpc.echo',
    syntax: 'proto3',
    messageType: [
      {
        name: 'Item',
        field: [
          field('id', 1, Type.INT64),
          field('name', 2, Type.STRING),
          field('tags', 3, Type.STRING, Label.REPEATED),
          field('score', 4, Type.DOUBLE),
          field('blob', 5, Type.BYTES),
        ],
      },
    ],
    service: [{ name: 'Echo', method: [{ name: 'Echo', inputType: '.avrpc.echo.Item', outputType: '.avrpc.echo.Item' }] }],
  });
  const registry = createFileRegistry(file, () => undefined);
  return { item: registry.getMessage('avrpc.echo.Item')!, service: registry.getService('avrpc.echo.Echo')! };
}

/** The Connect peer. */
export const peer: Peer = {
  id: 'connect',
  label: 'Connect h2',
  description:
    `Connect (connect-node ${packageVersion('@connectrpc/connect-node')}): ` +
    'Connect protocol with binary protobuf over one HTTP/2 session, node:http2 server.',

  async startServer({ delayMs }) {
    const { service } = echoDescriptors();
    const routes = (router: ConnectRouter): void => {
      router.service(service, { echo: (item: unknown) => answer(item, delayMs) } as never);
    };
    const sessions = new Set<Http2Session>();
    const server = createServer(connectNodeAdapter({ routes }));
    server.on('session', (s) => {
      sessions.add(s);
      s.once('close', () => sessions.delete(s));
    });
    return listenLoopback(server, () => {
      for (const s of sessions) s.destroy();
    });
  },

  async connect(port) {
    const { item, service } = echoDescriptors();
    const baseUrl = `http://127.0.0.1:${port}`;
    // Our own session manager, so that close() can end the session.
    const sessionManager = new Http2SessionManager(baseUrl);
    const transport = createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true, sessionManager });
    const client = createClient(service, transport) as unknown as { echo(req: MessageShape<DescMessage>): Promise<unknown> };
    const request = create(item, { ...benchItem, id: BigInt(benchItem.id) });
    const call = (): Promise<unknown> => client.echo(request);
    await call();
    return { call, close: () => sessionManager.abort() };
  },
};
