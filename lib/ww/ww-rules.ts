/**
 * The ww rules (Documentation/locking/ww-mutex-design.rst, kernel/locking/ww_mutex.h) with shared (read)
 * holders, written once over the accessors of ww-view.ts: one stamp comparison (ctxLess, and outranks with
 * the ordered-context exemption), one summary of what is queued ahead of a request, one pure decision
 * (verdict) that acquire, poll and forEachReady all ask, and the wound as a separate act (woundHolders);
 * queue order in one place (queueSpot); release, force off an expired holder. docs/design.md "Lock core"
 * gives the argument. Every operation is one critical section (Table.critical: released on every exit, a throw included) and
 * never awaits; waiting is the caller's.
 * @internal
 */
import { CF_FORCED, CF_ORDERED, CF_USED, CF_WOUNDED } from './layout';
import { addHold, allocRecord, findHold, freeRecord, initWaitRecord, linkWaiter, removeHold, removeWaiter } from './records';
import { ctxToken, isForeign, revocationPending } from './revocation';
import { monoNow, type Table } from './table';
import {
  clearKick,
  cohortPassesOver,
  countCohortPass,
  ctxAcquired,
  ctxFirstHold,
  ctxFlags,
  ctxForced,
  ctxOrdered,
  ctxPart,
  ctxStamp,
  ctxWaitingOn,
  firstHolder,
  firstWaiter,
  hasWaiters,
  heldAgainst,
  isHeld,
  isHandedHold,
  isHeldNow,
  isWaitDie,
  mutexKey,
  ownerDiedPending,
  markForced,
  markUnlockedSeen,
  markWounded,
  recCtx,
  recCtxNext,
  recDeadline,
  recHold,
  recMutex,
  recNext,
  recTag,
  recUnlockedSeen,
  recWaiting,
  recWatch,
  recWrite,
  setRecTag,
  specialWaiters,
  recPart,
  lastWaiter,
  takeOwnerDied,
  unreferenced,
} from './ww-view';
import { HANDED, HANDED_OWNER_DIED, type Waker } from './waking';

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
  /** The monotonic time at which the last WAITING result was decided (a waiter's nap is measured from it). */
  now: number;
}

/** What a forced release removed. */
export interface ForcedRelease {
  ctxId: number;
  ctxName: string;
  keys: bigint[];
  /** Non-zero tags of the removed holds (set with setHoldTag). */
  tags: bigint[];
}

// ---- the one stamp comparison ----

/**
 * Whether context a is older than context b (smaller stamp): it comes first in a wait queue. Ordered
 * contexts' stamps are offset to be younger than every unordered one (layout.ts ORDERED_STAMP), so this
 * one comparison also orders mixed use. Kernel __ww_ctx_less (with the arguments the other way round).
 */
function ctxLess(t: Table, a: number, b: number): boolean {
  return ctxStamp(t, a) < ctxStamp(t, b);
}

/**
 * Whether a context of stamp `aStamp` (ordered: `aOrdered`) may kill (wait-die) or wound (wound-wait) one of
 * stamp `bStamp` (`bOrdered`): it is older, and they are not both ordered. Two ordered contexts never wound
 * or kill each other: neither can be waiting, directly or through the queue, on a lock the other needs to
 * get out of its way, since each waits only for keys above all it holds (docs/design.md, "Ordered
 * contexts"). On values the callers read once per walk over a mutex's holders.
 */
function outranks(aStamp: number, aOrdered: boolean, bStamp: number, bOrdered: boolean): boolean {
  return aStamp < bStamp && !(aOrdered && bOrdered);
}

// ---- what is queued ahead of a request: one summary ----

// Bits of the summary of the requests queued ahead of a place in a wait queue (watchers never count). Each
// kind comes in a pair: any request of the kind, and a write request of it (the next bit), so that the
// bits a request conflicts with are `kind` for a writer and `kind << 1` for a reader.
const A_ANY = 1; // any request
const A_CTX = 4; // a request with a context: older than any context behind it, by queue order
const A_UNORDERED = 16; // a request with an unordered context: what an ordered context dies for

