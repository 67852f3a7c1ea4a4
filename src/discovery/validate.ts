/**
 * Input checks for the discovery layer. Every check throws an INVALID_ARGUMENT `RpcError` whose
 * message names the exact path of the offending value (`createEtcdRegistry: options.ttlSec ...`),
 * so a misconfiguration is found from the message alone.
 */
import { randomUUID } from 'node:crypto';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import type { InstanceInput, ServiceInstance } from './registry.js';

/** An INVALID_ARGUMENT error: `${path} ${rule}`, e.g. `register: input.port must be 1-65535`. */
export function invalidArgument(path: string, rule: string): RpcError {
  return new RpcError(Code.INVALID_ARGUMENT, `${path} ${rule}`);
}

/** `value` if it is an integer >= 1, else throws; `undefined` yields `fallback`. */
export function checkPositiveInteger(value: unknown, path: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw invalidArgument(path, 'must be a positive integer');
  }
  return value;
}

/** `value` if it is a non-empty string, else throws. */
export function checkString(value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length === 0) throw invalidArgument(path, 'must be a non-empty string');
  return value;
}

/** A string usable as one segment of a key path: non-empty, no `/`, no whitespace. */
export function checkSegment(value: unknown, path: string): string {
  const text = checkString(value, path);
  if (/[/\s]/.test(text)) throw invalidArgument(path, `must not contain '/' or whitespace (got ${JSON.stringify(text)})`);
  return text;
}

/** `value` if it is a function, `fallback` when undefined, else throws. */
export function checkFunction<F extends (...args: never[]) => unknown>(value: unknown, path: string, fallback: F): F {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw invalidArgument(path, 'must be a function');
  return value as F;
}

/** `value` if it is a plain object (not null, not an array), else throws. */
export function checkObject(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidArgument(path, 'must be an object');
  return value as Record<string, unknown>;
}

/**
 * Validates an {@link InstanceInput} (or a stored instance read back from etcd) and returns a
 * frozen {@link ServiceInstance} with defaults filled in. `path` prefixes error messages.
 */
export function toServiceInstance(input: unknown, path: string): ServiceInstance {
  const raw = checkObject(input, path) as Partial<Record<keyof InstanceInput, unknown>>;
  const port = raw.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalidArgument(`${path}.port`, 'must be an integer 1-65535');
  }
  const weight = raw.weight ?? 1;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
    throw invalidArgument(`${path}.weight`, 'must be a finite number >= 0');
  }
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(checkObject(raw.metadata ?? {}, `${path}.metadata`))) {
    if (typeof value !== 'string') throw invalidArgument(`${path}.metadata.${key}`, 'must be a string');
    metadata[key] = value;
  }
  return Object.freeze({
    id: raw.id === undefined ? randomUUID() : checkSegment(raw.id, `${path}.id`),
    name: checkSegment(raw.name, `${path}.name`),
    version: checkSegment(raw.version, `${path}.version`),
    host: checkString(raw.host, `${path}.host`),
    port,
    weight,
    metadata: Object.freeze(metadata),
  });
}
