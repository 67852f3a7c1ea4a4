/**
 * Read-only registry on DNS SRV records, for platforms that already publish instances in DNS
 * (Kubernetes headless services: `_<port-name>._tcp.<service>.<namespace>.svc.cluster.local`).
 *
 * Choices, since DNS carries less than the other registries:
 * - Version: DNS has none, so every instance gets `options.version` (default `'0.0.0'`); deploy
 *   incompatible versions as separate services, or set `version` per registry.
 * - Priority: only the lowest-priority SRV group is returned (RFC 2782: higher ones are backups).
 * - Host: targets are resolved to addresses with the same resolver (a test or cluster DNS server
 *   the OS does not know about); a target without A/AAAA records is returned as a host name.
 * - Missing names (NXDOMAIN, no records) are an empty set, not an error: a headless service with
 *   no ready pods looks exactly like that.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { Registration, Registry, RegistryErrorListener, ResolveOptions, ServiceInstance, WatchOptions } from './registry.js';
import { checkVersionRange, resolveOptionsOf, selectInstances } from './select.js';
import { checkFunction, checkObject, checkPositiveInteger, checkSegment, invalidArgument, toServiceInstance } from './validate.js';
import { serialRefresh, WatchHub, type Subscribe } from './watch-hub.js';
import { knownOptions } from '../util/validate.js';

/** Options of {@link createDnsRegistry}; all optional. */
export interface DnsRegistryOptions {
  /** DNS servers as `'ip'` or `'ip:port'` (`'[::1]:53'` for IPv6). Default: the system's resolvers. */
  servers?: string[];
  /** How often `watch` re-queries, in milliseconds (DNS cannot push changes). Default 5000. */
  pollMs?: number;
  /**
   * Maps a service name to the SRV name queried. Default `name => '_avrpc._tcp.' + name`, i.e. a
   * Kubernetes port named `avrpc`; resolve with the service's DNS name (`'echo.prod.svc.cluster.local'`).
   */
  srvName?: (name: string) => string;
  /** Version given to every instance, since DNS carries none. Default `'0.0.0'`. */
  version?: string;
  /** Timeout of one query attempt in milliseconds; each query is tried twice. Default 2000. */
  timeoutMs?: number;
  /** Failures of background polls (the watch keeps its last snapshot and retries). Default: ignored. */
  onError?: RegistryErrorListener;
}

/** {@link DnsRegistryOptions} after validation, every field filled (except the system-default servers). */
interface ResolvedDnsOptions {
  servers: string[] | undefined;
  pollMs: number;
  srvName: (name: string) => string;
  version: string;
  timeoutMs: number;
  onError: RegistryErrorListener;
}

/** Error codes meaning "this name has no such records": an empty answer, not an outage. */
const NO_DATA = new Set(['ENOTFOUND', 'ENODATA']);

/**
 * Creates a read-only registry on DNS SRV records. `register` rejects with FAILED_PRECONDITION;
 * lookups that fail (server unreachable, timeout, SERVFAIL) reject with UNAVAILABLE. Throws
 * INVALID_ARGUMENT synchronously for a bad option.
 */
export function createDnsRegistry(options: DnsRegistryOptions = {}): Registry {
  return new DnsRegistry(resolveOptions(options));
}

/** Every option name of {@link DnsRegistryOptions}; others are refused. */
const KNOWN_DNS_OPTIONS = {
  servers: true,
  pollMs: true,
  srvName: true,
  version: true,
  timeoutMs: true,
  onError: true,
} as const satisfies Record<keyof DnsRegistryOptions, true>;

function resolveOptions(options: DnsRegistryOptions): ResolvedDnsOptions {
  const where = 'createDnsRegistry: options';
  const raw = checkObject(options, where) as Partial<Record<keyof DnsRegistryOptions, unknown>>;
  knownOptions(where, raw, KNOWN_DNS_OPTIONS);
  if (raw.servers !== undefined && !(Array.isArray(raw.servers) && raw.servers.every((s) => typeof s === 'string'))) {
    throw invalidArgument(`${where}.servers`, 'must be an array of strings');
  }
  return {
    servers: raw.servers as string[] | undefined,
    pollMs: checkPositiveInteger(raw.pollMs, `${where}.pollMs`, 5000),
    srvName: checkFunction(raw.srvName, `${where}.srvName`, (name: string) => `_avrpc._tcp.${name}`),
    version: raw.version === undefined ? '0.0.0' : checkSegment(raw.version, `${where}.version`),
    timeoutMs: checkPositiveInteger(raw.timeoutMs, `${where}.timeoutMs`, 2000),
    onError: checkFunction(raw.onError, `${where}.onError`, () => undefined),
  };
}