/** The summary `ahead` with request record r (not a watcher) added. */
function aheadWith(t: Table, ahead: number, r: number): number {
  const rc = recCtx(t, r);
  let kinds = A_ANY;
  if (rc >= 0) kinds |= ctxOrdered(t, rc) ? A_CTX : A_CTX | A_UNORDERED;
  return ahead | (recWrite(t, r) ? kinds | (kinds << 1) : kinds);
}

/**
 * The bits of a summary that verdict() reads for a `write` (or read) request: once a summary has them all,
 * more requests ahead cannot change the verdict (poll stops walking the queue there).
 */
function decidingBits(write: boolean): number {
  const kinds = A_ANY | A_CTX | A_UNORDERED;
  return write ? kinds : kinds << 1;
}

/** Whether a conflicting request is in the summary `ahead` of a `write` (or read) request. */
function conflictAhead(ahead: number, write: boolean): boolean {
  return (ahead & (write ? A_ANY : A_ANY << 1)) !== 0;
}

/**
 * Whether the summary `ahead` of a request of context c has a conflicting request of a context that
 * outranks c. Every context queued ahead of c is older (queue order), so this is outranks() with the
 * ordered exemption: an ordered c counts only unordered contexts.
 */
function rivalAhead(ahead: number, ordered: boolean, write: boolean): boolean {
  const kind = ordered ? A_UNORDERED : A_CTX;
  return (ahead & (write ? kind : kind << 1)) !== 0;
}

// ---- the decision ----

/** verdict(): the request may take the lock now. */
const V_GRANT = 0;
/** verdict(): the request waits (and a waiter is left asleep: nothing to do for it). */
const V_WAIT = 1;
/** verdict(): the request waits, after wounding the younger holders (woundHolders); wound-wait only. */
const V_WOUND = 2;
/** verdict(): the context must back off (EDEADLK): wait-die died, or wound-wait was wounded. */
const V_BACKOFF = 3;
/** verdict(): the context was forced off its locks by the watchdog. */
const V_FORCED = 4;

/**
 * The one decision of the ww rules for a request of context c (-1: none) in mode `write` on the mutex at
 * `ms.moff` (summarizeMutex), with `ahead` the summary of the requests queued ahead of its place; `ww`: the ww checks apply
 * (lock(); not lockSlow or tryLock). Pure: it reads the table, changes nothing. acquire (a new request),
 * poll (a waiter's re-check) and forEachReady (which waiters to kick) all ask it, so a waiter is kicked
 * exactly when its re-check would do something (a verdict other than V_WAIT).
 *
 * A request is granted iff no holder conflicts with it and no conflicting request is queued ahead. Else,
 * as the kernel's __ww_mutex_check_kill with shared holders (every holder blocks a waiter, directly or
 * through the requests ahead of it, so all count): wait-die: a context holding locks dies if a holder or a
 * conflicting request ahead outranks it; wound-wait: a wounded context holding locks backs off, and a
 * context that a holder not wounded yet is younger than wounds it (V_WOUND; the wound is woundHolders'
 * act, as the kernel's __ww_mutex_wound is apart from the check).
 */
export function verdict(t: Table, c: number, write: boolean, ahead: number, ww: boolean, ms: MutexSummary): number {
  const flags = c >= 0 ? ctxFlags(t, c) : 0;
  if ((flags & CF_FORCED) !== 0) return V_FORCED;
  if (!(write ? ms.held : ms.writeHeld) && !conflictAhead(ahead, write)) return V_GRANT;
  if (c < 0 || !ww) return V_WAIT;
  const holding = ctxAcquired(t, c) > 0;
  if (ms.waitDie) {
    if (!holding) return V_WAIT;
    const ordered = (flags & CF_ORDERED) !== 0;
    if (rivalAhead(ahead, ordered, write)) return V_BACKOFF;
    holderStamps(t, ms);
    // A holder outranks c: it is older, and not both ordered (outranks(), over the summary). No such
    // holder at all (Infinity) needs no stamp read.
    const oldest = ordered ? ms.oldestUnordered : ms.oldest;
    return oldest !== Infinity && ctxStamp(t, c) > oldest ? V_BACKOFF : V_WAIT;
  }
  if (holding && (flags & CF_WOUNDED) !== 0) return V_BACKOFF;
  holderStamps(t, ms);
  // c outranks a holder not wounded yet: that holder is younger, and not both ordered.
  const youngest = (flags & CF_ORDERED) !== 0 ? ms.youngestUnwoundedUnordered : ms.youngestUnwounded;
  return youngest !== -Infinity && ctxStamp(t, c) < youngest ? V_WOUND : V_WAIT;
}

