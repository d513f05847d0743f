/**
 * The ww rules (Documentation/locking/ww-mutex-design.rst, kernel/locking/ww_mutex.h) with shared (read)
 * holders, written once over the store's words: grant or queue a request, re-check a waiter, back off
 * (wait-die / wound-wait), release, force off an expired holder. docs/design.md "Lock core" gives the
 * argument. Every function takes the table lock itself and never awaits; waiting is the caller's.
 * @internal
 */
import {
  CF_FORCED,
  CF_ORDERED,
  CF_USED,
  CF_WOUNDED,
  C_ACQUIRED,
  C_FLAGS,
  C_REVOKED,
  C_STAMP,
  C_TOKEN,
  C_WAITING_ON,
  KIND_WAIT_DIE,
  M_HOLD_HEAD,
  M_KIND,
  M_NHOLDERS,
  M_NWAITERS,
  M_WAIT_HEAD,
  M_WRITE_HELD,
  P_PID,
  P_REVOKE_ACK_AT,
  P_REVOKE_REQ,
  P_REVOKE_TOKEN,
  RF_KICK,
  RF_UNLOCKED,
  RF_WATCH,
  RF_WRITE,
  R_CTX,
  R_FLAGS,
  R_NEXT,
} from './layout';
import { addHold, allocRecord, findHold, freeRecord, initWaitRecord, linkWaiter, removeHold, removeWaiter } from './records';
import { native } from '../kernel/native';
import { monoNow, type Table } from './table';
import {
  clearKick,
  ctxFirstHold,
  ctxFlags,
  ctxForced,
  ctxOrdered,
  ctxPart,
  ctxWaitingOn,
  firstHolder,
  heldAgainst,
  isHeld,
  mutexKey,
  markForced,
  recCtx,
  recCtxNext,
  recDeadline,
  recHold,
  recMutex,
  recNext,
  recTag,
  recUnlockedSeen,
  recWaiting,
  setRecTag,
  takeOwnerDied,
  unreferenced,
} from './ww-view';
import type { Waker } from './waking';

// ---- result codes ----
/** The lock was taken; `lastRecord` is the hold record. */
export const GRANTED = 0;
/** The request is queued; `lastRecord` is the wait record, `waitUntil`/`victim` say how to wait. */
export const WAITING = 1;
/** tryLock only: the lock is not available now. */
export const WOULD_BLOCK = 2;
/** ww back-off: the context must release everything and retry (wait-die: died; wound-wait: wounded). */
export const EDEADLK = -1;
/** The context already holds this mutex. */
export const EALREADY = -2;
/** The context was forced off its locks by the watchdog. */
export const FORCED = -3;
/** unlock of something not held. */
export const NOT_HELD = -4;

/** acquire/poll flags. */
export const F_TRY = 1;
/** Apply the ww kill checks (off for lockSlow, which by contract holds nothing). */
export const F_WW = 2;

/** What the rules need: the table, the waker, and scratch outputs (valid until the next call on this thread). */
export interface Core {
  readonly t: Table;
  readonly waker: Waker;
  lastRecord: number;
  ownerDied: boolean;
  waitUntil: number;
  victim: number;
}

/**
 * Whether context slot c takes its mutexes in ascending key order (CF_ORDERED). Two ordered contexts never
 * wound or kill each other: neither can be waiting, directly or through the queue, on a lock the other needs
 * to get out of its way, since each waits only for keys above all it holds (docs/design.md, "Ordered
 * contexts"). Their stamps are offset to be younger than every unordered context, so in mixed use the
 * ordinary ww rules break every cycle.
 */
function isOrdered(t: Table, c: number): boolean {
  return ctxOrdered(t, c);
}

/** What a forced release removed. */
export interface ForcedRelease {
  ctxId: number;
  ctxName: string;
  keys: bigint[];
  /** Non-zero tags of the removed holds (set with setHoldTag). */
  tags: bigint[];
}

