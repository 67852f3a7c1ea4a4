/**
 * `avrpc list etcd|dns [service...]`: the services of a registry, their instances with versions,
 * weights and labels, and each instance's health, probed by a handshake (the server answers, with
 * its protocol, or the probe fails with a code). etcd lists every service under the registry's
 * prefix when none is named; DNS has no listing, so its services must be named.
 */
import { Argument, Command } from 'commander';
import { describeServer } from '../client/describe.js';
import { etcdError } from '../discovery/etcd-registration.js';
import { loadEtcd3 } from '../discovery/etcd3-module.js';
import type { ServiceInstance } from '../discovery/registry.js';
import { codeName } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import {
  addConnectFlags,
  clientTls,
  duration,
  openRegistry,
  reportFailure,
  resolveToken,
  usageError,
  type ConnectFlags,
} from './options.js';

/** Where etcd registries keep services (createEtcdRegistry's default, which `avrpc serve` uses). */
const ETCD_PREFIX = '/avrpc/services/';

interface ListFlags extends ConnectFlags {
  health: boolean;
  timeout: number;
  json?: boolean;
}

/** An instance's health: `SERVING` with its protocol and handshake time, or the probe's failure. */
export type Health = { status: 'SERVING'; protocol: string; ms: number } | { status: string; message: string } | { status: 'UNCHECKED' };

/** One service as `list --json` prints it. */
export interface ListedService {
  name: string;
  instances: Array<ServiceInstance & { health: Health }>;
}

/** The `list` command. */
export function listCommand(): Command {
  const cmd = new Command('list')
    .description("list a registry's services and their instances, with versions and health")
    .addArgument(new Argument('<registry>', 'the registry to read').choices(['etcd', 'dns']))
    .argument('[service...]', 'services to list (default with etcd: all of them; DNS cannot list, so name them)')
    .option('--no-health', 'do not probe the instances')
    .option('--timeout <duration>', 'time each health probe (connect and handshake) may take', duration, 2000)
    .option('--json', 'print {"services": [...]} as one JSON object');
  addConnectFlags(cmd, false);
  cmd.addHelpText(
    'after',
    `
Health is probed by a handshake with each instance (with the TLS and token flags given):
SERVING (protocol, ms), or the code the probe failed with, e.g. UNAVAILABLE or UNAUTHENTICATED.
Exits 0 when the registry could be read, whatever the health of its instances.
  e.g.  avrpc list etcd --etcd-endpoints http://127.0.0.1:2379
        avrpc list dns echo --dns-server 127.0.0.1:5353`,
  );
  return cmd.action(async (kind: 'etcd' | 'dns', services: string[], flags: ListFlags) => {
    await runList(kind, services, flags).catch(reportFailure);
  });
}

async function runList(kind: 'etcd' | 'dns', named: string[], flags: ListFlags): Promise<void> {
  if (flags.registry !== undefined && flags.registry !== kind) throw usageError(`list ${kind} with --registry ${flags.registry}: use one`);
  if (kind === 'dns' && named.length === 0) throw usageError('DNS cannot list its services: name them (avrpc list dns <service...>)');
  const probe = { tls: clientTls(flags), credentials: resolveToken(flags) };
  const registry = openRegistry({ ...flags, registry: kind }, named[0] ?? '');
  try {
    const names = named.length > 0 ? named : await etcdServiceNames(flags.etcdEndpoints ?? '');
    const version = flags.serviceVersion;
    const listed: ListedService[] = [];
    for (const name of names) {
      const found = await registry.resolve(name, version === undefined ? {} : { version });
      const instances = await Promise.all(
        found.map(async (i) => ({
          ...i,
          health: flags.health ? await health(i, probe, flags.timeout) : ({ status: 'UNCHECKED' } as const),
        })),
      );
      listed.push({ name, instances });
    }
    process.stdout.write(flags.json ? `${JSON.stringify({ services: listed })}\n` : formatList(listed, kind));
  } finally {
    await registry.close();
  }
}

/** The service names under the etcd prefix (keys are `<prefix><name>/<version>/<id>`), sorted. */
async function etcdServiceNames(endpoints: string): Promise<string[]> {
  const { Etcd3 } = await loadEtcd3();
  const client = new Etcd3({ hosts: endpoints.split(','), dialTimeout: 5000, defaultCallOptions: () => ({ deadline: Date.now() + 5000 }) });
  try {
    const keys = await client.getAll().prefix(ETCD_PREFIX).keys();
    return [...new Set(keys.map((k) => k.slice(ETCD_PREFIX.length).split('/')[0]!).filter((n) => n !== ''))].sort();
  } catch (err) {
    throw etcdError(err, `list ${ETCD_PREFIX}`);
  } finally {
    client.close();
  }
}

async function health(
  instance: ServiceInstance,
  probe: { tls: ReturnType<typeof clientTls>; credentials: string | undefined },
  timeoutMs: number,
): Promise<Health> {
  const t0 = performance.now();
  try {
    const protocol = await describeServer(
      { host: instance.host, port: instance.port },
      {
        timeoutMs,
        ...(probe.tls === undefined ? {} : { tls: probe.tls }),
        ...(probe.credentials === undefined ? {} : { credentials: probe.credentials }),
      },
    );
    return { status: 'SERVING', protocol: protocol.name, ms: Math.round((performance.now() - t0) * 10) / 10 };
  } catch (err) {
    const e = RpcError.from(err);
    return { status: codeName(e.code), message: e.message };
  }
}

function formatList(services: ListedService[], kind: string): string {
  if (services.length === 0) return `no services in the ${kind} registry\n`;
  const lines: string[] = [];
  for (const s of services) {
    lines.push(`${s.name}: ${s.instances.length === 0 ? 'no instances' : `${s.instances.length} instance(s)`}`);
    for (const i of s.instances) {
      const labels = Object.entries(i.metadata).map(([k, v]) => `${k}=${v}`);
      const h = i.health;
      const state = 'protocol' in h ? `SERVING (${h.protocol}, ${h.ms} ms)` : 'message' in h ? `${h.status}: ${h.message}` : h.status;
      lines.push(
        `  ${i.version}  ${i.host}:${i.port}  weight ${i.weight}  ${state}  id ${i.id}${labels.length > 0 ? `  ${labels.join(' ')}` : ''}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