// ---- what holds the mutex: one summary ----

/**
 * What verdict() compares a request against on the holders' side, read once per operation (forEachReady:
 * once per wake, not once per waiter): whether the mutex is held at all and for write, its class, and the
 * stamps of its holders that the ww checks need (holders without a context never count): the oldest
 * (wait-die: a younger request dies for it) and the youngest not wounded yet (wound-wait: an older request
 * wounds it), each over every holder and over the unordered ones only (what an ordered request compares
 * against: two ordered contexts never outrank each other). outranks() over these four numbers is outranks()
 * over every holder. The stamps are read on first need (holderStamps): a request that is granted or has no
 * context never walks the holders.
 */
export class MutexSummary {
  moff = 0;
  held = false;
  writeHeld = false;
  waitDie = false;
  stampsRead = false;
  oldest = Infinity;
  oldestUnordered = Infinity;
  youngestUnwounded = -Infinity;
  youngestUnwoundedUnordered = -Infinity;
}

/** Fills `ms` with the summary of the mutex at `moff` (its holders' stamps left to holderStamps); returns it. */
export function summarizeMutex(t: Table, moff: number, ms: MutexSummary): MutexSummary {
  ms.moff = moff;
  ms.held = isHeld(t, moff);
  ms.writeHeld = heldAgainst(t, moff, false);
  ms.waitDie = isWaitDie(t, moff);
  ms.stampsRead = false;
  return ms;
}

/** Reads the holders' stamps into `ms` if not read yet. */
function holderStamps(t: Table, ms: MutexSummary): void {
  if (ms.stampsRead) return;
  ms.stampsRead = true;
  ms.oldest = ms.oldestUnordered = Infinity;
  ms.youngestUnwounded = ms.youngestUnwoundedUnordered = -Infinity;
  for (let r = firstHolder(t, ms.moff); r >= 0; r = recNext(t, r)) {
    const h = recCtx(t, r);
    if (h < 0) continue;
    const stamp = ctxStamp(t, h);
    const hf = ctxFlags(t, h);
    const unordered = (hf & CF_ORDERED) === 0;
    if (stamp < ms.oldest) ms.oldest = stamp;
    if (unordered && stamp < ms.oldestUnordered) ms.oldestUnordered = stamp;
    if ((hf & CF_WOUNDED) === 0) {
      if (stamp > ms.youngestUnwounded) ms.youngestUnwounded = stamp;
      if (unordered && stamp > ms.youngestUnwoundedUnordered) ms.youngestUnwoundedUnordered = stamp;
    }
  }
}

/** acquire's and poll's summary (valid within one call). */
const opMutex = new MutexSummary();
/** forEachReady's summary (its own: forEachReady runs inside acquire and poll, after their verdict). */
const readyMutex = new MutexSummary();

/** The first hold, from hold r on along its mutex's list, whose context c outranks and is not wounded yet; -1 if none. */
function woundableHolder(t: Table, r: number, c: number): number {
  const stamp = ctxStamp(t, c);
  const ordered = ctxOrdered(t, c);
  for (; r >= 0; r = recNext(t, r)) {
    const h = recCtx(t, r);
    if (h < 0) continue;
    const hf = ctxFlags(t, h);
    if ((hf & CF_WOUNDED) === 0 && outranks(stamp, ordered, ctxStamp(t, h), (hf & CF_ORDERED) !== 0)) return r;
  }
  return -1;
}

/**
 * The act of a V_WOUND verdict (kernel __ww_mutex_wound): wounds every holder of the mutex at `moff` that
 * context c outranks and wakes each where it waits, so that it notices (and backs off).
 */
function woundHolders(k: Core, moff: number, c: number): void {
  const t = k.t;
  for (let r = woundableHolder(t, firstHolder(t, moff), c); r >= 0; r = woundableHolder(t, recNext(t, r), c)) {
    const h = recCtx(t, r);
    markWounded(t, h);
    kickContextWaiter(k, h);
  }
}

