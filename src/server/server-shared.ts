import type { ResolverCache } from '../codec/resolver-cache.js';
import type { GatewayCalls } from './call-executor.js';
import type { BodyWriter } from '../framing/frame-encoder.js';
import type { MemoryBudget } from './memory-budget.js';
import type { OffloadPool } from './offload/offload-pool.js';
import type { ParseBudget } from './parse-budget.js';
import type { StreamOffload } from './stream-offload.js';
import type { ResolvedServerOptions } from './server-options.js';

/** What all connections of one server share. */
export interface ServerShared {
  readonly options: ResolvedServerOptions;
  readonly cache: ResolverCache;
  /** Response body writers by local message index. */
  readonly writers: readonly BodyWriter<unknown>[];
  /** Worker threads for the messages offloaded (`workers` option). */
  readonly offload?: OffloadPool | undefined;
  /** Where offloaded stream handlers run (the same pool, when it runs streams). */
  readonly streamOffload?: StreamOffload | undefined;
  /** Time for parsing strangers' protocols (`protocolParseMsPerSecond`); undefined when unlimited. */
  readonly parseBudget?: ParseBudget | undefined;
  /** The server-wide memory budget (`maxBufferedBytes`); each connection reports to its own account. */
  readonly budget: MemoryBudget;
  /** The `avrpc.limits` WELCOME value (SPEC.md section 11.4), encoded once; undefined: none advertised. */
  readonly limits?: Buffer | undefined;
  /** Calls run for other transports (HTTP, gRPC) by `executeCall`: counted, refused once draining, waited for by `close`. */
  readonly gateway?: GatewayCalls | undefined;
}
