/**
 * avsc 5's own Avro IPC (`avro.Service`): the echo message of protocol/echo.avdl, a stateful channel
 * on one TCP connection (Netty-style framing, calls multiplexed by id), the server's handler called
 * back with the decoded Item. The client's per-call timeout is off (it would arm a timer per call,
 * and no other peer here has one). Both sides hand avsc a corked writable (its transports take any
 * stream): measured on this machine, that halves avsc's CPU per call at 64 in flight.
 */
import { connect, createServer, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import avro from 'avsc';
import { benchItem, repoFile } from '../payload.js';
import type { Peer } from './peer.js';
import { listenLoopback, packageVersion } from './support.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- avsc's services have no typings for messages */
function echoService(): any {
  const protocol = avro.readProtocol(readFileSync(repoFile('protocol/echo.avdl'), 'utf8'));
  return avro.Service.forProtocol(protocol);
}

/**
 * The socket's writable side, corked for the rest of each event-loop turn: avsc's encoder writes each
 * message as a header, then a length and the bytes of each part, one socket write each; corked,
 * a turn's writes leave in one writev.
 */
function turnCorked(socket: Socket): Writable {
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  return new Writable({
    write(chunk: Buffer, _encoding, cb) {
      if (!corked) {
        corked = true;
        socket.cork();
        process.nextTick(uncork);
      }
      socket.write(chunk);
      cb();
    },
    final(cb) {
      socket.end();
      cb();
    },
  });
}

function transport(socket: Socket): { readable: Socket; writable: Writable } {
  return { readable: socket, writable: turnCorked(socket) };
}

/** The avsc 5 Service peer. */
export const peer: Peer = {
  id: 'avsc',
  label: 'avsc Service',
  description:
    `avsc ${packageVersion('avsc')} Service: Avro IPC (handshake, then Netty-framed calls multiplexed by id) over one TCP ` +
    'connection, socket writes corked per event-loop turn.',

  async startServer({ delayMs }) {
    const service = echoService();
    const avroServer = service.createServer({ silent: true });
    avroServer.onEcho((item: unknown, cb: (err: unknown, res?: unknown) => void) => {
      if (delayMs > 0) setTimeout(() => cb(null, item), delayMs);
      else cb(null, item);
    });
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      avroServer.createChannel(transport(socket));
    });
    return listenLoopback(server, () => {
      for (const s of sockets) s.destroy();
    });
  },

  async connect(port) {
    const service = echoService();
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await once(socket, 'connect');
    const client = service.createClient({ timeout: 0 });
    client.createChannel(transport(socket));
    const call = (): Promise<unknown> =>
      new Promise((resolve, reject) => client.echo(benchItem, (err: unknown, res: unknown) => (err ? reject(err) : resolve(res))));
    await call();
    return { call, close: () => void socket.destroy() };
  },
};