/**
 * Kicks context c's wait record, if it waits: the act that wounds or forces c tells it (its re-check backs
 * off or fails), since forEachReady may stop before it (it walks only as far as a verdict can change).
 */
function kickContextWaiter(k: Core, c: number): void {
  const t = k.t;
  const on = ctxWaitingOn(t, c);
  if (on < 0) return;
  for (let r = firstWaiter(t, t.mutexOff(on)); r >= 0; r = recNext(t, r)) {
    if (recCtx(t, r) === c && !recWatch(t, r)) {
      k.waker.kickWaiter(r);
      return;
    }
  }
}

// ---- queue order ----

/** Where a request goes in a mutex's wait queue, and what is queued ahead of it there (see queueSpot). */
export interface QueueSpot {
  /** The record after which it is inserted (-1: at the head). */
  prev: number;
  /** The summary of the requests queued ahead of that place (verdict's `ahead`). */
  ahead: number;
}
const spot: QueueSpot = { prev: -1, ahead: 0 };

/**
 * The place in the wait queue of the mutex at `moff` of a request of context c (-1: none), as in the
 * kernel's __ww_mutex_add_waiter: contexts in stamp order (oldest first), ctx-less requests FIFO at the
 * tail; a context is put before the first younger context that follows the last older one, so ctx-less
 * waiters between them keep their place. Watchers wait for nothing: nobody is behind them, requests go
 * before trailing ones. The one rule of queue order: acquire queues by it, and recovery's rebuild places by
 * it the waiters whose list it could not trust. Returns a scratch object (valid until the next call).
 *
 * A write request (`write` true; acquire passes it, recovery does not) takes a shortcut where the walk's
 * answer is known without it: no watcher and no unordered context is queued (M_NSPECIAL), and the request is
 * ctx-less or of an ordered context younger than the context of the last record. Then its place is the tail
 * (every context queued is older, no watcher trails), and of the summary it gets, the bits verdict reads for
 * such a writer are exact: a request is ahead (A_ANY), no unordered context is (A_UNORDERED).
 */
export function queueSpot(t: Table, moff: number, c: number, write?: boolean): QueueSpot {
  if (write === true && specialWaiters(t, moff) === 0) {
    const tail = lastWaiter(t, moff);
    const tc = recCtx(t, tail);
    if (c < 0 || (ctxOrdered(t, c) && tc >= 0 && ctxLess(t, tc, c))) {
      spot.prev = tail;
      spot.ahead = A_ANY;
      return spot;
    }
  }
  let last = -1;
  let ahead = 0;
  let cand = -1; // the first younger context after the last older one
  let candAhead = 0;
  let candPrev = -1;
  for (let r = firstWaiter(t, moff); r >= 0; r = recNext(t, r)) {
    if (recWatch(t, r)) continue;
    const rc = recCtx(t, r);
    if (c >= 0 && rc >= 0) {
      if (ctxLess(t, rc, c)) cand = -1;
      else if (cand < 0) {
        cand = r;
        candAhead = ahead;
        candPrev = last;
      }
    }
    ahead = aheadWith(t, ahead, r);
    last = r;
  }
  spot.prev = cand >= 0 ? candPrev : last;
  spot.ahead = cand >= 0 ? candAhead : ahead;
  return spot;
}

// ---- the operations ----