/** Where a request goes in a mutex's wait queue, and what is queued ahead of it there (see queueSpot). */
export interface QueueSpot {
  /** The record after which it is inserted (-1: at the head). */
  prev: number;
  /** A conflicting request (not a watcher) is queued ahead of that place. */
  conflictAhead: boolean;
  /** One of those has a context (so it is older) that may kill or wound this one (not both ordered). */
  olderCtxAhead: boolean;
}
const spot: QueueSpot = { prev: -1, conflictAhead: false, olderCtxAhead: false };

/**
 * The place in the wait queue of the mutex at `moff` of a request of context c (-1: none), as in the
 * kernel's __ww_mutex_add_waiter: contexts in stamp order (oldest first), ctx-less requests FIFO at the
 * tail; a context is put before the first younger context that follows the last older one, so ctx-less
 * waiters between them keep their place. Watchers wait for nothing: nobody is behind them, requests go
 * before trailing ones. The one rule of queue order: acquire queues by it, and recovery's rebuild places by
 * it the waiters whose list it could not trust. Returns a scratch object (valid until the next call).
 */
export function queueSpot(t: Table, moff: number, c: number, write: boolean): QueueSpot {
  const i32 = t.i32;
  const coff = c >= 0 ? t.ctxOff(c) : -1;
  const stamp = c >= 0 ? (t.f64[(coff + C_STAMP) >> 1] as number) : Infinity;
  const ordered = c >= 0 && ((i32[coff + C_FLAGS] as number) & CF_ORDERED) !== 0;
  let last = -1;
  let cand = -1;
  let conflictSeen = false;
  let olderSeen = false;
  let candConflict = false;
  let candOlder = false;
  let prev = -1;
  for (let p = i32[moff + M_WAIT_HEAD] as number; p !== 0; ) {
    const r = p - 1;
    const roff = t.recOff(r);
    if (((i32[roff + R_FLAGS] as number) & RF_WATCH) !== 0) {
      p = i32[roff + R_NEXT] as number;
      continue;
    }
    const ctag = i32[roff + R_CTX] as number;
    if (c >= 0 && ctag !== 0) {
      if ((t.f64[(t.ctxOff(ctag - 1) + C_STAMP) >> 1] as number) < stamp) cand = -1;
      else if (cand < 0) {
        cand = r;
        candConflict = conflictSeen;
        candOlder = olderSeen;
        prev = last;
      }
    }
    if (write || ((i32[roff + R_FLAGS] as number) & RF_WRITE) !== 0) {
      conflictSeen = true;
      if (ctag !== 0 && !(ordered && isOrdered(t, ctag - 1))) olderSeen = true;
    }
    last = r;
    p = i32[roff + R_NEXT] as number;
  }
  if (cand >= 0) {
    spot.prev = prev;
    spot.conflictAhead = candConflict;
    spot.olderCtxAhead = c >= 0 && candOlder;
  } else {
    spot.prev = last;
    spot.conflictAhead = conflictSeen;
    spot.olderCtxAhead = c >= 0 && olderSeen;
  }
  return spot;
}

