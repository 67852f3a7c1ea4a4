import { LRUCache } from 'lru-cache';
import { PeerCodec } from './peer-codec.js';
import { Protocol } from './protocol.js';

/**
 * Peer protocols and their resolvers, keyed by fingerprint, so a reconnect or a second connection to a
 * peer of a known version neither re-parses its protocol nor rebuilds resolvers. Bounded (LRU).
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
    this.protocols.set(local.id, local);
  }

  /** The peer protocol with this fingerprint (hex), if it was seen before. */
  protocol(id: string): Protocol | undefined {
    return this.protocols.get(id);
  }

  /** Parses (or finds) a peer protocol from its handshake text; the caller checked its fingerprint. */
  learn(text: string): Protocol {
    const parsed = new Protocol(text, this.local.options);
    const known = this.protocols.get(parsed.id);
    if (known !== undefined) return known;
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
