/**
 * The protocol of the offload tests and benchmarks: a message carrying an array of records (the heavy
 * payload), with a declared error. `bulkIdlV2` is an older client's view of it (different Row schema),
 * to exercise schema resolution inside workers.
 */
import { parseProtocol, type Protocol } from '../../src/index.js';

/** Server side. */
export const bulkIdl = `
@namespace("avrpc.bulk")
protocol Bulk {
  record Row { long id; string name; array<string> tags; double score = 1.5; }
  error BulkError { string reason; int count; }
  record Reply { array<Row> rows; int threadId; map<string> info; }
  /** action says what the handler does (see bulk-handlers.ts). */
  Reply echo(array<Row> rows, string action) throws BulkError;
}`;

/** A client whose Row has no score and an extra field: the server resolves it. */
export const bulkIdlV2 = `
@namespace("avrpc.bulk")
protocol Bulk {
  record Row { long id; string name; array<string> tags; string extra = "x"; }
  error BulkError { string reason; int count; }
  record Reply { array<Row> rows; int threadId; map<string> info; }
  Reply echo(array<Row> rows, string action) throws BulkError;
}`;

/** The server protocol. */
export function bulkProtocol(): Protocol {
  return parseProtocol(bulkIdl);
}

/** One benchmark row. */
export interface Row {
  id: number;
  name: string;
  tags: string[];
  score: number;
}

/** `n` distinct rows (about 29 bytes each encoded). */
export function rows(n: number, seed = 0): Row[] {
  const out: Row[] = [];
  for (let i = 0; i < n; i++) out.push({ id: seed + i, name: `row-${seed + i}`, tags: ['a', `t${i % 7}`], score: i / 4 });
  return out;
}
