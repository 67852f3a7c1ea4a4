/**
 * A connection's lifecycle, shared by both sides: one state string, moved only by {@link transition}
 * along a table of legal moves, each move reported with the state it left. Whoever waits for the end
 * asks {@link closed}. The data a state needs lives with the owner's state objects, not here.
 */
export class Lifecycle<S extends string> {
  private current: S;
  private readonly waiters: Array<() => void> = [];

  constructor(
    initial: S,
    /** Legal moves: each state with the states it may move to. */
    private readonly legal: Readonly<Record<S, readonly S[]>>,
    /** The final state: reaching it releases {@link closed}. */
    private readonly last: S,
    /** Told of every move, after it happened. */
    private readonly onTransition: (prev: S, next: S) => void = () => {},
    /** Names the owner in the error an illegal move throws. */
    private readonly owner = 'connection',
  ) {
    this.current = initial;
  }

  /** The current state. */
  get state(): S {
    return this.current;
  }

  /** True when the state is one of `states`. */
  is(...states: S[]): boolean {
    return states.includes(this.current);
  }

  /** Moves to `next`; throws on a move the table does not allow (a bug, never the peer's doing). */
  transition(next: S): void {
    const prev = this.current;
    if (!this.legal[prev].includes(next)) throw new Error(`${this.owner}: illegal transition ${prev} -> ${next}`);
    this.current = next;
    if (next === this.last) for (const w of this.waiters.splice(0)) w();
    this.onTransition(prev, next);
  }

  /** Moves to `next` unless already there; returns whether it moved. */
  moveTo(next: S): boolean {
    if (this.current === next) return false;
    this.transition(next);
    return true;
  }

  /** Resolves once the final state is reached (at once if it was). */
  closed(): Promise<void> {
    if (this.current === this.last) return Promise.resolve();
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}
