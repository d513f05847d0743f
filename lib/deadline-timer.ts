/**
 * A timer for an absolute deadline. Node's timers hold at most 2^31-1 ms (~24.8 days): a longer delay
 * prints a TimeoutOverflowWarning and fires after 1 ms, which would turn a caller's generous `timeoutMs`
 * into an immediate ETIMEDOUT. This timer waits in steps of at most that bound and fires only once the
 * deadline has passed.
 */

/** The longest delay a Node timer holds. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** @internal The delay to pass to setTimeout for something due in `ms` milliseconds (never overflows). */
export function timerDelay(ms: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(0, ms));
}

/**
 * @internal Calls `onDue` once `now()` reaches `deadline` (Infinity: never). Returns the function that
 * cancels it. `now` is the clock the deadline is on (Date.now by default).
 */
export function setDeadlineTimer(deadline: number, onDue: () => void, now: () => number = Date.now): () => void {
  if (deadline === Infinity) return noop;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const left = deadline - now();
    timer = setTimeout(left > MAX_TIMER_MS ? arm : onDue, timerDelay(left));
  };
  arm();
  return () => clearTimeout(timer);
}

function noop(): void {}
