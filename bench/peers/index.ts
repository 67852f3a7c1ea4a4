/**
 * The benchmark's peers, by id. Each lives in its own module (bench/peers/<id>.ts, exporting `peer`),
 * imported only by the process that runs it, so that no process loads another system's library.
 */
import type { Peer } from './peer.js';

/** Every peer's id, in report order: the floors first (lockstep, with early writes, with early writes and Avro), then the structured peers. */
export const peerIds = ['floor', 'floor-early', 'floor-codec', 'moleculer', 'avsc', 'http', 'nats', 'thrift', 'grpc', 'connect'] as const;

/** A peer's id. */
export type PeerId = (typeof peerIds)[number];

/** Whether `id` names a peer (rather than avrpc itself). */
export function isPeerId(id: string): id is PeerId {
  return (peerIds as readonly string[]).includes(id);
}

/** Loads the module of peer `id`. */
export async function loadPeer(id: PeerId): Promise<Peer> {
  return ((await import(`./${id}.js`)) as { peer: Peer }).peer;
}