/** A new request of context c (-1: none) for mutex m. */
export function acquire(k: Core, m: number, c: number, write: boolean, flags: number): number {
  const t = k.t;
  const i32 = t.i32;
  const moff = t.mutexOff(m);
  let coff = -1;
  t.lock();
  if (c >= 0) {
    coff = t.ctxOff(c);
    if (((i32[coff + C_FLAGS] as number) & CF_FORCED) !== 0) {
      t.unlock();
      return FORCED;
    }
    if (i32[moff + M_NHOLDERS] !== 0 && findHold(t, moff, c) >= 0) {
      t.unlock();
      return EALREADY;
    }
  }
  const nwaiters = i32[moff + M_NWAITERS] as number;
  let prevOfInsert = -1; // record after which a waiter would be inserted (-1: at the head)
  let blocked = write ? i32[moff + M_NHOLDERS] !== 0 : i32[moff + M_WRITE_HELD] !== 0;
  let olderCtxAhead = false; // a conflicting queued request with a context is ahead (so it is older)
  if (nwaiters !== 0) {
    const at = queueSpot(t, moff, c, write);
    prevOfInsert = at.prev;
    // A ctx-less request never passes anybody, and ww contexts only get ahead of younger ones.
    if (at.conflictAhead) blocked = true;
    olderCtxAhead = at.olderCtxAhead;
  }
  if (!blocked) {
    const r = allocRecord(t);
    addHold(t, m, moff, r, c, write, monoNow(), t.self);
    k.ownerDied = takeOwnerDied(t, moff);
    // Waiters behind us may now have to die (wait-die) or wound us (wound-wait): let them re-check.
    if (nwaiters !== 0) k.waker.wake(moff);
    t.unlock();
    k.lastRecord = r;
    return GRANTED;
  }
  if ((flags & F_TRY) !== 0) {
    t.unlock();
    return WOULD_BLOCK;
  }
  if (c >= 0 && (flags & F_WW) !== 0 && mustBackOff(k, moff, coff, olderCtxAhead)) {
    t.unlock();
    return EDEADLK;
  }
  // Queue a wait record.
  const w = allocRecord(t);
  initWaitRecord(t, w, m, c, write, false, monoNow(), t.self);
  linkWaiter(t, moff, w, prevOfInsert);
  const woff = t.recOff(w);
  // Wait-die: younger waiters queued behind us must re-check and die if they hold locks (__ww_mutex_die).
  if (i32[woff + R_NEXT] !== 0) k.waker.wake(moff);
  prepareWait(k, moff, c);
  t.unlock();
  k.lastRecord = w;
  return WAITING;
}

/**
 * The ww kill check for a request of the context at `coff` that has to wait on the mutex at `moff`
 * (kernel __ww_mutex_check_kill, with shared holders). Every holder blocks a waiter, directly or through the
 * queued requests ahead of it, so all holders count. Wound-wait also wounds the younger holders here.
 * Returns true if the request must fail with EDEADLK.
 */
function mustBackOff(k: Core, moff: number, coff: number, olderCtxAhead: boolean): boolean {
  const t = k.t;
  const i32 = t.i32;
  const acquired = i32[coff + C_ACQUIRED] as number;
  const stamp = t.f64[(coff + C_STAMP) >> 1] as number;
  const ordered = ((i32[coff + C_FLAGS] as number) & CF_ORDERED) !== 0;
  if (i32[moff + M_KIND] === KIND_WAIT_DIE) {
    if (acquired === 0) return false;
    // Wait-die: a context holding locks dies rather than wait for an older one.
    return olderCtxAhead || holderOlderThan(t, moff, stamp, ordered);
  }
  // Wound-wait: a wounded context holding locks backs off; otherwise wound every younger holder.
  if (acquired > 0 && ((i32[coff + C_FLAGS] as number) & CF_WOUNDED) !== 0) return true;
  for (let p = i32[moff + M_HOLD_HEAD] as number; p !== 0; p = i32[t.recOff(p - 1) + R_NEXT] as number) {
    const ctag = i32[t.recOff(p - 1) + R_CTX] as number;
    if (ctag === 0) continue;
    const hoff = t.ctxOff(ctag - 1);
    if ((t.f64[(hoff + C_STAMP) >> 1] as number) <= stamp) continue;
    const hflags = i32[hoff + C_FLAGS] as number;
    if ((hflags & CF_WOUNDED) !== 0 || (ordered && (hflags & CF_ORDERED) !== 0)) continue;
    Atomics.or(i32, hoff + C_FLAGS, CF_WOUNDED);
    // If the wounded context is itself waiting somewhere, wake it there so that it notices (and dies).
    const on = i32[hoff + C_WAITING_ON] as number;
    if (on !== 0) k.waker.wake(t.mutexOff(on - 1));
  }
  return false;
}

/**
 * Fills waitUntil / victim for a waiter of the mutex at `moff`: the earliest deadline of its
 * holders, and one expired holder (its context) to force, in whatever process (see forceIfExpired).
 */
