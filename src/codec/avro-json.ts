import avro from 'avsc';
import type { Protocol, StreamKind } from './protocol.js';
import { longHook } from './longs.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { bytesForOutput } from './bytes-output.js';
import { JsonInputError, checkJsonInput, type BytesMode } from './json-input.js';
import { parseJson, stringifyJson } from './lossless-json.js';

/**
 * A `long` for JSON conversion only: BigInt values (as the CLI's client decodes them), read from a
 * number or a BigInt literal, written back as a BigInt so that the printer keeps every digit.
 */
const jsonLong = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (n: bigint) => {
    const buf = Buffer.allocUnsafe(8);
    buf.writeBigInt64LE(n);
    return buf;
  },
  fromJSON: (v: unknown) => {
    if (typeof v === 'bigint') return v;
    if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
    if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
    throw new Error(`not a long: ${String(v)}`);
  },
  toJSON: (n: bigint) => n,
  isValid: (n: unknown) => typeof n === 'bigint' && n >= -(2n ** 63n) && n < 2n ** 63n,
  compare: (a: bigint, b: bigint) => (a === b ? 0 : a < b ? -1 : 1),
});

/** avsc's internal copy with coercion: `coerce: 2` reads Avro JSON, `coerce: 3` writes it. */
interface Copying {
  _copy(value: unknown, opts: { coerce: 2 | 3 }): unknown;
}

/** The Avro types of one message, for converting its values from and to Avro's JSON encoding. */
export interface JsonMessage {
  readonly name: string;
  readonly request: avro.Type;
  readonly response: avro.Type;
  readonly errors: avro.Type;
  readonly oneWay: boolean;
  /** The stream kind (`server`, `client`, `bidi`), or undefined for a unary or one-way message. */
  readonly stream: StreamKind | undefined;
  /** How its bytes and fixed values are written in JSON, in and out. */
  readonly bytes: BytesMode;
}

/**
 * The messages of `protocol` typed for Avro JSON: bytes and fixed as strings of code points 0-255,
 * unions other than null wrapped as `{"branch": value}`, enums as symbols, longs as exact integers.
 * `protocol` must be parsed with `longs: 'bigint'` for values to match. With `bytes: 'base64'`,
 * bytes and fixed are base64 strings instead, in requests and in what is printed.
 */
export function jsonMessages(protocol: Protocol, bytes: BytesMode = 'latin1'): Map<string, JsonMessage> {
  const service = avro.Service.forProtocol(JSON.parse(protocol.text) as object, { registry: { long: jsonLong }, typeHook: longHook });
  const out = new Map<string, JsonMessage>();
  for (const m of service.messages as Array<{
    name: string;
    requestType: avro.Type;
    responseType: avro.Type;
    errorType: avro.Type;
    oneWay: boolean;
  }>) {
    out.set(m.name, {
      name: m.name,
      request: m.requestType,
      response: m.responseType,
      errors: m.errorType,
      oneWay: m.oneWay,
      stream: protocol.message(m.name)?.stream,
      bytes,
    });
  }
  return out;
}

/**
 * Parses a message's request from Avro JSON text (the parameters as one object). Throws
 * INVALID_ARGUMENT saying what is wrong.
 */
export function requestFromJson(msg: JsonMessage, text: string): object {
  let json: unknown;
  try {
    json = parseJson(text);
  } catch (err) {
    throw new RpcError(Code.INVALID_ARGUMENT, `request of ${msg.name}: ${(err as Error).message}`);
  }
  try {
    json = checkJsonInput(msg.request, json, '', msg.bytes);
  } catch (err) {
    if (!(err instanceof JsonInputError)) throw err;
    throw new RpcError(Code.INVALID_ARGUMENT, `request of ${msg.name}: ${err.message}`);
  }
  let value: object;
  try {
    value = (msg.request as unknown as Copying)._copy(json, { coerce: 2 }) as object;
  } catch (err) {
    throw new RpcError(
      Code.INVALID_ARGUMENT,
      `request of ${msg.name} does not match its schema ${msg.request.toString()}: ${(err as Error).message}`,
    );
  }
  // A safety net: checkJsonInput should have named any bad value already.
  let bad: string | undefined;
  msg.request.isValid(value, { errorHook: (path) => (bad ??= path.join('.')) });
  if (bad !== undefined) throw new RpcError(Code.INVALID_ARGUMENT, `request of ${msg.name}: invalid value at ${bad}`);
  return value;
}

/** Prints a value of `type` (e.g. a response) as Avro JSON text, bytes as `bytes` says. */
export function toAvroJson(type: avro.Type, value: unknown, indent = 0, bytes: BytesMode = 'latin1'): string {
  return stringifyJson(bytesForOutput(type, (type as unknown as Copying)._copy(value, { coerce: 3 }), bytes), indent);
}

/**
 * Prints a declared error value (as `RpcError.details` carries it) as Avro JSON of the message's
 * error union, `{"ns.ErrorName": {...}}`: as the branch `errorType` names (`RpcError.errorType`, the
 * branch the client decoded), else the first it fits; undefined when it matches no declared branch.
 */
export function declaredErrorJson(msg: JsonMessage, details: unknown, indent = 0, errorType?: string): string | undefined {
  const branches = (msg.errors as unknown as { types: avro.Type[] }).types.filter((b) => b.typeName !== 'string');
  const named = branches.filter((b) => b.name === errorType);
  for (const branch of [...named, ...branches]) {
    if (!branch.isValid(details)) continue;
    const json = bytesForOutput(branch, (branch as unknown as Copying)._copy(details, { coerce: 3 }), msg.bytes);
    return stringifyJson({ [branch.branchName!]: json }, indent);
  }
  return undefined;
}
