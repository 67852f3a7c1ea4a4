/**
 * The in-process registry: the embedded default when no external registry is configured, and the
 * reference implementation of the {@link Registry} semantics (the other two must behave alike).
 */
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { InstanceInput, Registration, Registry, ResolveOptions, ServiceInstance, WatchOptions } from './registry.js';
import { checkVersionRange, resolveOptionsOf, selectInstances } from './select.js';
import { checkSegment, invalidArgument, toServiceInstance } from './validate.js';
import { WatchHub, type SnapshotSink } from './watch-hub.js';

/**
 * Creates an in-process registry, optionally seeded with `instances` (registered for the
 * registry's lifetime). `register`, `deregister` and `watch` work within this process only.
 * Instance ids are unique per service name: registering a duplicate rejects with ALREADY_EXISTS.
 * Throws synchronously for a bad seed: INVALID_ARGUMENT (malformed, the message names e.g.
 * `instances[1].port`) or ALREADY_EXISTS (duplicate id).
 */
export function createStaticRegistry(instances: InstanceInput[] = []): Registry {
  if (!Array.isArray(instances)) throw invalidArgument('createStaticRegistry: instances', 'must be an array');
  const registry = new StaticRegistry();
  instances.forEach((input, i) => registry.add(toServiceInstance(input, `createStaticRegistry: instances[${i}]`)));
  return registry;
}

class StaticRegistry implements Registry {
  private readonly hub = new WatchHub('static registry');
  /** name -> id -> instance: ids are unique per service, as in etcd. */
  private readonly services = new Map<string, Map<string, ServiceInstance>>();
  /** name -> sinks of the live watches of that service. */
  private readonly sinks = new Map<string, Set<SnapshotSink>>();

  async register(input: InstanceInput): Promise<Registration> {
    this.hub.assertOpen();
    const instance = toServiceInstance(input, 'register: input');
    this.add(instance);
    let removed: Promise<void> | undefined;
    return {
      instance,
      deregister: () => (removed ??= Promise.resolve(this.remove(instance))),
    };
  }

  async resolve(name: string, options?: ResolveOptions): Promise<ServiceInstance[]> {
    this.hub.assertOpen();
    checkSegment(name, 'resolve: name');
    return selectInstances(this.current(name), checkVersionRange(resolveOptionsOf(options).version, 'resolve: options.version'));
  }

  watch(name: string, options?: WatchOptions): AsyncIterable<ServiceInstance[]> {
    return this.hub.watch(name, options, async (service, sink) => {
      const sinks = this.sinks.get(service) ?? new Set<SnapshotSink>();
      this.sinks.set(service, sinks.add(sink));
      sink.push(this.current(service));
      return () => {
        sinks.delete(sink);
        if (sinks.size === 0) this.sinks.delete(service);
      };
    });
  }

  async close(): Promise<void> {
    await this.hub.close();
  }

  /** Adds an instance and notifies watchers; throws ALREADY_EXISTS for a taken id. */
  add(instance: ServiceInstance): void {
    const byId = this.services.get(instance.name) ?? new Map<string, ServiceInstance>();
    if (byId.has(instance.id)) {
      throw new RpcError(Code.ALREADY_EXISTS, `instance ${instance.name}/${instance.id} is already registered`);
    }
    this.services.set(instance.name, byId.set(instance.id, instance));
    this.notify(instance.name);
  }

  private remove(instance: ServiceInstance): void {
    const byId = this.services.get(instance.name);
    // Compare identity: after deregistration the id may have been reused by a newer registration.
    if (byId?.get(instance.id) !== instance) return;
    byId.delete(instance.id);
    if (byId.size === 0) this.services.delete(instance.name);
    this.notify(instance.name);
  }

  private current(name: string): ServiceInstance[] {
    return [...(this.services.get(name)?.values() ?? [])];
  }

  private notify(name: string): void {
    const sinks = this.sinks.get(name);
    if (!sinks) return;
    const snapshot = this.current(name);
    for (const sink of sinks) sink.push(snapshot);
  }
}
