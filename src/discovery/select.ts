/**
 * Version selection, the one filter every registry applies to resolve and watch results, so that
 * `'^2.1'` means the same thing whether instances come from memory, etcd or DNS.
 */
import semver from 'semver';
import { KNOWN_RESOLVE_OPTIONS, KNOWN_WATCH_OPTIONS, type ResolveOptions, type ServiceInstance, type WatchOptions } from './registry.js';
import { invalidArgument } from './validate.js';
import { knownOptions } from '../util/validate.js';

/** `options` of `resolve`, checked for unknown names (a misspelt `version` would match every version). */
export function resolveOptionsOf(options: ResolveOptions | undefined): ResolveOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw invalidArgument('resolve: options', 'must be an object');
  knownOptions('resolve: options', options, KNOWN_RESOLVE_OPTIONS);
  return options;
}

/** `options` of `watch`, checked for unknown names. */
export function watchOptionsOf(options: WatchOptions | undefined): WatchOptions | undefined {
  if (options === undefined) return undefined;
  if (options === null || typeof options !== 'object') throw invalidArgument('watch: options', 'must be an object');
  knownOptions('watch: options', options, KNOWN_WATCH_OPTIONS);
  return options;
}

/** Short versions such as `'2'`, `'v2.3'`: unambiguous enough to complete to `2.0.0` / `2.3.0`. */
const SHORT_VERSION = /^v?\d+(\.\d+){0,2}$/;

/**
 * Checks a semver range option: `undefined` means "any version"; anything else must be a range
 * `semver` understands (a typo would otherwise silently match nothing). Throws INVALID_ARGUMENT.
 */
export function checkVersionRange(range: unknown, path: string): string | undefined {
  if (range === undefined) return undefined;
  if (typeof range !== 'string' || semver.validRange(range) === null) {
    throw invalidArgument(path, `must be a semver range such as '^2.1' (got ${JSON.stringify(range)})`);
  }
  return range;
}

/**
 * The normalised semver of an instance's version, or `null` when it is not a version at all.
 * Loose parsing accepts `'v2.3.0'`; short forms are completed; anything else never matches a range
 * (coercing arbitrary text, e.g. `'build-2024'` to `2024.0.0`, would pick servers by accident).
 */
export function parseVersion(version: string): string | null {
  const loose = semver.valid(version, { loose: true });
  if (loose !== null) return loose;
  return SHORT_VERSION.test(version) ? (semver.coerce(version)?.version ?? null) : null;
}

/**
 * True when `version` satisfies `range`; `range === undefined` matches everything, including
 * versions that are not semver. Prereleases match only ranges that mention them (npm's rule).
 */
export function versionSatisfies(version: string, range: string | undefined): boolean {
  if (range === undefined) return true;
  const parsed = parseVersion(version);
  return parsed !== null && semver.satisfies(parsed, range);
}

/**
 * The instances whose version satisfies `range`, in a stable order (id, then version), so that
 * equal sets compare equal and callers that pick "the first" behave the same on every registry.
 */
export function selectInstances(instances: Iterable<ServiceInstance>, range: string | undefined): ServiceInstance[] {
  const chosen: ServiceInstance[] = [];
  for (const instance of instances) if (versionSatisfies(instance.version, range)) chosen.push(instance);
  return chosen.sort((a, b) => compare(a.id, b.id) || compare(a.version, b.version) || compare(a.name, b.name));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
