import { jsonMessages, requestFromJson, toAvroJson, type JsonMessage } from '../../codec/avro-json.js';
import type { BytesMode } from '../../codec/json-input.js';
import type { MessageDef, Protocol } from '../../codec/protocol.js';
import { Code } from '../../errors/code.js';
import { RpcError } from '../../errors/rpc-error.js';
import { JsonBytes } from './json-bytes.js';
import { Miss, directReader, parseDirect, type DirectReader } from './json-direct.js';
import { directWriter, type DirectWriter } from './json-writer.js';

/** Where every route of this thread prints its responses (printing is synchronous). */
const printed = new JsonBytes();

/**
 * One message as HTTP calls it, in one bytes mode: its definition, its JSON types, and the direct
 * converters when its types allow them. Built once per server, so a call looks nothing up but this.
 */
export class HttpRoute {
  private readonly read: DirectReader | undefined;
  private readonly write: DirectWriter | undefined;

  constructor(
    readonly msg: MessageDef,
    readonly json: JsonMessage,
  ) {
    this.read = directReader(msg.request, json.bytes);
    this.write = directWriter(msg.response, json.bytes);
  }

  /** The request from its JSON body (empty: `{}`), as the server's types hold it; INVALID_ARGUMENT when it does not fit. */
  request(body: string): unknown {
    const text = body.length === 0 || body.trim() === '' ? '{}' : body;
    if (this.read !== undefined) {
      const json = parseDirect(text);
      if (json !== undefined) {
        try {
          return this.read(json);
        } catch (err) {
          if (!(err instanceof Miss)) throw err;
        }
      }
    }
    // The general path: Avro JSON read into the JSON types (exact longs, errors with paths); the
    // server's own types take it from its binary.
    const value = requestFromJson(this.json, text);
    try {
      return this.msg.request.fromBuffer(this.json.request.toBuffer(value));
    } catch (err) {
      throw new RpcError(Code.INVALID_ARGUMENT, `request of ${this.msg.name}: ${(err as Error).message}`);
    }
  }

  /**
   * A response (valid for the message's type) as Avro JSON in UTF-8, followed by a newline when
   * `line` (an NDJSON line). Throws when it cannot be written.
   */
  response(value: unknown, line = false): Buffer {
    if (this.write !== undefined) {
      try {
        this.write(value, printed);
        if (line) printed.byte(0x0a);
        return printed.take();
      } catch (err) {
        printed.abandon();
        if (!(err instanceof Miss)) throw err;
      }
    }
    const json = this.json;
    const text = toAvroJson(json.response, json.response.fromBuffer(this.msg.response.toBuffer(value)), 0, json.bytes);
    return Buffer.from(line ? `${text}\n` : text, 'utf8');
  }
}

/** Most paths of one length {@link HttpRoutes.atPath} compares a target with, before it hashes it instead. */
const MAX_SCAN = 8;

/** The routes of a protocol's messages, by name, in each bytes mode. */
export class HttpRoutes {
  private readonly latin1 = new Map<string, HttpRoute>();
  private readonly base64 = new Map<string, HttpRoute>();
  /** The same routes by their whole path, `/<protocol full name>/<message>`. */
  private readonly latin1Paths = new Map<string, HttpRoute>();
  private readonly base64Paths = new Map<string, HttpRoute>();
  /**
   * The paths (and their latin1 and base64 routes) by length, for {@link atPath}: a request's target
   * is a new string each time, and comparing it with the few paths of its length costs less than
   * hashing it for a Map lookup. Lengths shared by more than {@link MAX_SCAN} paths are left out.
   */
  private readonly byLength = new Map<number, { path: string; latin1: HttpRoute; base64: HttpRoute }[]>();

  constructor(protocol: Protocol) {
    for (const [bytes, routes, paths] of [
      ['latin1', this.latin1, this.latin1Paths],
      ['base64', this.base64, this.base64Paths],
    ] as const) {
      for (const [name, json] of jsonMessages(protocol, bytes as BytesMode)) {
        const route = new HttpRoute(protocol.message(name)!, json);
        routes.set(name, route);
        paths.set(`/${protocol.name}/${name}`, route);
      }
    }
    for (const [path, latin1] of this.latin1Paths) {
      const same = this.byLength.get(path.length) ?? [];
      same.push({ path, latin1, base64: this.base64Paths.get(path)! });
      this.byLength.set(path.length, same);
    }
    for (const [length, same] of this.byLength) if (same.length > MAX_SCAN) this.byLength.delete(length);
  }

  /** The route of message `name` in mode `bytes`, if the protocol has it. */
  get(name: string, bytes: BytesMode): HttpRoute | undefined {
    return (bytes === 'base64' ? this.base64 : this.latin1).get(name);
  }

  /** The route whose path is exactly `target` (no query, no encoding) in mode `bytes`, if any. */
  atPath(target: string, bytes: BytesMode): HttpRoute | undefined {
    const same = this.byLength.get(target.length);
    if (same !== undefined) {
      for (let i = 0; i < same.length; i++) {
        const p = same[i]!;
        if (p.path === target) return bytes === 'base64' ? p.base64 : p.latin1;
      }
      // Every path of this length is in the list (only longer lists are left out): no match.
      return undefined;
    }
    return (bytes === 'base64' ? this.base64Paths : this.latin1Paths).get(target);
  }
}
