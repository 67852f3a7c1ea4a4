import { fingerprintOf } from './fingerprint.js';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import '../framing/avro-limits.js';
import { Code } from '../errors/code.js';
import { RpcError } from '../errors/rpc-error.js';
import { idlOptions, liftReferenceAttributes } from './avsc-idl.js';
import { checkPeerProtocol } from './protocol-limits.js';
import { LONGS_MODES, longHook, longsRegistry, type LongsMode } from './longs.js';
import { unionHook } from './unions.js';
import { viewBytesHook } from './view-bytes.js';
import { shortStringHook } from './short-strings.js';
import { invalid, knownOptions, oneOf } from '../util/validate.js';

/**
 * What kind of stream a message is (SPEC.md section 13): `server` (one request, any number of
 * responses), `client` (any number of requests, one response) or `bidi` (both). Set by
 * `@stream("server")` before the message in IDL, or `"stream": "server"` on the message in JSON.
 */
export type StreamKind = 'server' | 'client' | 'bidi';

const STREAM_KINDS: readonly StreamKind[] = ['server', 'client', 'bidi'];

/** One message of a protocol, with its Avro types. */
export interface MessageDef {
  /** Position in the protocol's `messages` (the order of the JSON text); sent on the wire. */
  readonly index: number;
  readonly name: string;
  /** Record type whose fields are the message's parameters. */
  readonly request: avro.Type;
  /** Response type (`null` for one-way messages). */
  readonly response: avro.Type;
  /** Union of `string` and the declared error types. */
  readonly errors: avro.Type;
  readonly oneWay: boolean;
  /**
   * Safe to retry after an attempt that may have run: set by `@idempotent(true)` before the message in
   * IDL (avsc records it on the response schema) or `"idempotent": true` on the message in JSON.
   */
  readonly idempotent: boolean;
  /**
   * The stream kind, or `undefined` for a unary or one-way message. The request record is one request
   * element, the response type one response element.
   */
  readonly stream: StreamKind | undefined;
}

/** Options of {@link loadProtocol} and {@link parseProtocol}. */
export interface ProtocolOptions {
  /**
   * How Avro `long` values appear in JavaScript: `'number'` (exact up to 2^53, larger values are
   * refused), `'bigint'` (every 64-bit value exact; safe-integer numbers are accepted on encode too) or
   * `'string'` (decimal strings such as `"9223372036854775807"`, every 64-bit value exact, for values
   * bound for JSON; safe-integer numbers and BigInts accepted on encode). In the `string` mode a
   * union holding a `long` beside a `string` or an enum is wrapped (`{"long": "5"}`), as avsc wraps any
   * union whose branches' values cannot be told apart. Default `'number'`.
   */
  longs?: LongsMode;
}

const KNOWN_PROTOCOL_OPTIONS = { longs: true } as const satisfies Record<keyof ProtocolOptions, true>;

/**
 * The types of protocols: `bytes` and `fixed` take Uint8Arrays and large `bytes` decode as views
 * (view-bytes.ts), short ASCII strings decode in JS (short-strings.ts), unions bucket Uint8Arrays and the exact modes' longs (unions.ts).
 */
function typeHook(schema: avro.Schema, opts: avro.ForSchemaOptions): avro.Type | undefined {
  return viewBytesHook(schema, opts) ?? shortStringHook(schema) ?? unionHook(schema, opts) ?? longHook(schema, opts);
}

/**
 * A parsed Avro protocol: its messages by name and index, and its fingerprint, the MD5 of its JSON
 * text (SPEC.md, "Handshake"). Immutable; share one instance between clients and servers.
 */
export class Protocol {
  /** The protocol's full name, e.g. `avrpc.echo.Echo`. */
  readonly name: string;
  /** The JSON text exchanged in handshakes; the fingerprint is the MD5 of its UTF-8 bytes. */
  readonly text: string;
  /** 16-byte MD5 fingerprint. */
  readonly fingerprint: Buffer;
  /** Fingerprint as lowercase hex, used as a cache key. */
  readonly id: string;
  /** Messages in wire order. */
  readonly messages: readonly MessageDef[];
  private readonly byName: Map<string, MessageDef>;
  private readonly service: avro.Service;

  /** The options it was parsed with; peer protocols learned in handshakes are parsed the same way. */
  readonly options: Readonly<ProtocolOptions>;

