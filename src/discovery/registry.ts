/**
 * The service registry contract shared by the static (in-process), etcd and DNS implementations.
 * Clients resolve a service name to instances; servers register themselves. Everything a caller
 * can see fail is an `RpcError` with a code, so callers handle discovery like any other RPC failure.
 */
import type { RpcError } from '../errors/rpc-error.js';

/** One registered server process. Objects handed out by a registry are frozen. */
export interface ServiceInstance {
  /** Unique within the service name (a random UUID unless the server chose one). */
  id: string;
  /** Service name, e.g. `'echo'`. */
  name: string;
  /** The server's version, normally semver (`'2.3.0'`); ranges in {@link ResolveOptions} match it. */
  version: string;
  /** Host name or IP address to connect to. */
  host: string;
  /** TCP port, 1-65535. */
  port: number;
  /** Relative share of traffic for weighted balancing; `0` means "only if nothing else". */
  weight: number;
  /** Free-form string labels (zone, build, ...); never interpreted by the registry. */
  metadata: Readonly<Record<string, string>>;
}

/** What a server registers: `id` is generated when absent, `weight` defaults to 1, `metadata` to `{}`. */
export interface InstanceInput {
  /** Service name: non-empty, no `/` (it is a path segment in the etcd key). */
  name: string;
  /** Version string, normally semver; non-empty, no `/`. */
  version: string;
  /** Host name or IP address clients should connect to. */
  host: string;
  /** TCP port, 1-65535. */
  port: number;
  /** Instance id; default: `crypto.randomUUID()`. Non-empty, no `/`. */
  id?: string;
  /** Non-negative finite number; default 1. */
  weight?: number;
  /** String labels; default `{}`. */
  metadata?: Record<string, string>;
}

/** A live registration, returned by {@link Registry.register}. */
export interface Registration {
  /** The instance as stored (with its generated id and defaults filled in). */
  readonly instance: ServiceInstance;
  /**
   * Removes the instance. Idempotent: later calls return the first call's promise, so a shutdown
   * path and a signal handler may both call it safely.
   */
  deregister(): Promise<void>;
}

/** Options of {@link Registry.resolve}. */
export interface ResolveOptions {
  /** semver range, e.g. `'^2.1'`; default: any version. Invalid ranges are rejected with INVALID_ARGUMENT. */
  version?: string;
}

/** Options of {@link Registry.watch}. */
export interface WatchOptions extends ResolveOptions {
  /** Ends the iteration when aborted (the loop simply finishes; nothing is thrown). */
  signal?: AbortSignal;
}

/** Every option name of {@link ResolveOptions} and {@link WatchOptions}; registries refuse others. */
export const KNOWN_RESOLVE_OPTIONS = { version: true } as const satisfies Record<keyof ResolveOptions, true>;
export const KNOWN_WATCH_OPTIONS = { version: true, signal: true } as const satisfies Record<keyof WatchOptions, true>;

/** Receives failures that happen in the background (lease lost, a poll failed), where no caller awaits. */
export type RegistryErrorListener = (err: RpcError) => void;

/** A service registry. All implementations share these semantics. */
export interface Registry {
  /** Publishes an instance. Rejects with INVALID_ARGUMENT for a malformed input. */
  register(input: InstanceInput): Promise<Registration>;
  /** The instances of `name` whose version satisfies `options.version`, sorted by id. */
  resolve(name: string, options?: ResolveOptions): Promise<ServiceInstance[]>;
  /**
   * Async iterable of full snapshots: the first yield is the current set, then one per change.
   * Identical consecutive snapshots are not repeated and a slow consumer only gets the newest one
   * (snapshots are complete, so skipping stale ones loses nothing). Ends when signal aborts or the
   * registry closes; throws (RpcError) when the first snapshot cannot be read or the watch breaks.
   * Each `for await` loop over the returned iterable is an independent subscription.
   */
  watch(name: string, options?: WatchOptions): AsyncIterable<ServiceInstance[]>;
  /**
   * Ends all watches and releases connections; registries that own registrations remove them.
   * Calls made after close reject with FAILED_PRECONDITION. Idempotent.
   */
  close(): Promise<void>;
}
