/**
 * The raw floor with early writes that also encodes and decodes every call's record with avrpc's own
 * codec (bench/peers/floor.ts, `floorPeer(16, codec)`): the client encodes `{ item }` and decodes the
 * Item it gets back, the server decodes the request and encodes its item. Nothing else of an RPC runs
 * (no call table, deadline, metadata or error handling), so it shows what Avro alone costs per call
 * beside the floor. Shown for comparison; no target is set against it.
 */
import { loadProtocol } from '../../src/index.js';
import { repoFile } from '../payload.js';
import { floorPeer, type FloorCodec } from './floor.js';
import type { Peer } from './peer.js';

/** The echo message's types, as avrpc builds them from protocol/echo.avdl. */
async function echoCodec(): Promise<FloorCodec> {
  const echo = (await loadProtocol(repoFile('protocol/echo.avdl'))).message('echo')!;
  return { request: echo.request, response: echo.response };
}

/** The codec floor, as a benchmark peer. */
export const peer: Peer = floorPeer(16, echoCodec);
