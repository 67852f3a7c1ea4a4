/**
 * Outlier-ejection timing for one endpoint, as a pure function of its history: the first ejection
 * lasts `ejectMs`, each repeat doubles it up to 10x, and every full `ejectMs` the endpoint then
 * spends back in rotation forgives one doubling (as grpc-js outlier detection lowers its ejection
 * multiplier once per interval without an ejection), so an endpoint that recovered for good is
 * not punished at 10x forever for failures long past.
 */

/** The part of an endpoint's state that ejection timing depends on. */
export interface EjectionHistory {
  /** Ejections that still count toward the multiplier (at most {@link MAX_EJECTION_DOUBLINGS}). */
  ejections: number;
  /** When the last ejection ends (or ended), on the `performance.now()` clock; 0 if never ejected. */
  ejectedUntil: number;
}

/** The longest ejection is `ejectMs * 10`; 2^4 = 16 already exceeds that, so more doublings would only slow the decay. */
export const MAX_EJECTION_DOUBLINGS = 4;
const MAX_MULTIPLIER = 10;

/** Ejects an endpoint at `now`: returns its new history and how long this ejection lasts, in ms. */
export function nextEjection(history: EjectionHistory, now: number, ejectMs: number): EjectionHistory & { ms: number } {
  let ejections = history.ejections;
  if (ejections > 0 && ejectMs > 0 && now > history.ejectedUntil) {
    const healthyIntervals = Math.floor((now - history.ejectedUntil) / ejectMs);
    ejections = Math.max(0, ejections - healthyIntervals);
  }
  const ms = ejectMs * Math.min(MAX_MULTIPLIER, 2 ** ejections);
  return { ejections: Math.min(MAX_EJECTION_DOUBLINGS, ejections + 1), ejectedUntil: now + ms, ms };
}