function prepareWait(k: Core, moff: number, c: number): void {
  const t = k.t;
  let until = Infinity;
  let victim = -1;
  const now = monoNow();
  for (let r = firstHolder(t, moff); r >= 0; r = recNext(t, r)) {
    const d = recDeadline(t, r);
    if (d < until) until = d;
    if (d <= now && victim < 0 && recCtx(t, r) !== c) victim = recCtx(t, r);
  }
  k.waitUntil = until;
  k.victim = victim;
}

/**
 * Calls `kick(r)` for every waiter record r of the mutex at `moff` whose re-check (poll, watch) would not
 * just queue it again: exactly poll's decision, made for the whole queue in one pass. A waiter is ready when
 * nothing conflicting holds the mutex or is queued ahead of it; when its context was forced; when it must
 * back off (wait-die: it holds locks and an older context holds or waits ahead; wound-wait: it was wounded
 * while holding locks) or has a younger holder to wound. A watcher is ready when nothing conflicting holds
 * the mutex (and marked RF_UNLOCKED: its watch is over). lockSlow waiters neither die nor wound, so this may kick them for nothing: they re-check and
 * sleep again.
 */
export function forEachReady(t: Table, moff: number, kick: (r: number) => void): void {
  const i32 = t.i32;
  const f64 = t.f64;
  const held = i32[moff + M_NHOLDERS] !== 0;
  const writeHeld = i32[moff + M_WRITE_HELD] !== 0;
  const waitDie = i32[moff + M_KIND] === KIND_WAIT_DIE;
  // What is queued ahead of the record being looked at (watchers excluded: nobody counts them).
  let anyAhead = false;
  let writerAhead = false;
  let ctxAhead = false;
  let ctxWriterAhead = false;
  // The same, counting only unordered contexts (what an ordered waiter dies for).
  let unorderedAhead = false;
  let unorderedWriterAhead = false;
  for (let p = i32[moff + M_WAIT_HEAD] as number; p !== 0; ) {
    const r = p - 1;
    const roff = t.recOff(r);
    p = i32[roff + R_NEXT] as number;
    const flags = i32[roff + R_FLAGS] as number;
    const write = (flags & RF_WRITE) !== 0;
    if ((flags & RF_WATCH) !== 0) {
      if (write ? !held : !writeHeld) {
        Atomics.or(i32, roff + R_FLAGS, RF_UNLOCKED);
        kick(r);
      }
      continue;
    }
    const ctag = i32[roff + R_CTX] as number;
    let ready = write ? !held && !anyAhead : !writeHeld && !writerAhead;
    if (!ready && ctag !== 0) {
      const coff = t.ctxOff(ctag - 1);
      const cflags = i32[coff + C_FLAGS] as number;
      const acquired = i32[coff + C_ACQUIRED] as number;
      const stamp = f64[(coff + C_STAMP) >> 1] as number;
      const ordered = (cflags & CF_ORDERED) !== 0;
      if ((cflags & CF_FORCED) !== 0) ready = true;
      else if (waitDie) {
        const ahead = ordered ? (write ? unorderedAhead : unorderedWriterAhead) : write ? ctxAhead : ctxWriterAhead;
        ready = acquired > 0 && (ahead || holderOlderThan(t, moff, stamp, ordered));
      } else ready = (acquired > 0 && (cflags & CF_WOUNDED) !== 0) || unwoundedHolderYoungerThan(t, moff, stamp, ordered);
    }
    if (ready) kick(r);
    anyAhead = true;
    if (write) writerAhead = true;
    if (ctag !== 0) {
      ctxAhead = true;
      if (write) ctxWriterAhead = true;
      if (!isOrdered(t, ctag - 1)) {
        unorderedAhead = true;
        if (write) unorderedWriterAhead = true;
      }
    }
  }
}

/**
 * Whether a holder of the mutex at `moff` has a context older than `stamp` (an ordered waiter, `ordered`,
 * does not count ordered holders).
 */
