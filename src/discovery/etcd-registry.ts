/**
 * Registry backed by etcd v3 (the `etcd3` client). Each instance is one key,
 * `${prefix}${name}/${version}/${id}` -> JSON of the instance, held by a lease so that a crashed
 * server disappears after `ttlSec` without anyone cleaning up after it.
 */
import type { Etcd3, IOptions } from 'etcd3';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { EtcdRegistration, etcdError, type LeaseOwner } from './etcd-registration.js';
import { loadEtcd3 } from './etcd3-module.js';
import type {
  InstanceInput,
  Registration,
  Registry,
  RegistryErrorListener,
  ResolveOptions,
  ServiceInstance,
  WatchOptions,
} from './registry.js';
import { checkVersionRange, resolveOptionsOf, selectInstances } from './select.js';
import {
  checkFunction,
  checkObject,
  checkPositiveInteger,
  checkSegment,
  checkString,
  invalidArgument,
  toServiceInstance,
} from './validate.js';
import { serialRefresh, WatchHub, type Subscribe } from './watch-hub.js';
import { knownOptions } from '../util/validate.js';

/** Options of {@link createEtcdRegistry}. Only `hosts` is required. */
export interface EtcdRegistryOptions {
  /** etcd client URL(s), with scheme: `'http://127.0.0.1:2379'` or a list of cluster members. Required. */
  hosts: string | string[];
  /** Key prefix for all services; a missing trailing `/` is added. Default `'/avrpc/services/'`. */
  prefix?: string;
  /** Lease time-to-live in seconds: a dead server vanishes at most this long after its last keepalive. Default 10. */
  ttlSec?: number;
  /** How long to wait for a connection to etcd, in milliseconds. Default 30000 (etcd3's default). */
  dialTimeoutMs?: number;
  /** Deadline of each non-streaming etcd call, in milliseconds, so a hung etcd cannot hang callers. Default 5000. */
  callTimeoutMs?: number;
  /** Background failures: lease lost (re-registration follows), failed re-reads of a watch. Default: ignored. */
  onError?: RegistryErrorListener;
}

/** {@link EtcdRegistryOptions} after validation, every field filled. */
interface ResolvedEtcdOptions {
  hosts: string[];
  prefix: string;
  ttlSec: number;
  dialTimeoutMs: number;
  callTimeoutMs: number;
  onError: RegistryErrorListener;
}

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/**
 * Creates a registry on etcd. Connects lazily (the first call loads the `etcd3` package, an optional
 * peer dependency, and dials), so creating one never fails for an unreachable etcd; calls then reject
 * with UNAVAILABLE, or with FAILED_PRECONDITION when `etcd3` is not installed (`npm install etcd3`).
 * Throws INVALID_ARGUMENT synchronously for a bad option. `close()` revokes this registry's registrations.
 */
export function createEtcdRegistry(options: EtcdRegistryOptions): Registry {
  return new EtcdRegistry(resolveOptions(options));
}

/** Every option name of {@link EtcdRegistryOptions}; others are refused. */
const KNOWN_ETCD_OPTIONS = {
  hosts: true,
  prefix: true,
  ttlSec: true,
  dialTimeoutMs: true,
  callTimeoutMs: true,
  onError: true,
} as const satisfies Record<keyof EtcdRegistryOptions, true>;