/** A new request of context c (-1: none) for mutex m. */
export function acquire(k: Core, m: number, c: number, write: boolean, flags: number): number {
  const t = k.t;
  const moff = t.mutexOff(m);
  // Table.critical(body) inline: a closure per call costs on the hot path.
  t.lock();
  try {
    if (c >= 0 && isHeld(t, moff) && findHold(t, moff, c) >= 0) return EALREADY;
    // A tryLock that a holder blocks needs no place in the queue: only a grant can make it succeed, and a
    // conflicting holder rules that out (verdict's first test), whatever is queued.
    if ((flags & F_TRY) !== 0 && heldAgainst(t, moff, write)) return c >= 0 && ctxForced(t, c) ? FORCED : WOULD_BLOCK;
    const queued = hasWaiters(t, moff);
    let prev = -1; // record after which a waiter would be inserted (-1: at the head)
    let ahead = 0;
    if (queued) {
      const at = queueSpot(t, moff, c, write);
      prev = at.prev;
      ahead = at.ahead;
    }
    const v = verdict(t, c, write, ahead, (flags & (F_WW | F_TRY)) === F_WW, summarizeMutex(t, moff, opMutex));
    if (v === V_FORCED) return FORCED;
    if (v === V_GRANT) {
      const r = allocRecord(t);
      addHold(t, m, moff, r, c, write, monoNow(), t.self);
      k.ownerDied = takeOwnerDied(t, moff);
      // Waiters behind us may now have to die (wait-die) or wound us (wound-wait): let them re-check.
      if (queued) k.waker.wake(moff);
      k.lastRecord = r;
      return GRANTED;
    }
    if ((flags & F_TRY) !== 0) return WOULD_BLOCK;
    if (v === V_BACKOFF) return EDEADLK;
    if (v === V_WOUND) woundHolders(k, moff, c);
    // Queue a wait record. One clock read for the record, the wait's deadlines and the nap (clock reads are
    // a good part of a contended lock).
    const now = monoNow();
    const w = allocRecord(t);
    initWaitRecord(t, w, m, c, write, false, now, t.self);
    linkWaiter(t, moff, w, prev);
    // Wait-die: younger waiters queued behind us must re-check and die if they hold locks (__ww_mutex_die).
    if (recNext(t, w) >= 0) k.waker.wake(moff);
    prepareWait(k, moff, c, now);
    k.lastRecord = w;
    return WAITING;
  } finally {
    t.unlock();
  }
}

/**
 * Fills waitUntil / victim for a waiter of the mutex at `moff`: the earliest deadline of its
 * holders, and one expired holder (its context) to force, in whatever process (see forceIfExpired).
 */
function prepareWait(k: Core, moff: number, c: number, now: number): void {
  const t = k.t;
  let until = Infinity;
  let victim = -1;
  k.now = now;
  for (let r = firstHolder(t, moff); r >= 0; r = recNext(t, r)) {
    const d = recDeadline(t, r);
    if (d < until) until = d;
    if (d <= now && victim < 0 && recCtx(t, r) !== c) victim = recCtx(t, r);
  }
  k.waitUntil = until;
  k.victim = victim;
}

/**
 * Calls `kick(r)` for every waiter record r of the mutex at `moff` whose re-check (poll, watch) would do
 * something: its verdict, from the same summary of what is queued ahead of it that poll builds, is not
 * V_WAIT. One pass over the queue. A watcher is kicked when nothing conflicting holds the mutex (and marked:
 * its watch is over). The one difference with poll: lockSlow waiters run without the ww checks, which this
 * cannot tell from the record, so one may be kicked for a wound it will not deal (it re-checks and sleeps).
 * A context that is wounded or forced is kicked by that act (kickContextWaiter), so this may leave it out.
 *
 * The pass stops at the first queued write request when nothing behind it can get another verdict than
 * V_WAIT: no watcher and no unordered context is queued (M_NSPECIAL), and, for wait-die, no unordered
 * context holds the mutex. Then every request behind has a conflicting request ahead (no grant), and is
 * ctx-less (never wounds or dies) or of an ordered context, which neither wounds (an unordered holder is
 * older, an ordered one exempt) nor dies (only for an unordered holder or request ahead, and there is none).
 * DmabufSync's contexts are all ordered: a release visits the head of the queue, not the whole queue.
 */
export function forEachReady(t: Table, moff: number, kick: (r: number) => void): void {
  let ahead = 0;
  const ms = summarizeMutex(t, moff, readyMutex);
  let stopAt = 0;
  if (specialWaiters(t, moff) === 0) {
    if (ms.waitDie) holderStamps(t, ms);
    if (!ms.waitDie || ms.oldestUnordered === Infinity) stopAt = A_ANY << 1;
  }
  for (let r = firstWaiter(t, moff); r >= 0; ) {
    const next = recNext(t, r);
    if (recWatch(t, r)) {
      if (!heldAgainst(t, moff, recWrite(t, r))) {
        markUnlockedSeen(t, r);
        kick(r);
      }
    } else {
      if (verdict(t, recCtx(t, r), recWrite(t, r), ahead, true, ms) !== V_WAIT) kick(r);
      ahead = aheadWith(t, ahead, r);
      if ((ahead & stopAt) !== 0) return;
    }
    r = next;
  }
}

