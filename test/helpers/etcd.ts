/**
 * Test helper: a real, throw-away etcd server on loopback. Each call starts its own `etcd` process
 * on free ports with a fresh data directory, so test files never share state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian's etcd-server package installs the binary; ETCD_BIN overrides it. */
const ETCD_BIN = process.env['ETCD_BIN'] ?? '/usr/bin/etcd';
const START_TIMEOUT_MS = 20_000;

/** A running etcd: its client URL and a way to stop it (kills the process, removes the data dir). */
export interface EtcdServer {
  /** Client URL, e.g. `http://127.0.0.1:41234`. */
  readonly endpoint: string;
  /** Stops etcd and deletes its data directory. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * A port that was free a moment ago: listen on port 0, read the port, close. Racy in theory, but
 * etcd takes the port within milliseconds and nothing else on a test machine grabs loopback ports.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Starts etcd and resolves once its `/health` endpoint reports healthy (a leader is elected). */
export async function startEtcd(): Promise<EtcdServer> {
  if (!existsSync(ETCD_BIN)) {
    throw new Error(`etcd is not installed at ${ETCD_BIN} (apt-get install etcd-server, or set ETCD_BIN)`);
  }
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const dataDir = await mkdtemp(join(tmpdir(), 'avrpc-etcd-'));
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    ETCD_BIN,
    [
      '--name',
      'test',
      '--data-dir',
      dataDir,
      '--listen-client-urls',
      clientUrl,
      '--advertise-client-urls',
      clientUrl,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `test=${peerUrl}`,
      '--initial-cluster-state',
      'new',
      '--logger',
      'zap',
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + String(d)).slice(-4000);
  });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= kill(child).then(() => rm(dataDir, { recursive: true, force: true })));
  try {
    await waitHealthy(clientUrl, child);
  } catch (err) {
    await stop();
    throw new Error(`etcd did not start: ${(err as Error).message}\n${stderr}`, { cause: err });
  }
  return { endpoint: clientUrl, stop };
}

/** SIGTERM, then SIGKILL if etcd has not exited after 5 s; resolves once the process is gone. */
function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('close', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function waitHealthy(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited with code ${child.exitCode}`);
    if (await healthy(url)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no healthy answer from ${url} within ${START_TIMEOUT_MS} ms`);
}

/** One GET /health without keep-alive (a pooled socket would outlive the test and count as a leak). */
function healthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${url}/health`, { agent: false, headers: { connection: 'close' }, timeout: 1000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += String(d);
      });
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"true"')));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
