/**
 * Flag parsing shared by the CLI commands: targets (`host:port` or a service name in a registry),
 * TLS files, credentials, metadata, durations, and how failures are reported (code name and message
 * on stderr, exit status 64 + code).
 */
import { readFileSync } from 'node:fs';
import { CommanderError, InvalidArgumentError, Option, type Command } from 'commander';
import { Protocol, loadProtocol } from '../codec/protocol.js';
import { describeServer } from '../client/describe.js';
import { parseEndpoint, type ClientOptions, type Endpoint } from '../client/client-options.js';
import { createDnsRegistry } from '../discovery/dns-registry.js';
import { createEtcdRegistry } from '../discovery/etcd-registry.js';
import type { Registry } from '../discovery/registry.js';
import { Code, codeName } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { ClientTlsOptions } from '../security/tls.js';
import { BYTES_MODES } from '../codec/json-input.js';

/** Flags of commands that connect to a server (`call`, `describe`, `bench`). */
export interface ConnectFlags {
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServername?: string;
  token?: string;
  tokenFile?: string;
  registry?: string;
  etcdEndpoints?: string;
  dnsServer?: string[];
  serviceVersion?: string;
  protocol?: string;
}

/** Exit status of a command that failed with `code`: 64 + the code's number (UNAVAILABLE 14 -> 78). */
export function exitStatusFor(code: Code): number {
  return 64 + code;
}

/** Exit status of a usage error (a flag or argument wrongly given), as Go's flag package and grpcurl's (commander's own is 1). */
export const USAGE_EXIT = 2;

/**
 * A usage error found after commander parsed the command line (flags that exclude each other, a
 * flag another one needs): thrown, then reported by {@link reportFailure} as `error: message`, exit 2,
 * as commander reports its own.
 */
export function usageError(message: string): CommanderError {
  return new CommanderError(USAGE_EXIT, 'avrpc.usage', message);
}

/**
 * Prints `CODE_NAME: message` on stderr and sets the exit status for `err` (64 + code), or
 * `error: message` and exit 2 for a usage error.
 */
export function reportFailure(err: unknown): void {
  if (err instanceof CommanderError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = err.exitCode === 0 ? 0 : USAGE_EXIT;
    return;
  }
  const e = RpcError.from(err, Code.UNKNOWN);
  // A declared error names its type: its value alone (on stdout) may fit two of them.
  const declared = e.errorType === undefined ? '' : ` (declared error ${e.errorType})`;
  process.stderr.write(`${codeName(e.code)}: ${e.message}${declared}\n`);
  process.exitCode = exitStatusFor(e.code);
}

/** Adds the connection flags (TLS, token, registry) to `cmd`, and `--protocol` unless `withProtocol` is false. */
export function addConnectFlags(cmd: Command, withProtocol = true): Command {
  cmd
    .option('--tls', 'connect with TLS (implied by --tls-ca / --tls-cert)')
    .option('--tls-ca <file>', 'PEM CA certificates trusted for the server')
    .option('--tls-cert <file>', 'PEM client certificate (mTLS)')
    .option('--tls-key <file>', 'PEM client key (mTLS)')
    .option('--tls-servername <name>', 'name checked against the server certificate')
    .option(
      '--token <token>',
      `credentials token sent in the handshake (visible to other users in ps: prefer ${TOKEN_ENV} or --token-file)`,
    )
    .option('--token-file <path>', 'read the credentials token from this file (a trailing newline is ignored)')
    .option('--registry <kind>', 'resolve a service-name target with: etcd | dns')
    .option('--etcd-endpoints <urls>', 'etcd URLs, comma separated (with --registry etcd)', 'http://127.0.0.1:2379')
    .option('--dns-server <ip:port>', 'DNS server (with --registry dns; repeatable)', collect, [])
    .option('--service-version <range>', 'semver range of acceptable service versions');
  return withProtocol ? cmd.option('--protocol <file>', 'protocol file (.avdl/.avpr) instead of asking the server') : cmd;
}

/** Adds `--bytes latin1|base64` (how bytes and fixed are written in JSON, in and out) to `cmd`. */
export function addBytesFlag(cmd: Command): Command {
  return cmd.addOption(
    new Option('--bytes <encoding>', "bytes and fixed in JSON, in and out: latin1 (Avro's code points 0-255) or base64")
      .choices(BYTES_MODES)
      .default('latin1'),
  );
}

/** Environment variable that stands for `--token` (kept out of argv, which `ps` shows to every user). */
export const TOKEN_ENV = 'AVRPC_TOKEN';

/**
 * The token from `--token`, `--token-file` or the {@link TOKEN_ENV} environment variable, or
 * undefined if none is given. A flag beats the environment (it is the more deliberate choice); both
 * flags at once are refused, as is an empty token (an empty token file is a mistake, not "no token").
 * A token file's trailing newlines are dropped; the token itself is never printed.
 */