/** Re-checks waiter w (context c) of mutex m after a wake; `now`: the caller's monotonic time, read just before. */
export function poll(k: Core, w: number, m: number, c: number, write: boolean, flags: number, now: number): number {
  const t = k.t;
  const moff = t.mutexOff(m);
  // Table.critical(body) inline: a closure per call costs on the hot path.
  t.lock();
  try {
    if (!isWaitOf(t, w, m, c)) {
      // A release of this thread handed w the lock (handOff) while it ran (or before it saw it); or, for a
      // context forced since, the forced release freed that hold (and w may be reused: leave it alone).
      if (c >= 0 && ctxForced(t, c)) return FORCED;
      if (!isHandedHold(t, w, m, c)) return NOT_HELD; // cannot happen: reported as EIO
      clearKick(t, w);
      k.ownerDied = takeOwnerDied(t, moff);
      k.lastRecord = w;
      return GRANTED;
    }
    // The summary of what is queued ahead of w, as far as it can still matter.
    const all = decidingBits(write);
    let ahead = 0;
    for (let r = firstWaiter(t, moff); r >= 0 && r !== w && (ahead & all) !== all; r = recNext(t, r)) {
      if (!recWatch(t, r)) ahead = aheadWith(t, ahead, r);
    }
    const v = verdict(t, c, write, ahead, (flags & F_WW) !== 0, summarizeMutex(t, moff, opMutex));
    if (v === V_GRANT) {
      removeWaiter(t, moff, w);
      addHold(t, m, moff, w, c, write, now, t.self);
      k.ownerDied = takeOwnerDied(t, moff);
      // Readers queued behind may be admitted too, and younger waiters may have to die: let them re-check.
      k.waker.wake(moff);
      k.lastRecord = w;
      return GRANTED;
    }
    if (v === V_FORCED || v === V_BACKOFF) {
      removeWaiter(t, moff, w);
      freeRecord(t, w);
      // A writer leaving the queue can unblock readers behind it.
      k.waker.wake(moff);
      return v === V_FORCED ? FORCED : EDEADLK;
    }
    if (v === V_WOUND) woundHolders(k, moff, c);
    // Re-checked: a later change kicks it again if it concerns it (waking.ts).
    clearKick(t, w);
    prepareWait(k, moff, c, now);
    return WAITING;
  } finally {
    t.unlock();
  }
}

/**
 * waitUnlocked: GRANTED if mutex m has no holder conflicting with a `write` (or read) request now; else
 * queues a watch record (lastRecord; woken like a waiter, never granted, ahead of nobody) and returns
 * WAITING. `w` >= 0 re-checks that watch record instead (and removes it when done).
 */
export function watch(k: Core, m: number, write: boolean, w: number): number {
  const t = k.t;
  const moff = t.mutexOff(m);
  return t.critical(() => {
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
  });
}

/** Removes waiter w of mutex m (timeout, abort). */
export function cancel(k: Core, w: number, m: number, c: number): void {
  const t = k.t;
  const moff = t.mutexOff(m);
  t.critical(() => {
    if (recWaiting(t, w)) removeWaiter(t, moff, w);
    else if (isHandedHold(t, w, m, c) && !(c >= 0 && ctxForced(t, c))) {
      // Passed the lock (handOff) before the waiter saw it: the cancelled lock() must not keep it.
      removeHold(t, moff, w);
    } else return;
    freeRecord(t, w);
    k.waker.wake(moff);
  });
}

/** Releases context c's hold on m, or (c = -1) the ctx-less hold record r. */
export function release(k: Core, m: number, c: number, r: number, maybeFree: (m: number) => void): number {
  const t = k.t;
  const moff = t.mutexOff(m);
  // Table.critical(body) inline: a closure per call costs on the hot path.
  t.lock();
  try {
    const h = c >= 0 ? (isHeld(t, moff) ? findHold(t, moff, c) : -1) : isCtxlessHold(t, r, m) ? r : -1;
    if (h < 0) return c >= 0 && ctxForced(t, c) ? FORCED : NOT_HELD;
    removeHold(t, moff, h);
    freeRecord(t, h);
    if (hasWaiters(t, moff)) handOff(k, m, moff);
    k.waker.wake(moff);
    if (unreferenced(t, moff)) maybeFree(m);
    return GRANTED;
  } finally {
    t.unlock();
  }
}