class DnsRegistry implements Registry {
  private readonly hub = new WatchHub('DNS registry');
  private readonly resolver: Resolver;

  constructor(private readonly options: ResolvedDnsOptions) {
    this.resolver = new Resolver({ timeout: options.timeoutMs, tries: 2 });
    try {
      if (options.servers) this.resolver.setServers(options.servers);
    } catch (err) {
      throw new RpcError(Code.INVALID_ARGUMENT, `createDnsRegistry: options.servers ${(err as Error).message}`, { cause: err });
    }
  }

  async register(): Promise<Registration> {
    this.hub.assertOpen();
    throw new RpcError(Code.FAILED_PRECONDITION, 'DNS registry is read-only: publish instances in DNS instead');
  }

  async resolve(name: string, options?: ResolveOptions): Promise<ServiceInstance[]> {
    this.hub.assertOpen();
    checkSegment(name, 'resolve: name');
    const range = checkVersionRange(resolveOptionsOf(options).version, 'resolve: options.version');
    return selectInstances(await this.read(name), range);
  }

  watch(name: string, options?: WatchOptions): AsyncIterable<ServiceInstance[]> {
    return this.hub.watch(name, options, this.subscribe);
  }

  async close(): Promise<void> {
    await this.hub.close();
    this.resolver.cancel(); // pending queries reject with CANCELLED instead of running to their timeout
  }

  /** Polls every `pollMs`; the next poll is armed only after the previous one finished. */
  private readonly subscribe: Subscribe = async (name, sink) => {
    sink.push(await this.read(name));
    const refresh = serialRefresh(() => this.read(name), sink, this.options.onError);
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      timer = setTimeout(
        () =>
          void refresh().then(() => {
            if (!sink.ended) arm();
          }),
        this.options.pollMs,
      );
    };
    arm();
    return () => clearTimeout(timer);
  };

  private async read(name: string): Promise<ServiceInstance[]> {
    const srvName = this.options.srvName(name);
    if (typeof srvName !== 'string' || srvName === '') {
      throw invalidArgument('createDnsRegistry: options.srvName', `must return a non-empty string (got ${String(srvName)})`);
    }
    const records = await this.lookup(srvName, () => this.resolver.resolveSrv(srvName));
    const best = Math.min(...records.map((record) => record.priority));
    const chosen = records.filter((record) => record.priority === best);
    const hosts = await Promise.all(chosen.map((record) => this.addresses(record.name)));
    return chosen.flatMap((record, i) =>
      hosts[i]!.flatMap((host) => {
        const input = {
          id: isIP(host) === 6 ? `[${host}]:${record.port}` : `${host}:${record.port}`,
          name,
          version: this.options.version,
          host,
          port: record.port,
          weight: record.weight,
          metadata: { srvTarget: record.name, srvPriority: String(record.priority) },
        };
        try {
          return [toServiceInstance(input, `SRV record ${srvName} -> ${record.name}:${record.port}`)];
        } catch (err) {
          this.options.onError(RpcError.from(err)); // e.g. port 0: skip the record, keep the rest
          return [];
        }
      }),
    );
  }

  /** A target's IPv4 addresses, else IPv6, else the target name itself (left to the OS resolver). */
  private async addresses(target: string): Promise<string[]> {
    if (isIP(target) !== 0) return [target];
    const v4 = await this.lookup(target, () => this.resolver.resolve4(target));
    if (v4.length > 0) return v4;
    const v6 = await this.lookup(target, () => this.resolver.resolve6(target));
    return v6.length > 0 ? v6 : [target];
  }

  /** Runs one query: "no such records" is an empty list; anything else an RpcError. */
  private async lookup<T>(what: string, query: () => Promise<T[]>): Promise<T[]> {
    try {
      return await query();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && NO_DATA.has(code)) return [];
      if (code === 'ECANCELLED') throw new RpcError(Code.CANCELLED, `DNS lookup of ${what} cancelled: registry closed`, { cause: err });
      throw new RpcError(Code.UNAVAILABLE, `DNS lookup of ${what} failed (${String(code)})`, { cause: err });
    }
  }
}
