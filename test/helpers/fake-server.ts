/**
 * Test helper: a raw TCP server that passes for an avrpc server just long enough: it decodes the
 * client's frames with the real decoder and answers any HELLO with the SPEC.md WELCOME vector bytes
 * (valid for every client of protocol/echo.avdl). What it does with requests is up to the test, which
 * makes it the base of the fault servers (silence, resets, garbage) and of the backpressure tests.
 */
import type { Socket } from 'node:net';
import { FrameDecoder } from '../../src/framing/frame-decoder.js';
import { FrameType } from '../../src/framing/frame.js';
import { rawServer, type RawServer } from './echo-fixture.js';
import { namedVectors } from './spec-vectors.js';

/** What the fake server calls for each frame after the handshake. */
export type FakeFrameHandler = (socket: Socket, type: number, flags: number, id: number, body: Buffer) => void;

/** Options of {@link fakeServer}. */
export interface FakeServerOptions {
  /** Called for each frame other than HELLO. */
  onFrame?: FakeFrameHandler;
  /** Called once the WELCOME went out. */
  onReady?: (socket: Socket) => void;
  /** Answer PINGs with PONG (a live peer). Default false: PINGs go unanswered. */
  answerPings?: boolean;
}

/** Starts a fake server on 127.0.0.1:0. */
export function fakeServer(options: FakeServerOptions = {}): Promise<RawServer> {
  const welcome = namedVectors().welcome;
  return rawServer((socket) => {
    const decoder = new FrameDecoder({ maxFrameBytes: 64 * 1024 * 1024, expectPreface: true }, (type, flags, id, body) => {
      if (type === FrameType.HELLO) {
        socket.write(welcome);
        options.onReady?.(socket);
      } else if (type === FrameType.PING && options.answerPings === true) {
        const pong = Buffer.alloc(10);
        pong[4] = FrameType.PONG;
        pong.writeUInt32BE(id, 6);
        socket.write(pong);
        options.onFrame?.(socket, type, flags, id, body);
      } else {
        options.onFrame?.(socket, type, flags, id, body);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch {
        socket.destroy();
      }
    });
  });
}