/** How many releases in a row may pass a mutex to their own thread's waiter over the head of its queue. */
const COHORT_BOUND = 8;

/**
 * The hand-offs of a release, inside its critical section (docs/design.md "Direct hand-offs", "Cohort
 * hand-offs", "Hand-offs to another participant"):
 * - the queue's head is ours and a grant would take it now: it is granted here (a direct hand-off), as its
 *   own re-check would once woken;
 * - the head is another participant's (a thread of this or another process): the cohort pass (lock
 *   cohorting, Dice, Marathe and Shavit, PPoPP 2012): our first waiter that a grant would take now, were
 *   nothing queued ahead of it, is granted here: no wake of another thread or process, whose wake-up costs
 *   tens to hundreds of µs. At most COHORT_BOUND passes go over one head (by whichever participants), then
 *   the queue's order rules again: the head is late by at most that many critical sections, never starved.
 *   Every holder and waiter stays in the table, so other processes' ww checks see them as before (the
 *   passed-over waiters are kicked by the wake that follows and re-check against the new holder: an older
 *   context wounds it, a younger one dies for it);
 * - no cohort pass: the lock leaves this participant, and the head, if a grant would take it now, is granted
 *   here and kicked (the kernel's hand-off, MUTEX_FLAG_HANDOFF): its re-check, once woken, only finds the
 *   hold (poll, isHandedHold) instead of deciding again under the table lock, and the mutex would have waited
 *   for its wake-up anyway (every later request queues behind it). Not while an owner-died mark is pending:
 *   that one goes with a grant decided by the waiter itself.
 */
function handOff(k: Core, m: number, moff: number): void {
  const t = k.t;
  // The mutex is free for a moment, between the release and the hand-off: a watcher (waitUnlocked) that it
  // lets through has seen it unlocked, as after a release without a hand-off (else a chain of hand-offs
  // could keep it from ever seeing the mutex free).
  if (specialWaiters(t, moff) > 0) releaseWatchers(k, moff);
  const head = firstRequest(t, moff);
  if (head < 0) return;
  const ms = summarizeMutex(t, moff, opMutex);
  if (recPart(t, head) === t.self) {
    if (verdict(t, recCtx(t, head), recWrite(t, head), 0, false, ms) === V_GRANT) grantHandOff(k, m, moff, head);
    return;
  }
  const passes = cohortPassesOver(t, moff, head);
  if (passes < COHORT_BOUND) {
    for (let r = recNext(t, head); r >= 0; r = recNext(t, r)) {
      if (recWatch(t, r) || recPart(t, r) !== t.self) continue;
      if (verdict(t, recCtx(t, r), recWrite(t, r), 0, false, ms) !== V_GRANT) break;
      grantHandOff(k, m, moff, r);
      countCohortPass(t, moff, head, passes + 1);
      return;
    }
  }
  if (!ownerDiedPending(t, moff) && verdict(t, recCtx(t, head), recWrite(t, head), 0, false, ms) === V_GRANT) {
    grantHandOff(k, m, moff, head);
  }
}

/**
 * Makes wait record r a hold of mutex m for its context and participant, and tells its waiter: asleep in this
 * thread, its wait() resolves granted (Waker.handOff, with the grant's ownerDied), so it needs no re-check
 * under the table lock; running, or in another thread or process, a kick: its doorbell or its poll finds the
 * hold (isHandedHold), and its poll takes the ownerDied.
 */
function grantHandOff(k: Core, m: number, moff: number, r: number): void {
  const t = k.t;
  removeWaiter(t, moff, r);
  addHold(t, m, moff, r, recCtx(t, r), recWrite(t, r), monoNow(), recPart(t, r));
  if (k.waker.isAsleep(r)) k.waker.handOff(r, takeOwnerDied(t, moff) ? HANDED_OWNER_DIED : HANDED);
  else k.waker.kickWaiter(r);
}

