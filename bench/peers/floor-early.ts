/**
 * The tuned raw floor with early writes (bench/peers/floor.ts, `floorPeer(16)`): what avrpc's
 * `earlyWriteFrames` default does to the least a multiplexing echo over `net` costs. Shown beside the
 * floor for comparison; the targets stay against the floor.
 */
import { floorPeer } from './floor.js';
import type { Peer } from './peer.js';

/** The tuned raw floor writing the first 16 frames of a turn at once, as a benchmark peer. */
export const peer: Peer = floorPeer(16);