function resolveOptions(options: EtcdRegistryOptions): ResolvedEtcdOptions {
  const where = 'createEtcdRegistry: options';
  const raw = checkObject(options, where) as Partial<Record<keyof EtcdRegistryOptions, unknown>>;
  knownOptions(where, raw, KNOWN_ETCD_OPTIONS);
  const hostList: unknown[] = Array.isArray(raw.hosts) ? raw.hosts : [raw.hosts];
  if (hostList.length === 0) throw invalidArgument(`${where}.hosts`, 'must not be empty');
  const hosts = hostList.map((host, i) => {
    const path = Array.isArray(raw.hosts) ? `${where}.hosts[${i}]` : `${where}.hosts`;
    const url = checkString(host, path);
    if (!/^https?:\/\//.test(url)) throw invalidArgument(path, `must be a URL with http:// or https:// (got ${JSON.stringify(url)})`);
    return url;
  });
  const prefix = raw.prefix === undefined ? '/avrpc/services/' : checkString(raw.prefix, `${where}.prefix`);
  return {
    hosts,
    prefix: prefix.endsWith('/') ? prefix : `${prefix}/`,
    ttlSec: checkPositiveInteger(raw.ttlSec, `${where}.ttlSec`, 10),
    dialTimeoutMs: checkPositiveInteger(raw.dialTimeoutMs, `${where}.dialTimeoutMs`, 30_000),
    callTimeoutMs: checkPositiveInteger(raw.callTimeoutMs, `${where}.callTimeoutMs`, 5000),
    onError: checkFunction(raw.onError, `${where}.onError`, () => undefined),
  };
}

/**
 * etcd3's watch-reconnect backoff (100 ms doubling to 5 s), except that it drops to 0 while no
 * watch is live: etcd3 arms a reconnect timer whenever its watch stream ends, also when it ended
 * because the last watcher was cancelled or the client closed; with nothing to reconnect, a 0 ms
 * timer fires at once instead of holding the process open for up to seconds. (A timer armed while
 * a watch was live and etcd unreachable keeps its delay, at most 5 s: etcd3 gives no way to clear it.)
 */
function reconnectBackoff(idle: () => boolean, delayMs = 100): WatchBackoff {
  return {
    get duration() {
      return idle() ? 0 : delayMs;
    },
    next: () => reconnectBackoff(idle, Math.min(delayMs * 2, 5000)),
  };
}

class EtcdRegistry implements Registry, LeaseOwner {
  readonly ttlSec: number;
  readonly onError: RegistryErrorListener;
  private readonly hub = new WatchHub('etcd registry');
  private readonly registrations = new Set<EtcdRegistration>();
  /** etcd watchers created and not yet cancelled; none means a reconnect has nothing to restore. */
  private liveWatchers = 0;
  private closing: Promise<void> | undefined;
  /** The etcd3 client, made on first use: etcd3 is loaded then (see etcd3-module.ts). */
  private connecting: Promise<Etcd3> | undefined;
  /** The client once made (tests reach etcd through it too); close() closes it. */
  private client: Etcd3 | undefined;

  constructor(private readonly options: ResolvedEtcdOptions) {
    this.ttlSec = options.ttlSec;
    this.onError = options.onError;
  }

  async register(input: InstanceInput): Promise<Registration> {
    this.hub.assertOpen();
    const instance = toServiceInstance(input, 'register: input');
    const client = await this.etcd();
    this.hub.assertOpen(); // closed while etcd3 loaded: close() would not see this registration
    const registration = new EtcdRegistration(instance, this.key(instance), this, client);
    this.registrations.add(registration); // tracked at once, so close() during the put revokes it
    try {
      await registration.put();
    } catch (err) {
      this.registrations.delete(registration);
      throw err;
    }
    return registration;
  }

  async resolve(name: string, options?: ResolveOptions): Promise<ServiceInstance[]> {
    this.hub.assertOpen();
    checkSegment(name, 'resolve: name');
    const range = checkVersionRange(resolveOptionsOf(options).version, 'resolve: options.version');
    return selectInstances((await this.read(name)).instances, range);
  }

  watch(name: string, options?: WatchOptions): AsyncIterable<ServiceInstance[]> {
    return this.hub.watch(name, options, this.subscribe);
  }

  close(): Promise<void> {
    return (this.closing ??= this.shutdown());
  }

  forget(registration: EtcdRegistration): void {
    this.registrations.delete(registration);
  }

  private async shutdown(): Promise<void> {
    await this.hub.close();
    // Best effort: an unreachable etcd drops the keys when their leases expire anyway.
    await Promise.allSettled([...this.registrations].map((registration) => registration.deregister()));
    await this.connecting?.catch(() => undefined); // made while closing: close it too
    this.client?.close();
  }

  /** The etcd3 client; the first call loads etcd3 (FAILED_PRECONDITION when it is not installed). */
  private etcd(): Promise<Etcd3> {
    const { options } = this;
    return (this.connecting ??= loadEtcd3().then(
      ({ Etcd3 }) =>
        (this.client = new Etcd3({
          hosts: options.hosts,
          dialTimeout: options.dialTimeoutMs,
          defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + options.callTimeoutMs }),
          faultHandling: { watchBackoff: reconnectBackoff(() => this.hub.closed || this.liveWatchers === 0) },
        })),
      (err: unknown) => {
        this.connecting = undefined; // a later call tries again
        throw err;
      },
    ));
  }

  /**
   * Reads once, then watches from the revision after that read, so no change between the two is
   * missed. Any event triggers a re-read rather than patching a local map: simpler, and a
   * snapshot is then always exactly what etcd holds.
   */
  private readonly subscribe: Subscribe = async (name, sink) => {
    const first = await this.read(name);
    sink.push(first.instances);
    const refresh = serialRefresh(async () => (await this.read(name)).instances, sink, this.onError);
    const watcher = (await this.etcd())
      .watch()
      .prefix(this.servicePrefix(name))
      .startRevision(String(BigInt(first.revision) + 1n))
      .watcher();
    this.liveWatchers++;
    let cancelledByEtcd = false;
    watcher.on('data', () => void refresh());
    // etcd cancelled the watch (e.g. the revision was compacted): end the loop; the caller re-watches.
    watcher.on('error', (err) => {
      cancelledByEtcd = true;
      sink.fail(etcdError(err, `watch ${name}`));
    });
    return () => {
      this.liveWatchers--; // before cancel: the stream may end (and arm its timer) before cancel resolves
      // etcd3 already dropped a watcher etcd cancelled; cancel() would wait forever for etcd to confirm.
      return cancelledByEtcd ? undefined : watcher.cancel();
    };
  };

  /** All instances of `name` with the revision they were read at; unparsable values are reported and skipped. */
  private async read(name: string): Promise<{ instances: ServiceInstance[]; revision: string }> {
    let response;
    try {
      response = await (await this.etcd()).getAll().prefix(this.servicePrefix(name)).exec();
    } catch (err) {
      throw etcdError(err, `reading ${this.servicePrefix(name)}`);
    }
    const instances: ServiceInstance[] = [];
    for (const { key, value } of response.kvs) {
      try {
        const instance = toServiceInstance(JSON.parse(value.toString()), `etcd value of ${key.toString()}`);
        if (instance.name !== name) throw invalidArgument(`etcd value of ${key.toString()}`, `names service '${instance.name}'`);
        instances.push(instance);
      } catch (err) {
        this.onError(new RpcError(Code.INTERNAL, `skipping malformed etcd value of ${key.toString()}`, { cause: err }));
      }
    }
    return { instances, revision: response.header.revision };
  }

  private servicePrefix(name: string): string {
    return `${this.options.prefix}${name}/`;
  }

  private key(instance: ServiceInstance): string {
    return `${this.servicePrefix(instance.name)}${instance.version}/${instance.id}`;
  }
}