  /**
   * Builds a protocol from its JSON form: an object, or its text (kept verbatim: a peer's text from a
   * handshake, whose MD5 is its fingerprint). Prefer {@link loadProtocol}. Throws INVALID_ARGUMENT.
   * `fromPeer` (internal: a text received in a handshake) bounds its shape first, before avsc builds
   * any type of it (`PEER_PROTOCOL_LIMITS`, RESOURCE_EXHAUSTED).
   */
  constructor(json: object | string, options: ProtocolOptions = {}, fromPeer = false) {
    if (options === null || typeof options !== 'object') invalid('Protocol: options', 'must be an object');
    knownOptions('Protocol: options', options, KNOWN_PROTOCOL_OPTIONS);
    this.options = { longs: oneOf<LongsMode>('Protocol: options.longs', options.longs, 'number', LONGS_MODES) };
    let attrs: object;
    try {
      const parsed = typeof json === 'string' ? (JSON.parse(json) as object) : json;
      if (fromPeer) checkPeerProtocol(parsed);
      attrs = liftReferenceAttributes(parsed);
    } catch (err) {
      if (err instanceof RpcError) throw err;
      throw new RpcError(Code.INVALID_ARGUMENT, `invalid protocol JSON: ${(err as Error).message}`, { cause: err });
    }
    try {
      this.service = avro.Service.forProtocol(attrs, { typeHook, registry: longsRegistry(this.options.longs!) });
    } catch (err) {
      throw new RpcError(Code.INVALID_ARGUMENT, `invalid Avro protocol: ${(err as Error).message}`, { cause: err });
    }
    this.text = typeof json === 'string' ? json : JSON.stringify(this.service.protocol);
    this.fingerprint = fingerprintOf(this.text);
    this.id = this.fingerprint.toString('hex');
    this.name = this.service.name;
    const messages: MessageDef[] = [];
    const declared =
      (this.service.protocol as { messages?: Record<string, { idempotent?: unknown; response?: unknown; stream?: unknown }> }).messages ??
      {};
    for (const m of this.service.messages as AvscMessage[]) {
      const raw = declared[m.name];
      const response = raw?.response as { idempotent?: unknown } | undefined;
      const stream = raw?.stream;
      if (stream !== undefined && !STREAM_KINDS.includes(stream as StreamKind))
        throw new RpcError(
          Code.INVALID_ARGUMENT,
          `message ${m.name}: "stream" must be "server", "client" or "bidi", got ${JSON.stringify(stream)}`,
        );
      if (stream !== undefined && m.oneWay)
        throw new RpcError(Code.INVALID_ARGUMENT, `message ${m.name}: a one-way message cannot be a stream`);
      messages.push({
        index: messages.length,
        name: m.name,
        request: m.requestType,
        response: m.responseType,
        errors: m.errorType,
        oneWay: m.oneWay,
        idempotent: raw?.idempotent === true || (typeof response === 'object' && response?.idempotent === true),
        stream: stream as StreamKind | undefined,
      });
    }
    this.messages = messages;
    this.byName = new Map(messages.map((m) => [m.name, m]));
  }

  /** The message called `name`, or `undefined`. */
  message(name: string): MessageDef | undefined {
    return this.byName.get(name);
  }

  /** A named type of the protocol (record, enum, fixed, error), e.g. to build a declared error value. */
  type(name: string): avro.Type | undefined {
    return this.service.type(name) ?? this.service.type(`${this.service.protocol.namespace ?? ''}.${name}`);
  }
}

interface AvscMessage {
  name: string;
  requestType: avro.Type;
  responseType: avro.Type;
  errorType: avro.Type;
  oneWay: boolean;
}

/**
 * Parses a protocol from a string: Avro IDL (without imports) or JSON (`.avpr` content).
 * Throws `RpcError` INVALID_ARGUMENT when it is neither.
 */
export function parseProtocol(source: string, options: ProtocolOptions = {}): Protocol {
  if (typeof source !== 'string')
    throw new RpcError(Code.INVALID_ARGUMENT, `parseProtocol: source must be a string of Avro IDL or JSON, got ${typeof source}`);
  const trimmed = source.trimStart();
  if (trimmed.startsWith('{')) {
    let json: object;
    try {
      json = JSON.parse(trimmed) as object;
    } catch (err) {
      throw new RpcError(Code.INVALID_ARGUMENT, `invalid protocol JSON: ${(err as Error).message}`, { cause: err });
    }
    return new Protocol(json, options);
  }
  let attrs: object;
  try {
    attrs = avro.readProtocol(source, idlOptions()) as object;
  } catch (err) {
    throw new RpcError(Code.INVALID_ARGUMENT, `invalid Avro IDL: ${(err as Error).message}`, { cause: err });
  }
  return new Protocol(attrs, options);
}

/**
 * Loads a protocol from a file path (relative to the working directory) or a `file:` URL: Avro IDL
 * (`.avdl`, imports resolved relative to the importing file) or JSON (`.avpr`, `.json`). Rejects with
 * `RpcError` INVALID_ARGUMENT on a missing or bad file, naming the file.
 */
export async function loadProtocol(source: string | URL, options: ProtocolOptions = {}): Promise<Protocol> {
  const path = protocolPath(source);
  try {
    if (path.endsWith('.avdl')) {
      const attrs = await new Promise<object>((resolve, reject) => {
        avro.assembleProtocol(path, idlOptions(), (err, attrs) => (err ? reject(err) : resolve(attrs as object)));
      });
      return new Protocol(attrs, options);
    }
    return parseProtocol(await readFile(path, 'utf8'), options);
  } catch (err) {
    // avsc names the imported file a syntax error is in.
    const inFile = (err as { path?: unknown }).path;
    const where = typeof inFile === 'string' && inFile !== path ? ` (in ${inFile})` : '';
    throw new RpcError(Code.INVALID_ARGUMENT, `cannot load protocol ${path}${where}: ${(err as Error).message}`, { cause: err });
  }
}

/** The file a {@link loadProtocol} source names; INVALID_ARGUMENT for anything but a path or `file:` URL. */
function protocolPath(source: unknown): string {
  const isUrl = source instanceof URL || (typeof source === 'string' && /^[a-z][a-z0-9+.-]+:/i.test(source));
  if (!isUrl) {
    if (typeof source !== 'string' || source === '')
      throw new RpcError(Code.INVALID_ARGUMENT, 'loadProtocol: source must be a file path or a file: URL');
    return source;
  }
  let url: URL;
  try {
    url = new URL(source as string | URL);
  } catch (err) {
    throw new RpcError(Code.INVALID_ARGUMENT, `loadProtocol: invalid URL ${String(source)}`, { cause: err });
  }
  if (url.protocol !== 'file:')
    throw new RpcError(Code.INVALID_ARGUMENT, `loadProtocol: only paths and file: URLs can be loaded, got ${url.href}`);
  try {
    return fileURLToPath(url);
  } catch (err) {
    throw new RpcError(Code.INVALID_ARGUMENT, `loadProtocol: ${(err as Error).message}: ${url.href}`, { cause: err });
  }
}
