/**
 * What a connection tells its owner about the memory a peer makes it hold (partial frames and
 * messages, inflations, answers waiting to be sent). A server passes one per connection, from its
 * server-wide budget (`maxBufferedBytes`); the connection layer only reports, it never decides whom
 * to shed. Without one (a client), nothing is counted.
 */
export interface MemoryAccount {
  /**
   * Asks to hold `bytes` more for new or growing work a peer asked for (a fragmented upload, an
   * inflation, a large partial frame). True: they are charged. False: the server is at its budget,
   * nothing is charged and the caller refuses the work (RESOURCE_EXHAUSTED).
   */
  reserve(bytes: number): boolean;
  /** Charges `bytes` that cannot be refused (an answer already produced). */
  charge(bytes: number): void;
  /**
   * Asks for the first buffer (at most 64 KiB) of a frame spanning reads. The owner decides: a server
   * always grants it to an accepted connection (small calls must not fail at the budget), and to one
   * still in its handshake only within the handshakes' share. False fails the connection.
   */
  frame(bytes: number): boolean;
  /** Gives back `bytes` charged or reserved before. */
  credit(bytes: number): void;
}

/** The message a refusal by the budget carries. */
export function budgetExhausted(what: string): string {
  return `server memory budget exhausted (maxBufferedBytes): ${what} refused`;
}
