/**
 * Status codes: gRPC's names and numbers, so that operators can read them without a table.
 * Sent on the wire as a single byte (see SPEC.md, "Status codes").
 */
export const Code = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const);

/** One of the numeric values of {@link Code}. */
export type Code = (typeof Code)[keyof typeof Code];

/** The name of a code, e.g. `codeName(14) === 'UNAVAILABLE'`. */
export type CodeName = keyof typeof Code;

const names: string[] = [];
for (const [name, value] of Object.entries(Code)) names[value] = name;

/** Returns the name of a code (`'UNAVAILABLE'`), or `'UNKNOWN'` for a number outside the set. */
export function codeName(code: number): CodeName {
  return (names[code] ?? 'UNKNOWN') as CodeName;
}

/** True when `value` is one of the defined codes. */
export function isCode(value: unknown): value is Code {
  return typeof value === 'number' && Number.isInteger(value) && names[value] !== undefined;
}

/**
 * The code an ERROR carries for `code`: itself when it is a failure code of the set, else UNKNOWN
 * (OK is no failure, and a number outside the set means nothing), as gRPC reads unknown statuses.
 */
export function errorCode(code: number): Code {
  return code !== Code.OK && isCode(code) ? code : Code.UNKNOWN;
}