function holderOlderThan(t: Table, moff: number, stamp: number, ordered: boolean): boolean {
  const i32 = t.i32;
  for (let p = i32[moff + M_HOLD_HEAD] as number; p !== 0; p = i32[t.recOff(p - 1) + R_NEXT] as number) {
    const ctag = i32[t.recOff(p - 1) + R_CTX] as number;
    if (ctag === 0 || (ordered && isOrdered(t, ctag - 1))) continue;
    if ((t.f64[(t.ctxOff(ctag - 1) + C_STAMP) >> 1] as number) < stamp) return true;
  }
  return false;
}

/**
 * Whether a holder of the mutex at `moff` has a context younger than `stamp` that is not wounded yet (an
 * ordered waiter, `ordered`, does not wound ordered holders).
 */
function unwoundedHolderYoungerThan(t: Table, moff: number, stamp: number, ordered: boolean): boolean {
  const i32 = t.i32;
  for (let p = i32[moff + M_HOLD_HEAD] as number; p !== 0; p = i32[t.recOff(p - 1) + R_NEXT] as number) {
    const ctag = i32[t.recOff(p - 1) + R_CTX] as number;
    if (ctag === 0) continue;
    const hoff = t.ctxOff(ctag - 1);
    const hflags = i32[hoff + C_FLAGS] as number;
    if (ordered && (hflags & CF_ORDERED) !== 0) continue;
    if ((t.f64[(hoff + C_STAMP) >> 1] as number) > stamp && (hflags & CF_WOUNDED) === 0) return true;
  }
  return false;
}

/** Re-checks waiter w (context c) of mutex m after a wake. */
export function poll(k: Core, w: number, m: number, c: number, write: boolean, flags: number): number {
  const t = k.t;
  const i32 = t.i32;
  const moff = t.mutexOff(m);
  const coff = c >= 0 ? t.ctxOff(c) : -1;
  t.lock();
  if (c >= 0 && ((i32[coff + C_FLAGS] as number) & CF_FORCED) !== 0) {
    removeWaiter(t, moff, w);
    freeRecord(t, w);
    k.waker.wake(moff);
    t.unlock();
    return FORCED;
  }
  let blocked = write ? i32[moff + M_NHOLDERS] !== 0 : i32[moff + M_WRITE_HELD] !== 0;
  let olderCtxAhead = false;
  const ordered = c >= 0 && ((i32[coff + C_FLAGS] as number) & CF_ORDERED) !== 0;
  for (let p = i32[moff + M_WAIT_HEAD] as number; p !== 0 && p - 1 !== w; ) {
    const roff = t.recOff(p - 1);
    const rflags = i32[roff + R_FLAGS] as number;
    if ((rflags & RF_WATCH) === 0 && (write || (rflags & RF_WRITE) !== 0)) {
      blocked = true;
      const ctag = i32[roff + R_CTX] as number;
      if (c >= 0 && ctag !== 0 && !(ordered && isOrdered(t, ctag - 1))) {
        olderCtxAhead = true;
        break;
      }
    }
    p = i32[roff + R_NEXT] as number;
  }
  if (!blocked) {
    removeWaiter(t, moff, w);
    addHold(t, m, moff, w, c, write, monoNow(), t.self);
    k.ownerDied = takeOwnerDied(t, moff);
    // Readers queued behind may be admitted too, and younger waiters may have to die: let them re-check.
    k.waker.wake(moff);
    t.unlock();
    k.lastRecord = w;
    return GRANTED;
  }
  if (c >= 0 && (flags & F_WW) !== 0 && mustBackOff(k, moff, coff, olderCtxAhead)) {
    removeWaiter(t, moff, w);
    freeRecord(t, w);
    // A writer leaving the queue can unblock readers behind it.
    k.waker.wake(moff);
    t.unlock();
    return EDEADLK;
  }
  // Re-checked: a later change kicks it again if it concerns it (waking.ts).
  Atomics.and(i32, t.recOff(w) + R_FLAGS, ~RF_KICK);
  prepareWait(k, moff, c);
  t.unlock();
  return WAITING;
}

/**
 * waitUnlocked: GRANTED if mutex m has no holder conflicting with a `write` (or read) request now; else
 * queues a watch record (lastRecord; woken like a waiter, never granted, ahead of nobody) and returns
 * WAITING. `w` >= 0 re-checks that watch record instead (and removes it when done).
 */