export function resolveToken(flags: { token?: string; tokenFile?: string }, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (flags.token !== undefined && flags.tokenFile !== undefined) {
    throw usageError('--token and --token-file are both given: use one');
  }
  let token: string | undefined;
  let from: string;
  if (flags.token !== undefined) {
    [token, from] = [flags.token, '--token'];
  } else if (flags.tokenFile !== undefined) {
    try {
      token = readFileSync(flags.tokenFile, 'utf8').replace(/[\r\n]+$/, '');
    } catch (err) {
      throw new RpcError(
        Code.INVALID_ARGUMENT,
        `--token-file ${flags.tokenFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    from = `--token-file ${flags.tokenFile}`;
  } else {
    [token, from] = [env[TOKEN_ENV], TOKEN_ENV];
  }
  if (token === '') throw new RpcError(Code.INVALID_ARGUMENT, `${from}: the token is empty`);
  return token;
}

/** commander reducer for repeatable flags. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `k=v` pairs into metadata; throws on a pair without `=`. */
export function parseMetadata(pairs: readonly string[]): Record<string, string> | undefined {
  if (pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const i = pair.indexOf('=');
    if (i <= 0) throw usageError(`--metadata must be key=value, got ${JSON.stringify(pair)}`);
    out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

/** commander parser for a positive integer flag. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** commander parser for durations in milliseconds: `500ms`, `10s`, `1.5s`, `2m`, or plain milliseconds. */
export function duration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value);
  if (m === null) throw new InvalidArgumentError('must be a duration like 500ms, 10s or 2m (plain numbers are milliseconds)');
  const n = Math.round(Number(m[1]) * (m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 1));
  if (!(n > 0)) throw new InvalidArgumentError('must be at least 1ms');
  return n;
}

/**
 * Client TLS settings from the flags, or undefined for plain TCP. A key without a certificate (or
 * the reverse) is refused: ignoring it would connect without the client certificate meant.
 */
export function clientTls(flags: ConnectFlags): ClientTlsOptions | undefined {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw usageError('--tls-cert and --tls-key go together (a client certificate needs its key)');
  }
  if (flags.tls !== true && flags.tlsCa === undefined && flags.tlsCert === undefined) return undefined;
  const tls: ClientTlsOptions = {};
  if (flags.tlsCa !== undefined) tls.ca = readFileSync(flags.tlsCa);
  if (flags.tlsCert !== undefined) tls.cert = readFileSync(flags.tlsCert);
  if (flags.tlsKey !== undefined) tls.key = readFileSync(flags.tlsKey);
  if (flags.tlsServername !== undefined) tls.servername = flags.tlsServername;
  return tls;
}

/** Where calls go: fixed endpoints, or a service followed in a registry (closed by `close`). */
export interface Target {
  readonly client: Pick<ClientOptions, 'endpoints' | 'discovery' | 'tls' | 'credentials'>;
  /** One address to learn the protocol from. */
  first(): Promise<Endpoint>;
  close(): Promise<void>;
}

/** Parses a `host:port` or service-name target with the registry flags. */
export function resolveTarget(target: string, flags: ConnectFlags): Target {
  const tls = clientTls(flags);
  const token = resolveToken(flags);
  const common = { ...(tls === undefined ? {} : { tls }), ...(token === undefined ? {} : { credentials: token }) };
  if (/:\d+$/.test(target)) {
    const endpoint = parseEndpoint('target', target);
    return { client: { ...common, endpoints: [endpoint] }, first: async () => endpoint, close: async () => undefined };
  }
  const registry = openRegistry(flags, target);
  const version = flags.serviceVersion;
  return {
    client: { ...common, discovery: { registry, service: target, ...(version === undefined ? {} : { version }) } },
    async first() {
      const found = await registry.resolve(target, version === undefined ? {} : { version });
      if (found.length === 0) throw new RpcError(Code.UNAVAILABLE, `no instance of service ${target} in the registry`);
      return { host: found[0]!.host, port: found[0]!.port };
    },
    close: () => registry.close(),
  };
}

/** The registry the flags name (`--registry etcd|dns` and its flags); a usage error naming `service` without one. */
export function openRegistry(flags: ConnectFlags, service: string): Registry {
  if (flags.registry === 'etcd') return createEtcdRegistry({ hosts: (flags.etcdEndpoints ?? '').split(',') });
  if (flags.registry === 'dns') return createDnsRegistry(flags.dnsServer?.length ? { servers: flags.dnsServer } : {});
  throw usageError(`target ${JSON.stringify(service)} is not host:port; a service name needs --registry etcd or dns`);
}

/**
 * The protocol to call with, longs as BigInt: from `--protocol`, else learned from the server's
 * handshake (same JSON text, so the same fingerprint: no schema resolution on either side).
 */
export async function protocolFor(target: Target, flags: ConnectFlags, timeoutMs: number): Promise<Protocol> {
  if (flags.protocol !== undefined) return loadProtocol(flags.protocol, { longs: 'bigint' });
  const learned = await describeServer(await target.first(), {
    timeoutMs,
    ...(target.client.tls === undefined ? {} : { tls: target.client.tls }),
    ...(target.client.credentials === undefined ? {} : { credentials: target.client.credentials }),
  });
  return new Protocol(learned.text, { longs: 'bigint' });
}
