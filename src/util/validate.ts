import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';

/**
 * Option validation shared by every public factory: each check throws an `RpcError`
 * (INVALID_ARGUMENT) whose message names the option's path, e.g. `createClient: options.timeoutMs ...`.
 */

/** Throws INVALID_ARGUMENT with `path` in the message. */
export function invalid(path: string, problem: string): never {
  throw new RpcError(Code.INVALID_ARGUMENT, `${path} ${problem}`);
}

/**
 * Returns `value` if it is an integer within [min, max], `fallback` when it is undefined, and throws
 * otherwise. Infinity is accepted only when `max` is Infinity.
 */
export function intOption(path: string, value: unknown, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || (!Number.isInteger(value) && value !== Infinity)) {
    invalid(path, `must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) invalid(path, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** Longest delay `setTimeout` honours (2^31-1 ms, about 24.8 days); Node fires a longer one after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A duration in ms that arms a timer as it is: an integer within [min, max], `max` at most
 * {@link MAX_TIMER_MS} (a longer delay would fire at once).
 */
export function msOption(path: string, value: unknown, fallback: number, min = 0, max = MAX_TIMER_MS): number {
  return intOption(path, value, fallback, min, Math.min(max, MAX_TIMER_MS));
}

/** Returns `value` if it is one of `choices`, `fallback` when undefined, and throws otherwise. */
export function oneOf<T extends string>(path: string, value: unknown, fallback: T, choices: readonly T[]): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !choices.includes(value as T)) {
    invalid(path, `must be one of ${choices.map((c) => `'${c}'`).join(', ')}, got ${describe(value)}`);
  }
  return value as T;
}

/** Throws unless `value` is a function (or undefined when `optional`). */
export function fnOption<F>(path: string, value: unknown, optional: boolean): F | undefined {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'function') invalid(path, `must be a function, got ${describe(value)}`);
  return value as F;
}

/** Short description of a bad value for error messages. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

/**
 * The option names a resolver knows, as an object literal keyed by them: written
 * `{ a: true, b: true } as const satisfies Record<keyof XOptions, true>`, the compiler keeps it in
 * step with the options interface (a name added to one and not the other does not build).
 */
export type KnownOptions = Readonly<Record<string, true>>;

/**
 * Throws INVALID_ARGUMENT for the first own enumerable key of `options` that `known` lacks, naming
 * its path and the closest known name: `createServer: options.maxConcurentCalls: unknown option; did
 * you mean maxConcurrentCalls?`. A misspelt option silently ignored leaves its default in force.
 * Allocates nothing when every key is known.
 */
export function knownOptions(path: string, options: object, known: KnownOptions): void {
  for (const key in options) {
    if (Object.hasOwn(known, key) || !Object.hasOwn(options, key)) continue;
    const names = Object.keys(known);
    const near = closestName(key, names);
    invalid(
      `${path}.${key}:`,
      near !== undefined
        ? `unknown option; did you mean ${near}?`
        : names.length <= 8
          ? `unknown option; known options: ${names.join(', ')}`
          : 'unknown option',
    );
  }
}

/**
 * The name of `names` closest to `name` by edit distance (insertions, deletions, substitutions and
 * swaps of neighbours, ignoring case), if close enough to be a likely typo: within a third of its
 * length, at least 2; ties go to the one that also differs least in case.
 */
export function closestName(name: string, names: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const limit = Math.max(2, Math.floor(name.length / 3));
  let best: string | undefined;
  let bestScore = Infinity;
  for (const candidate of names) {
    // Exact-case distance breaks ties (timeoutMS -> timeoutMs, not a same-distance other name).
    const score = editDistance(lower, candidate.toLowerCase()) * 64 + Math.min(63, editDistance(name, candidate));
    if (score < bestScore) {
      bestScore = score;
      best = candidate;
    }
  }
  return best !== undefined && Math.floor(bestScore / 64) <= limit ? best : undefined;
}

/** Optimal string alignment distance (Damerau-Levenshtein without repeated edits of one substring). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  // Option names are short; three rows of numbers, once per unknown option.
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      row.push(d);
    }
    prev2 = prev;
    prev = row;
  }
  return prev[b.length]!;
}
