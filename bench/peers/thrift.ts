/**
 * Apache Thrift (npm thrift): the Echo service of bench/peers/echo.thrift, compact protocol over the
 * framed transport on one TCP connection, calls multiplexed by sequence id. The JavaScript is
 * generated at bench time by the Thrift compiler (`thrift --gen js:node`, from Debian) into
 * dist/bench/peers/thrift-gen/, never committed. Both sides use the generated callback API (its
 * promise API goes through the Q library).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import thrift from 'thrift';
import { benchItem, repoFile } from '../payload.js';
import type { Peer } from './peer.js';
import { packageVersion, programVersion } from './support.js';

const IDL = repoFile('bench/peers/echo.thrift');
const GEN_DIR = join(dirname(fileURLToPath(import.meta.url)), 'thrift-gen');
const options = { transport: thrift.TFramedTransport, protocol: thrift.TCompactProtocol };

/* eslint-disable @typescript-eslint/no-explicit-any -- the generated code is untyped CommonJS */
type Callback = (err: unknown, res?: unknown) => void;
type EchoModule = { Client: any; Processor: any };

/**
 * The generated Echo module, compiled first when missing or older than the IDL. The compiler writes
 * into a fresh directory renamed into place, so that a server and a client starting together never
 * load half-written files.
 */
function echoModule(): EchoModule {
  const fresh = existsSync(join(GEN_DIR, 'Echo.js')) && statSync(join(GEN_DIR, 'Echo.js')).mtimeMs >= statSync(IDL).mtimeMs;
  if (!fresh) {
    const tmp = mkdtempSync(`${GEN_DIR}-`);
    try {
      execFileSync('thrift', ['--gen', 'js:node', '-out', tmp, IDL], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw new Error(`the Thrift compiler failed (bash bench/system-deps.sh installs it): ${String(err)}`, { cause: err });
    }
    // The package is ESM; the generated files are CommonJS.
    writeFileSync(join(tmp, 'package.json'), '{ "type": "commonjs" }\n');
    rmSync(GEN_DIR, { recursive: true, force: true });
    try {
      renameSync(tmp, GEN_DIR);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another process put its copy in place first
    }
  }
  return createRequire(import.meta.url)(join(GEN_DIR, 'Echo.js')) as EchoModule;
}

/** The Thrift peer. */
export const peer: Peer = {
  id: 'thrift',
  label: 'Thrift compact',
  description: `Apache Thrift (npm thrift ${packageVersion('thrift')}, code from the Thrift compiler ${programVersion('thrift')}): compact protocol, framed transport, one TCP connection.`,

  async startServer({ delayMs }) {
    const Echo = echoModule();
    const handler = {
      // The generated processor wants `null` exactly for success.
      echo: (item: unknown, result: Callback) => (delayMs > 0 ? setTimeout(() => result(null, item), delayMs) : result(null, item)),
    };
    const server = thrift.createServer(Echo.Processor, handler, options);
    server.listen(0, '127.0.0.1');
    await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
    return {
      port: (server.address() as { port: number }).port,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  },

  async connect(port) {
    const Echo = echoModule();
    const connection = thrift.createConnection('127.0.0.1', port, options);
    await new Promise<void>((resolve, reject) => connection.once('connect', resolve).once('error', reject));
    connection.on('error', () => {}); // a dropped connection fails the calls in flight
    const client = thrift.createClient(Echo, connection) as any;
    const call = (): Promise<unknown> =>
      new Promise((resolve, reject) => client.echo(benchItem, (err: unknown, res: unknown) => (err ? reject(err) : resolve(res))));
    await call();
    return { call, close: () => connection.end() };
  },
};
