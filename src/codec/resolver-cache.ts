import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { PeerCodec } from './peer-codec.js';
import { Protocol } from './protocol.js';

/**
 * Peer protocols and their resolvers, keyed by fingerprint, so a reconnect or a second connection to a
 * peer of a known version neither re-parses its protocol nor rebuilds resolvers. Bounded (LRU, at most
 * `maxEntries` peer protocols and as many resolutions), so peers with ever new protocols cannot grow it.
 */
export class ResolverCache {
  private readonly protocols: LRUCache<string, Protocol>;
  private readonly codecs: LRUCache<string, PeerCodec>;

  constructor(
    private readonly local: Protocol,
    maxEntries = 64,
  ) {
    this.protocols = new LRUCache({ max: maxEntries });
    this.codecs = new LRUCache({ max: maxEntries });
  }

  /** The peer protocol with this fingerprint (hex), if it was seen before (our own always is). */
  protocol(id: string): Protocol | undefined {
    return id === this.local.id ? this.local : this.protocols.get(id);
  }

  /**
   * Finds or parses a peer protocol from its handshake text. Looked up by fingerprint first, so a
   * peer that sends its text on every connection is parsed once. Throws INVALID_ARGUMENT on a bad text.
   */
  learn(text: string): Protocol {
    const known = this.protocol(createHash('md5').update(text).digest('hex'));
    if (known !== undefined) return known;
    const parsed = new Protocol(text, this.local.options);
    this.protocols.set(parsed.id, parsed);
    return parsed;
  }

  /** The resolution between the local protocol and `remote`, built once per fingerprint. */
  codec(remote: Protocol): PeerCodec {
    let codec = this.codecs.get(remote.id);
    if (codec === undefined) {
      codec = new PeerCodec(this.local, remote);
      this.codecs.set(remote.id, codec);
    }
    return codec;
  }
}
