/**
 * Service discovery: where clients find servers. Three interchangeable {@link Registry}
 * implementations share one contract, one version filter and one watch mechanism:
 * - {@link createStaticRegistry}: in-process, the embedded default;
 * - {@link createEtcdRegistry}: etcd v3 with leases, for self-registering servers;
 * - {@link createDnsRegistry}: read-only DNS SRV (Kubernetes headless services).
 */
export type {
  InstanceInput,
  Registration,
  Registry,
  RegistryErrorListener,
  ResolveOptions,
  ServiceInstance,
  WatchOptions,
} from './registry.js';
export { createStaticRegistry } from './static-registry.js';
export { createEtcdRegistry, type EtcdRegistryOptions } from './etcd-registry.js';
export { createDnsRegistry, type DnsRegistryOptions } from './dns-registry.js';
export { versionSatisfies } from './select.js';