export function watch(k: Core, m: number, write: boolean, w: number): number {
  const t = k.t;
  const moff = t.mutexOff(m);
  t.lock();
  try {
    if (!heldAgainst(t, moff, write) || (w >= 0 && recUnlockedSeen(t, w))) {
      if (w >= 0) {
        removeWaiter(t, moff, w);
        freeRecord(t, w);
      }
      return GRANTED;
    }
    if (w < 0) {
      w = allocRecord(t);
      initWaitRecord(t, w, m, -1, write, true, monoNow(), t.self);
      linkWaiter(t, moff, w, -1);
    }
    // Re-checked: a later change kicks it again if it concerns it (waking.ts).
    clearKick(t, w);
    k.lastRecord = w;
    k.waitUntil = Infinity;
    k.victim = -1;
    return WAITING;
  } finally {
    t.unlock();
  }
}

/** Removes waiter w of mutex m (timeout, abort). */
export function cancel(k: Core, w: number, m: number): void {
  const t = k.t;
  const moff = t.mutexOff(m);
  t.lock();
  if (recWaiting(t, w)) {
    removeWaiter(t, moff, w);
    freeRecord(t, w);
    k.waker.wake(moff);
  }
  t.unlock();
}

/** Releases context c's hold on m, or (c = -1) the ctx-less hold record r. */
export function release(k: Core, m: number, c: number, r: number, maybeFree: (m: number) => void): number {
  const t = k.t;
  const moff = t.mutexOff(m);
  t.lock();
  if (c >= 0) {
    r = isHeld(t, moff) ? findHold(t, moff, c) : -1;
    if (r < 0) {
      const forced = ctxForced(t, c);
      t.unlock();
      return forced ? FORCED : NOT_HELD;
    }
  } else if (!isCtxlessHold(t, r, m)) {
    t.unlock();
    return NOT_HELD;
  }
  removeHold(t, moff, r);
  freeRecord(t, r);
  k.waker.wake(moff);
  if (unreferenced(t, moff)) maybeFree(m);
  t.unlock();
  return GRANTED;
}

/** Whether record r is a ctx-less hold of mutex m (a release by record checks it is one). */
function isCtxlessHold(t: Table, r: number, m: number): boolean {
  return recHold(t, r) && recMutex(t, r) === m && recCtx(t, r) < 0;
}

/** Sets the tag of c's hold on m; false if c does not hold m. */
export function setHoldTag(k: Core, m: number, c: number, tag: bigint): boolean {
  const t = k.t;
  t.lock();
  const r = findHold(t, t.mutexOff(m), c);
  if (r >= 0) setRecTag(t, r, BigInt.asIntN(64, tag));
  t.unlock();
  return r >= 0;
}

/** Whether context c holds mutex m. */
export function holds(k: Core, m: number, c: number): boolean {
  const t = k.t;
  const moff = t.mutexOff(m);
  if (Atomics.load(t.i32, moff + M_NHOLDERS) === 0) return false;
  t.lock();
  const r = findHold(t, moff, c);
  t.unlock();
  return r >= 0;
}

/** The earliest deadline (monotonic ms) of context c's holds, Infinity if none. */
export function earliestDeadline(k: Core, c: number): number {
  const t = k.t;
  let d = Infinity;
  t.lock();
  for (let r = ctxFirstHold(t, c); r >= 0; r = recCtxNext(t, r)) {
    const x = recDeadline(t, r);
    if (x < d) d = x;
  }
  t.unlock();
  return d;
}

/**
 * The revocation token of context c's CPU views, assigned on first use; 0n if c is forced. Taken under the
 * table lock, so a forcer either sees the token (and has it revoked before forcing) or c sees CF_FORCED.
 */
export function viewToken(k: Core, c: number): bigint {
  const t = k.t;
  const off = t.ctxOff(c);
  t.lock();
  try {
    if (ctxForced(t, c)) return 0n;
    let token = t.i64[(off + C_TOKEN) >> 1] as bigint;
    if (token === 0n) {
      token = native.newRevocationToken();
      t.i64[(off + C_TOKEN) >> 1] = token;
    }
    return token;
  } finally {
    t.unlock();
  }
}