/** Marks and kicks every watcher of the mutex at `moff` that nothing conflicting holds it against now. */
function releaseWatchers(k: Core, moff: number): void {
  const t = k.t;
  for (let r = firstWaiter(t, moff); r >= 0; r = recNext(t, r)) {
    if (recWatch(t, r) && !recUnlockedSeen(t, r) && !heldAgainst(t, moff, recWrite(t, r))) {
      markUnlockedSeen(t, r);
      k.waker.kickWaiter(r);
    }
  }
}

/** The first request (not a watcher) in the mutex's wait queue, or -1. */
function firstRequest(t: Table, moff: number): number {
  let r = firstWaiter(t, moff);
  while (r >= 0 && recWatch(t, r)) r = recNext(t, r);
  return r;
}

/** Whether record w is still context c's (-1: a ctx-less) wait record on mutex m (not handed the lock). */
function isWaitOf(t: Table, w: number, m: number, c: number): boolean {
  return recWaiting(t, w) && !recWatch(t, w) && recMutex(t, w) === m && recCtx(t, w) === c;
}

/** Whether record r is a ctx-less hold of mutex m (a release by record checks it is one). */
function isCtxlessHold(t: Table, r: number, m: number): boolean {
  return recHold(t, r) && recMutex(t, r) === m && recCtx(t, r) < 0;
}

/** Sets the tag of c's hold on m (table locked); false if c does not hold m. */
function tagHold(t: Table, m: number, c: number, tag: bigint): boolean {
  const r = findHold(t, t.mutexOff(m), c);
  if (r >= 0) setRecTag(t, r, BigInt.asIntN(64, tag));
  return r >= 0;
}

/** Sets the tag of c's hold on m; false if c does not hold m. */
export function setHoldTag(k: Core, m: number, c: number, tag: bigint): boolean {
  const t = k.t;
  return t.critical(() => tagHold(t, m, c, tag));
}

/** Whether context c holds mutex m. */
export function holds(k: Core, m: number, c: number): boolean {
  const t = k.t;
  const moff = t.mutexOff(m);
  if (!isHeldNow(t, moff)) return false;
  return t.critical(() => findHold(t, moff, c) >= 0);
}

/** The earliest deadline (monotonic ms) of context c's holds, Infinity if none. */
export function earliestDeadline(k: Core, c: number): number {
  const t = k.t;
  return t.critical(() => {
    let d = Infinity;
    for (let r = ctxFirstHold(t, c); r >= 0; r = recCtxNext(t, r)) d = Math.min(d, recDeadline(t, r));
    return d;
  });
}

/**
 * For a CPU view about to be handed out under c's hold on m, in one pass: tags the hold with `tag` (the
 * view's address, what a forcer of this process scratches) and returns c's revocation token (what a forcer
 * of another process has revoked), assigned on first use. 0n, tagging nothing, if c is forced; -1n if c
 * does not hold m. Under the table lock, so a forcer either sees tag and token or c sees CF_FORCED.
 */
export function tagHoldForView(k: Core, m: number, c: number, tag: bigint): bigint {
  const t = k.t;
  return t.critical(() => {
    if (ctxForced(t, c)) return 0n;
    return tagHold(t, m, c, tag) ? ctxToken(t, c) : -1n;
  });
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
  if (!Number.isInteger(c) || c < 0 || c >= t.nCtx) return null;
  return t.critical((): ForcedRelease | null => {
    const flags = ctxFlags(t, c);
    if ((flags & CF_USED) === 0 || (flags & CF_FORCED) !== 0) return null;
    const part = ctxPart(t, c);
    const foreign = isForeign(t, part);
    let expired = false;
    for (let r = ctxFirstHold(t, c); r >= 0; r = recCtxNext(t, r)) {
      if (recDeadline(t, r) <= now) {
        expired = true;
        break;
      }
    }
    if (!expired) return null;
    if (foreign && revocationPending(t, c, part)) return null;
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
    // If the forced context is waiting for another lock, kick it there so that it fails with ETIMEDOUT.
    kickContextWaiter(k, c);
    return { ctxId: c, ctxName: ctxName(c), keys, tags };
  });
}
