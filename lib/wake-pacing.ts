/**
 * Pacing the wakes of many waiters over loop turns. When one event (a release, a signalled fence) lets many
 * waiters of this thread proceed, each woken waiter runs the rest of its lock (an addon call, its caller's
 * work) in the microtasks that follow. Woken all at once, they make one long loop turn, and everything else
 * on the loop (timers, I/O, other streams' frames) waits for all of them. So a wake resolves at most
 * WAKE_BATCH waiters at once and hands the rest to laterTurn(), a batch per loop turn.
 * @internal
 */

/** How many waiters of this thread one wake resolves at once (the rest a batch per loop turn). */
export const WAKE_BATCH = 4;

/** A laterTurn() callback is running (the check phase). */
let inLaterTurn = false;

function run<T>(fn: (arg: T) => void, arg: T): void {
  inLaterTurn = true;
  try {
    fn(arg);
  } finally {
    inLaterTurn = false;
  }
}

function hop<T>(fn: (arg: T) => void, arg: T): void {
  setImmediate(run, fn, arg);
}

/**
 * Calls `fn(arg)` on a later loop turn than the current one, so that the loop's timers and I/O run in
 * between. A `setImmediate` queued outside the check phase runs in the check phase of this same turn; so
 * from outside a laterTurn() callback it takes two hops (this turn's check phase, then the next turn's),
 * from inside one a single hop (an immediate queued while immediates run waits for the next turn).
 */
export function laterTurn<T>(fn: (arg: T) => void, arg: T): void {
  if (inLaterTurn) setImmediate(run, fn, arg);
  else setImmediate(hop, fn, arg);
}
