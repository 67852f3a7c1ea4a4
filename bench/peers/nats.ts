/**
 * NATS request/reply: the server process starts its own nats-server (Debian's, on a random loopback
 * port) and answers subject `bench.echo` through a nats.js subscription callback; the client sends
 * requests with nats.js's shared reply inbox. JSON payloads, bytes as base64. The broker's CPU is
 * counted with the server's (`extraCpuUs`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type Msg, type NatsConnection } from 'nats';
import type { Peer } from './peer.js';
import { benchItemBase64, packageVersion, processCpuUs, programVersion } from './support.js';

const SUBJECT = 'bench.echo';
/** Debian installs the broker in /usr/sbin, which a non-root PATH may lack. */
const BROKER = existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
/** nats.js requires a request timeout; long enough never to fire in the bench. */
const REQUEST_TIMEOUT_MS = 30_000;

/** Starts nats-server on 127.0.0.1 with a port it picks; resolves once it says where it listens. */
function startBroker(): Promise<{ broker: ChildProcess; port: number }> {
  const broker = spawn(BROKER, ['-a', '127.0.0.1', '-p', '-1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  // An exiting bench server takes its broker along (the bench stops a server with process.exit).
  const killBroker = (): void => void broker.kill();
  process.once('exit', killBroker);
  broker.once('exit', () => process.off('exit', killBroker));
  return new Promise((resolve, reject) => {
    let log = '';
    broker.once('error', (err) => reject(new Error(`cannot start nats-server (bash bench/system-deps.sh installs it): ${err.message}`)));
    broker.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${log.slice(-500)}`)));
    broker.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      const m = /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m !== null) {
        broker.stderr!.removeAllListeners('data');
        broker.stderr!.resume();
        resolve({ broker, port: Number(m[1]) });
      }
    });
  });
}

function decode(data: Uint8Array): unknown {
  return JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString());
}

/** The NATS peer. */
export const peer: Peer = {
  id: 'nats',
  label: 'NATS',
  description:
    `NATS request/reply: nats-server ${programVersion(BROKER)} (Debian) as broker, nats.js ${packageVersion('nats')} on both sides, ` +
    'JSON payloads (bytes as base64); broker CPU counted with the server.',

  async startServer({ delayMs }) {
    const { broker, port } = await startBroker();
    const nc: NatsConnection = await connect({ servers: `127.0.0.1:${port}`, noAsyncTraces: true });
    const reply = (msg: Msg, item: unknown): void => void msg.respond(Buffer.from(JSON.stringify(item)));
    nc.subscribe(SUBJECT, {
      callback: (err, msg) => {
        if (err !== null) return;
        const item = decode(msg.data);
        if (delayMs > 0) setTimeout(() => reply(msg, item), delayMs);
        else reply(msg, item);
      },
    });
    await nc.flush();
    return {
      port,
      extraCpuUs: () => processCpuUs(broker.pid!),
      async close() {
        await nc.drain();
        const exited = new Promise((resolve) => broker.once('exit', resolve));
        broker.kill();
        await exited;
      },
    };
  },

  async connect(port) {
    const nc = await connect({ servers: `127.0.0.1:${port}`, noAsyncTraces: true });
    const options = { timeout: REQUEST_TIMEOUT_MS };
    const call = async (): Promise<unknown> =>
      decode((await nc.request(SUBJECT, Buffer.from(JSON.stringify(benchItemBase64)), options)).data);
    await call();
    return { call, close: () => nc.close() };
  },
};
