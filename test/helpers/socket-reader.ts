import type { Socket } from 'node:net';

/**
 * Reads exact byte counts from a raw socket, for tests that speak the wire protocol by hand.
 * Rejects if the socket closes first or nothing arrives within `timeoutMs` (a hang guard, not a timing check).
 */
export class SocketReader {
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended = false;

  constructor(socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, d]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.waiter?.();
    });
  }

  /** Resolves with exactly `n` bytes. */
  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const started = Date.now();
    while (this.buffered.length < n) {
      if (this.ended) throw new Error(`socket closed after ${this.buffered.length} of ${n} bytes`);
      if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${n} bytes`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Reads one whole frame (header and body). */
  async frame(timeoutMs = 5000): Promise<Buffer> {
    const header = await this.read(10, timeoutMs);
    const body = await this.read(header.readUInt32BE(0), timeoutMs);
    return Buffer.concat([header, body]);
  }
}
