/**
 * What several peers share: the benchmark Item in JSON form, library versions for the peers'
 * descriptions, delayed answers, and the CPU time of a helper process (a broker) read from /proc.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { benchItem, repoFile } from '../payload.js';
import type { PeerServer } from './peer.js';

/**
 * The benchmark Item as the JSON peers carry it (HTTP, NATS, Moleculer): the blob as base64, which is
 * how JSON APIs carry bytes. Encoded once, as a caller holding the record would have it.
 */
export const benchItemBase64 = { ...benchItem, blob: benchItem.blob.toString('base64') };

/** The installed version of npm package `name`, read from its package.json (some block the export). */
export function packageVersion(name: string): string {
  const json = JSON.parse(readFileSync(repoFile('node_modules', name, 'package.json'), 'utf8')) as { version: string };
  return json.version;
}

/** The first version number `program --version` prints (e.g. `2.9.10`), or `?` when it cannot run. */
export function programVersion(program: string): string {
  try {
    const out = execFileSync(program, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    return /\d+\.\d+(\.\d+)?/.exec(out)?.[0] ?? '?';
  } catch {
    return '?';
  }
}

/** `value` now when `delayMs` is 0, else after `delayMs` (a handler that waits, as the bench's delayed scenarios ask). */
export function answer<T>(value: T, delayMs: number): T | Promise<T> {
  if (delayMs <= 0) return value;
  return new Promise((resolve) => setTimeout(() => resolve(value), delayMs));
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ: 100 on Linux). */
const TICKS_PER_SEC = 100;

/**
 * CPU time (user + system, µs) a child process has used so far, from /proc/<pid>/stat; 0 once it is
 * gone. Resolution is one clock tick (10 ms): fine over a window of seconds.
 */
export function processCpuUs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name (0-based).
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / TICKS_PER_SEC;
}

/** What {@link listenLoopback} can listen with: a net, http or http2 server. */
interface Listener {
  listen(port: number, host: string): unknown;
  once(event: 'listening', listener: () => void): unknown;
  address(): unknown;
  close(callback: () => void): unknown;
}

/**
 * Listens on 127.0.0.1 port 0 and gives the bound port and a `close` that stops accepting, runs
 * `dropConnections` (the server's own connections end, so that close completes) and resolves once closed.
 */
export async function listenLoopback(server: Listener, dropConnections: () => void = () => {}): Promise<PeerServer> {
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        dropConnections();
      }),
  };
}
