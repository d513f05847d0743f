/**
 * The lockup watchdog of the lock core. A context created with maxHoldMs may not keep a hold longer than
 * that: past the deadline the hold's context is "forced": every hold it has is removed, its waiters proceed,
 * the process-wide force hook runs in the forcing thread (so the sync layer can take the holder's CPU mapping
 * away), and the holder's thread runs the context's onForced callbacks.
 *
 * Who forces: (1) a waiter, in any thread, whose wait reaches a holder's deadline (waits are capped at the
 * earliest holder deadline); (2) the holder's own thread, from a timer armed at the earliest deadline of its
 * holds, so a forgotten lock is forced even if nobody waits. The timer is unref()'d unless this thread has
 * a lock() blocked (then the process is kept alive anyway by the wait's keep-alive timer), so a forgotten lock
 * never keeps a process alive by itself.
 * @internal
 */
import { contextState, type AcquireContext } from './acquire-context';
import { forcedChannel } from './lock-channels';
import { monoNow, type ForcedRelease, type LockStore } from './lock-store';
import { debug } from './table';
import { timerDelay } from '../deadline-timer';
import * as wt from 'node:worker_threads';
import { setInterval as keepAliveInterval } from 'node:timers';

/** Process-wide (per thread) hook run by the forcing thread: `tags` of the removed holds, forced `ctxId`. */
export type ForceHook = (tags: bigint[], ctxId: number) => void;

let forceHook: ForceHook | undefined;

/**
 * Sets the hook the forcing thread calls with the (non-zero) tags of the holds it removed and the forced
 * context id. The sync layer stores in each tag what it needs to revoke the holder's access (e.g. the
 * address of the holder's CPU mapping, to replace it). Set it in every thread that may force. Pass
 * undefined to remove it. Errors thrown by the hook are reported as a process warning.
 */
export function setForceHook(hook: ForceHook | undefined): void {
  forceHook = hook;
}

/**
 * The contexts of this thread with a hold to watch. An array with each context's index in its state, not a
 * Set: a Set hashes every fresh context object once, which cost as much as the rest of an uncontended lock.
 */
const watched: AcquireContext[] = [];
let timer: NodeJS.Timeout | undefined;
let timerAt = Infinity;
let blocked = 0;
let keepAlive: NodeJS.Timeout | undefined;

/** Called when `ctx` (with maxHoldMs) takes a hold whose deadline is `deadline`: arms the timer if earlier. */
export function watchHold(ctx: AcquireContext, deadline: number): void {
  const s = contextState(ctx);
  if (s.watchIndex < 0) s.watchIndex = watched.push(ctx) - 1;
  if (deadline < timerAt) arm(deadline);
}

/**
 * Called when `ctx` ends (fini): it holds nothing, so nothing to watch. The timer stays armed: it is cheap to
 * let it fire once with nothing to do, and re-arming on every lock would cost a timer per lock.
 */
export function unwatch(ctx: AcquireContext): void {
  const i = contextState(ctx).watchIndex;
  if (i < 0) return;
  contextState(ctx).watchIndex = -1;
  const last = watched.pop() as AcquireContext;
  if (last !== ctx) {
    watched[i] = last;
    contextState(last).watchIndex = i;
  }
}

function arm(at: number): void {
  if (timer !== undefined) clearTimeout(timer);
  timerAt = at;
  // +1: setTimeout may fire up to 1 ms early; the check uses `<=`. Deadlines are on the shared monotonic clock.
  // Clamped to what a Node timer holds: an early fire finds nothing due and re-arms.
  timer = setTimeout(onTimer, timerDelay(at - monoNow() + 1));
  if (blocked === 0) timer.unref();
}

function onTimer(): void {
  timer = undefined;
  timerAt = Infinity;
  const now = monoNow();
  let next = Infinity;
  // Backwards: unwatch() moves the last context into the freed index, which this loop has already seen.
  for (let i = watched.length - 1; i >= 0; i--) {
    const ctx = watched[i];
    if (ctx === undefined) continue; // a callback below unwatched several
    if (contextState(ctx).slot < 0) {
      unwatch(ctx);
      continue;
    }
    if (ctx.forced) {
      unwatch(ctx);
      noticeForced(ctx);
      continue;
    }
    const d = contextState(ctx).store.earliestDeadline(contextState(ctx).slot);
    if (d === Infinity) {
      unwatch(ctx);
    } else if (d <= now) {
      forceContext(contextState(ctx).store, contextState(ctx).slot, now);
      unwatch(ctx);
      noticeForced(ctx);
    } else if (d < next) {
      next = d;
    }
  }
  if (next < Infinity) arm(next);
}

/**
 * Forces context `c` off its locks if one of its holds is past its deadline at `now` (re-checked under the
 * table lock: the holder may have released meanwhile). Runs the force hook and publishes the channel.
 * Returns true if this call forced it.
 */
export function forceContext(store: LockStore, c: number, now: number): boolean {
  const res: ForcedRelease | null = store.forceIfExpired(c, now);
  if (res === null) return false;
  debug('forced context %d "%s" off %d lock(s) (maxHoldMs exceeded)', res.ctxId, res.ctxName, res.keys.length);
  if (forceHook !== undefined) {
    try {
      forceHook(res.tags, res.ctxId);
    } catch (err) {
      process.emitWarning(`dmabuf-sync force hook threw: ${String(err)}`, 'DmabufSyncWarning');
    }
  }
  if (forcedChannel.hasSubscribers) forcedChannel.publish({ ...res, byThreadId: wt.threadId });
  // Forced a context of this very thread (e.g. a waiter forcing a holder of the same thread): run its
  // onForced callbacks now rather than at its timer.
  for (const ctx of watched) {
    if (contextState(ctx).slot === c) {
      noticeForced(ctx);
      break;
    }
  }
  return true;
}

/** Runs `ctx`'s onForced callbacks once, in this (the holder's) thread. */
export function noticeForced(ctx: AcquireContext): void {
  const s = contextState(ctx);
  if (s.forcedNoticed) return;
  s.forcedNoticed = true;
  unwatch(ctx);
  for (const cb of s.forcedCallbacks ?? []) {
    try {
      cb(ctx);
    } catch (err) {
      process.emitWarning(`dmabuf-sync onForced callback threw: ${String(err)}`, 'DmabufSyncWarning');
    }
  }
}

function noop(): void {}

/**
 * Counts this thread's blocked lock() calls. A pending Atomics.waitAsync does not keep Node alive, so while
 * any lock() waits a ref'd keep-alive interval does (and the watchdog timer is ref'd too).
 */
export function waiterBlocked(delta: 1 | -1): void {
  blocked += delta;
  if (delta === 1 && blocked === 1) {
    // One interval for the thread's life, ref'ed while someone waits: a hand-off between two tasks blocks
    // and unblocks once per lock, and creating and clearing a timer each time cost a tenth of it.
    if (keepAlive === undefined) keepAlive = keepAliveInterval(noop, 1 << 30); // node:timers: never a test's fake
    else keepAlive.ref();
    timer?.ref();
  } else if (blocked === 0) {
    keepAlive?.unref();
    timer?.unref();
  }
}

/** @internal How many contexts this thread's watchdog tracks (tests: finished contexts must not linger). */
export function watchedCount(): number {
  return watched.length;
}