/**
 * Asks the revoker thread of participant `part` (another process) to revoke `token` and acknowledge into
 * the C_REVOKED field of the context at `coff`. A seqlock on P_REVOKE_REQ (odd while written); the table
 * lock makes the poster unique. Called with the table locked.
 */
function postRevocation(t: Table, part: number, token: bigint, coff: number): void {
  const i32 = t.i32;
  const poff = t.partOff(part);
  let v = Atomics.load(i32, poff + P_REVOKE_REQ);
  if ((v & 1) !== 0) v++; // a poster died mid-request: its half-written request is void
  Atomics.store(i32, poff + P_REVOKE_REQ, v + 1);
  Atomics.store(t.i64, (poff + P_REVOKE_TOKEN) >> 1, token);
  Atomics.store(i32, poff + P_REVOKE_ACK_AT, coff + C_REVOKED);
  Atomics.store(i32, poff + P_REVOKE_REQ, v + 2);
  native.futexWake(t.buffer, poff + P_REVOKE_REQ, 1);
}

/**
 * Forces context c off all its locks if one of its holds is past its deadline at monotonic `now` (Infinity:
 * unconditionally): marks it forced, removes every hold, wakes those mutexes and the one it may wait on.
 *
 * Nobody may get a buffer while its forced holder can still write into it. A holder of this process has its
 * CPU views replaced by the caller's force hook (the tags of its holds are their addresses) before anyone
 * else runs. A holder in another process may have its event loop blocked: its process's revoker thread
 * (native) revokes the views handed out under the context's token, and only once it acknowledged (C_REVOKED
 * equals C_TOKEN) is the holder forced; until then this returns null and the waiter asks again. A stopped
 * process never acknowledges, so its waiters time out rather than get an unsafe grant.
 */
export function forceIfExpired(k: Core, c: number, now: number, ctxName: (c: number) => string, maybeFree: (m: number) => void): ForcedRelease | null {
  const t = k.t;
  const i32 = t.i32;
  if (!Number.isInteger(c) || c < 0 || c >= t.nCtx) return null;
  const coff = t.ctxOff(c);
  t.lock();
  try {
    const flags = ctxFlags(t, c);
    if ((flags & CF_USED) === 0 || (flags & CF_FORCED) !== 0) return null;
    const part = ctxPart(t, c);
    const foreign = i32[t.partOff(part) + P_PID] !== process.pid;
    let expired = false;
    for (let r = ctxFirstHold(t, c); r >= 0; r = recCtxNext(t, r)) {
      if (recDeadline(t, r) <= now) {
        expired = true;
        break;
      }
    }
    if (!expired) return null;
    if (foreign) {
      const token = Atomics.load(t.i64, (coff + C_TOKEN) >> 1);
      if (token !== 0n && Atomics.load(t.i64, (coff + C_REVOKED) >> 1) !== token) {
        postRevocation(t, part, token, coff);
        return null;
      }
    }
    markForced(t, c);
    const keys: bigint[] = [];
    const tags: bigint[] = [];
    for (let r = ctxFirstHold(t, c); r >= 0; r = ctxFirstHold(t, c)) {
      const m = recMutex(t, r);
      const moff = t.mutexOff(m);
      keys.push(mutexKey(t, moff));
      // Tags are addresses in the holder's process: only meaningful to a forcer of the same process.
      const tag = recTag(t, r);
      if (tag !== 0n && !foreign) tags.push(tag);
      removeHold(t, moff, r);
      freeRecord(t, r);
      k.waker.wake(moff);
      if (unreferenced(t, moff)) maybeFree(m);
    }
    // If the forced context is waiting for another lock, wake it there so that it fails with ETIMEDOUT.
    const on = ctxWaitingOn(t, c);
    if (on >= 0) k.waker.wake(t.mutexOff(on));
    return { ctxId: c, ctxName: ctxName(c), keys, tags };
  } finally {
    t.unlock();
  }
}
