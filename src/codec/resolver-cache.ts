import { fingerprintHex } from './fingerprint.js';
import { LRUCache } from 'lru-cache';
import { PeerCodec } from './peer-codec.js';
import { Protocol } from './protocol.js';

/** Default of `resolverCacheBytes`: protocol text the cache holds at most, in UTF-8 bytes (4 MiB). */
export const DEFAULT_RESOLVER_CACHE_BYTES = 4 * 1024 * 1024;

/**
 * Peer protocols and their resolvers, keyed by fingerprint, so a reconnect or a second connection to a
 * peer of a known version neither re-parses its protocol nor rebuilds resolvers. Bounded (LRU, at most
 * `maxEntries` peer protocols and as many resolutions, and at most `maxBytes` of their texts: a parsed
 * protocol takes tens of times its text), so peers with ever new protocols cannot grow it.
 *
 * A protocol is only *admitted* here on purpose ({@link learn}, {@link admit}); {@link parse} builds one
 * for a single connection, so that a server can keep what a stranger sent out of the shared cache
 * until the stranger proved to be a client (authenticated, or a call completed).
 */
export class ResolverCache {
  private readonly protocols: LRUCache<string, Protocol>;
  private readonly codecs: LRUCache<string, PeerCodec>;

  constructor(
    private readonly local: Protocol,
    maxEntries = 64,
    maxBytes = DEFAULT_RESOLVER_CACHE_BYTES,
  ) {
    // A protocol larger than the whole budget is simply not kept.
    const sizeCalculation = (p: Protocol): number => Math.max(1, Buffer.byteLength(p.text));
    this.protocols = new LRUCache({ max: maxEntries, maxSize: maxBytes, sizeCalculation });
    this.codecs = new LRUCache({ max: maxEntries, maxSize: maxBytes, sizeCalculation: (c: PeerCodec) => sizeCalculation(c.remote) });
  }

  /** The peer protocol with this fingerprint (hex), if it was seen before (our own always is). */
  protocol(id: string): Protocol | undefined {
    return id === this.local.id ? this.local : this.protocols.get(id);
  }

  /**
   * Finds or parses a peer protocol from its handshake text, and admits it. Looked up by fingerprint
   * first, so a peer that sends its text on every connection is parsed once. Throws INVALID_ARGUMENT
   * on a bad text, RESOURCE_EXHAUSTED on one beyond `PEER_PROTOCOL_LIMITS`.
   */
  learn(text: string, id = fingerprintHex(text)): Protocol {
    const known = this.protocol(id);
    if (known !== undefined) return known;
    const parsed = this.parse(text);
    this.protocols.set(parsed.id, parsed);
    return parsed;
  }

  /** Parses a peer protocol text without admitting it (see {@link admit}). Throws like {@link learn}. */
  parse(text: string): Protocol {
    return new Protocol(text, this.local.options, true);
  }

  /** Admits a protocol from {@link parse}, with the codec already built for it, if any. */
  admit(remote: Protocol, codec?: PeerCodec): void {
    if (remote === this.local || this.protocols.has(remote.id)) return;
    this.protocols.set(remote.id, remote);
    if (codec !== undefined && codec.remote === remote) this.codecs.set(remote.id, codec);
  }

  /**
   * The resolution between the local protocol and `remote`, built once per fingerprint: kept when
   * `remote` was admitted, built afresh (for one connection) otherwise.
   */
  codec(remote: Protocol): PeerCodec {
    let codec = this.codecs.get(remote.id);
    if (codec === undefined) {
      codec = new PeerCodec(this.local, remote);
      if (this.protocol(remote.id) === remote) this.codecs.set(remote.id, codec);
    }
    return codec;
  }
}
