import type avro from 'avsc';
import type { MessageDef, Protocol } from './protocol.js';

/** How to read one of the peer's requests: the local message it maps to, and the resolver if the schemas differ. */
export interface IncomingRequest {
  /** The local message, or `null` when this side does not have the peer's message. */
  readonly local: MessageDef | null;
  /** The peer's message name (for errors). */
  readonly name: string;
  /** Resolver from the peer's request type; `undefined` when both sides use the same protocol. */
  readonly resolver: avro.Resolver | undefined;
  /**
   * Set when the message cannot be served to this peer: its request does not resolve into ours, or
   * the peer could not read our response or our errors (SPEC.md section 3), or it is one-way on one
   * side only. The reason.
   */
  readonly incompatible: string | undefined;
}

/** How to read the peer's responses and errors to one of our messages. */
export interface IncomingResponse {
  readonly response: avro.Resolver | undefined;
  readonly errors: avro.Resolver | undefined;
  /**
   * Set when the call cannot be made to this peer: its response or error schemas do not resolve into
   * ours, or it could not read our request, or the message is one-way on one side only. The reason,
   * as the caller reads it after `message <name>: `.
   */
  readonly incompatible: string | undefined;
}

/**
 * The Avro schema resolution between this side's protocol and one peer protocol, built once per pair
 * of fingerprints and cached (see `ResolverCache`). When both fingerprints are equal every resolver
 * is `undefined` and decoding takes the direct path. A server only reads `requests` and a client only
 * `responses`: each is built on first use, so neither side resolves what only the other needs.
 *
 * Every message is checked in all three directions (SPEC.md section 3) on both sides, so that a call
 * whose answer one side could not decode is refused before it runs: FAILED_PRECONDITION, never a
 * result or a declared error the caller cannot read.
 */
export class PeerCodec {
  private builtRequests: readonly IncomingRequest[] | undefined;
  private builtResponses: readonly IncomingResponse[] | undefined;

  constructor(
    readonly local: Protocol,
    readonly remote: Protocol,
  ) {}

  /** Indexed by the peer's message index (what a REQUEST frame carries). */
  get requests(): readonly IncomingRequest[] {
    return (this.builtRequests ??= this.buildRequests());
  }

  /** Indexed by our message index. */
  get responses(): readonly IncomingResponse[] {
    return (this.builtResponses ??= this.buildResponses());
  }

  private buildRequests(): IncomingRequest[] {
    const { local, remote } = this;
    const same = local.id === remote.id;
    return remote.messages.map((rm): IncomingRequest => {
      const lm = same ? local.messages[rm.index]! : local.message(rm.name);
      if (lm === undefined) return { local: null, name: rm.name, resolver: undefined, incompatible: undefined };
      if (same) return { local: lm, name: rm.name, resolver: undefined, incompatible: undefined };
      const r = tryResolve(lm.request, rm.request);
      // What we answer must be readable by the peer: our response and errors are the writer's schemas.
      const problem =
        lm.oneWay !== rm.oneWay
          ? 'one-way on one side only'
          : lm.stream !== rm.stream
            ? streamMismatch(rm.stream, lm.stream)
            : (r.error ??
              check(rm.response, lm.response, 'the client cannot read the response') ??
              check(rm.errors, lm.errors, 'the client cannot read the errors'));
      return { local: lm, name: rm.name, resolver: r.resolver, incompatible: problem };
    });
  }

  private buildResponses(): IncomingResponse[] {
    const { local, remote } = this;
    const same = local.id === remote.id;
    return local.messages.map((lm): IncomingResponse => {
      const rm = same ? remote.messages[lm.index] : remote.message(lm.name);
      if (same || rm === undefined) return { response: undefined, errors: undefined, incompatible: undefined };
      const res = tryResolve(lm.response, rm.response);
      const errs = tryResolve(lm.errors, rm.errors);
      // The server must be able to read our request (it would refuse it FAILED_PRECONDITION).
      const problem =
        lm.oneWay !== rm.oneWay
          ? 'incompatible schemas: one-way on one side only'
          : lm.stream !== rm.stream
            ? streamMismatch(lm.stream, rm.stream)
            : (check(rm.request, lm.request, 'incompatible schemas') ??
              (res.error !== undefined ? `cannot read the server's response: ${res.error}` : undefined) ??
              (errs.error !== undefined ? `cannot read the server's errors: ${errs.error}` : undefined));
      return { response: res.resolver, errors: errs.resolver, incompatible: problem };
    });
  }
}

/** Why a message of different stream kinds on the two sides cannot be called (FAILED_PRECONDITION). */
function streamMismatch(client: string | undefined, server: string | undefined): string {
  const kind = (k: string | undefined): string => (k === undefined ? 'not a stream' : `a ${k} stream`);
  return `different stream kinds: ${kind(client)} on the client, ${kind(server)} on the server`;
}

/** `undefined` when `reader` can read what `writer` wrote, else `what: why`. */
function check(reader: avro.Type, writer: avro.Type, what: string): string | undefined {
  const r = tryResolve(reader, writer);
  return r.error === undefined ? undefined : `${what}: ${r.error}`;
}

function tryResolve(reader: avro.Type, writer: avro.Type): { resolver?: avro.Resolver; error?: string } {
  try {
    return { resolver: reader.createResolver(writer) };
  } catch (err) {
    return { error: explain(reader, writer, err, '') };
  }
}

/**
 * Why `reader` cannot read `writer`, naming the innermost record field where they part. avsc's own
 * messages name the types ('cannot read "int" as "string"'), but some mismatches (a record where the
 * peer has a string) throw a bare TypeError that names nothing.
 */
function explain(reader: avro.Type, writer: avro.Type, err: unknown, path: string): string {
  if (isRecord(reader) && isRecord(writer)) {
    for (const rf of reader.fields) {
      const wf = writer.fields.find((f) => f.name === rf.name || rf.aliases.includes(f.name));
      if (wf === undefined) continue;
      try {
        rf.type.createResolver(wf.type);
      } catch (inner) {
        return explain(rf.type, wf.type, inner, `${path}.${rf.name}`);
      }
    }
  }
  const what = err instanceof TypeError || !(err instanceof Error) ? `cannot read ${label(writer)} as ${label(reader)}` : err.message;
  return path === '' ? what : `field ${path.slice(1)}: ${what}`;
}

function isRecord(type: avro.Type): type is avro.types.RecordType {
  return type.typeName === 'record' || type.typeName === 'error';
}

function label(type: avro.Type): string {
  return `"${type.name ?? type.typeName}"`;
}
