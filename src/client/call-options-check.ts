import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { describe, knownOptions } from '../util/validate.js';
import { KNOWN_CALL_OPTIONS, type CallOptions } from './client-options.js';

/**
 * The checks of per-call options (`CallOptions`), run on every call: plain compares, no allocation
 * unless something is wrong, and an INVALID_ARGUMENT naming the option when it is.
 */

/**
 * Why `callOptions` cannot be used, or `undefined`. A misspelt option (timeoutMS) would silently leave
 * the call without its deadline. Per call, so no allocation and plain compares (the names of
 * KNOWN_CALL_OPTIONS, which the error message uses).
 */
export function checkCallOptions(callOptions: CallOptions | undefined, defaultTimeout: number | undefined): RpcError | undefined {
  // The client's own timeoutMs was checked when it was created.
  if (callOptions === undefined) return undefined;
  for (const k in callOptions) {
    if (
      k !== 'timeoutMs' &&
      k !== 'metadata' &&
      k !== 'signal' &&
      k !== 'onHeader' &&
      k !== 'onTrailer' &&
      k !== 'waitForReady' &&
      Object.hasOwn(callOptions, k)
    )
      return unknownCallOption(callOptions);
  }
  const timeoutMs = callOptions.timeoutMs ?? defaultTimeout;
  const { signal, metadata, onHeader, onTrailer } = callOptions;
  if (
    (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs >= 0)) ||
    (signal !== undefined && !isAbortSignal(signal)) ||
    (metadata !== undefined && !isMetadata(metadata))
  ) {
    return callOptionsError(timeoutMs, signal, metadata);
  }
  if (onHeader !== undefined && typeof onHeader !== 'function')
    return new RpcError(Code.INVALID_ARGUMENT, `call: options.onHeader must be a function, got ${describe(onHeader)}`);
  if (onTrailer !== undefined && typeof onTrailer !== 'function')
    return new RpcError(Code.INVALID_ARGUMENT, `call: options.onTrailer must be a function, got ${describe(onTrailer)}`);
  const waitForReady = callOptions.waitForReady;
  if (waitForReady !== undefined && typeof waitForReady !== 'boolean')
    return new RpcError(Code.INVALID_ARGUMENT, `call: options.waitForReady must be a boolean, got ${describe(waitForReady)}`);
  return undefined;
}

/** The timeout of a call in ms, or -1 for none; `Infinity` opts out of the client's default. */
export function timeoutOf(callOptions: CallOptions | undefined, defaultTimeout: number | undefined): number {
  const timeoutMs = callOptions?.timeoutMs ?? defaultTimeout;
  return timeoutMs === undefined || timeoutMs === Infinity ? -1 : timeoutMs;
}

const isAbortSignal = (s: unknown): s is AbortSignal =>
  typeof s === 'object' &&
  s !== null &&
  typeof (s as AbortSignal).aborted === 'boolean' &&
  typeof (s as AbortSignal).addEventListener === 'function';

/** String keys to string values: what a METADATA map can carry. */
function isMetadata(m: unknown): boolean {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return false;
  for (const k in m) if (typeof (m as Record<string, unknown>)[k] !== 'string') return false;
  return true;
}

/** The INVALID_ARGUMENT for a call option of an unknown name, naming it and the closest known one. */
function unknownCallOption(options: object): RpcError {
  try {
    if (options === null || typeof options !== 'object') return new RpcError(Code.INVALID_ARGUMENT, 'call: options must be an object');
    knownOptions('call: options', options, KNOWN_CALL_OPTIONS);
  } catch (err) {
    return RpcError.from(err);
  }
  return new RpcError(Code.INVALID_ARGUMENT, 'call: options has an unknown property');
}

/** The INVALID_ARGUMENT for call options `send` found wrong, naming the option. */
function callOptionsError(timeoutMs: unknown, signal: unknown, metadata: unknown): RpcError {
  let problem = `options.timeoutMs must be a number >= 0, got ${describe(timeoutMs)}`;
  if (signal !== undefined && !isAbortSignal(signal)) {
    problem = `options.signal must be an AbortSignal, got ${describe(signal)}`;
  } else if (metadata !== undefined && !isMetadata(metadata)) {
    const entries = typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata) ? Object.entries(metadata) : [];
    const bad = entries.find(([, v]) => typeof v !== 'string');
    problem =
      bad === undefined
        ? `options.metadata must be an object of string values, got ${describe(metadata)}`
        : `options.metadata.${bad[0]} must be a string, got ${describe(bad[1])}`;
  }
  return new RpcError(Code.INVALID_ARGUMENT, `call: ${problem}`);
}
