/**
 * Accessors over the store's words for the ww rules (ww-rules.ts), as kernel/locking/ww_mutex.h reads its
 * locks through `__ww_waiter_first/next` and `__ww_mutex_owner`: records, mutexes and contexts by index,
 * links as indices with -1 ending a list (the store keeps "index + 1", 0 ending it; layout.ts), flags as
 * booleans. The rules read no layout offset themselves; this file and records.ts (which links and unlinks)
 * are where the layout meets them. Reads only, except the two context marks the rules set (wounded,
 * waiting on). Every function runs inside the table's critical section.
 * @internal
 */
import {
  CF_FORCED,
  CF_ORDERED,
  CF_WOUNDED,
  C_ACQUIRED,
  C_FLAGS,
  C_HOLD_HEAD,
  C_PART,
  C_STAMP,
  C_WAITING_ON,
  KIND_WAIT_DIE,
  M_COHORT_HEAD,
  M_COHORT_PASSES,
  M_HOLD_HEAD,
  M_KEY,
  M_KIND,
  M_NHOLDERS,
  M_NSPECIAL,
  M_NWAITERS,
  M_OWNER_DIED,
  M_REFS,
  M_WAIT_HEAD,
  M_WAIT_TAIL,
  R_PART,
  M_WRITE_HELD,
  RF_KICK,
  RF_REF,
  RF_UNLOCKED,
  RF_WAITER,
  RF_WATCH,
  RF_WRITE,
  R_CTX,
  R_CTX_NEXT,
  R_DEADLINE,
  R_FLAGS,
  R_MUTEX,
  R_NEXT,
  R_TAG,
} from './layout';
import type { Table } from './table';

// ---- records (hold, wait and watch records; r is a record index) ----

/** The record after r in its mutex's holder or waiter list, -1 at the end. */
export function recNext(t: Table, r: number): number {
  return (t.i32[t.recOff(r) + R_NEXT] as number) - 1;
}
/** The next hold of r's context, -1 at the end. */
export function recCtxNext(t: Table, r: number): number {
  return (t.i32[t.recOff(r) + R_CTX_NEXT] as number) - 1;
}
/** The context of record r, -1 for a ctx-less hold or request (or a watcher). */
export function recCtx(t: Table, r: number): number {
  return (t.i32[t.recOff(r) + R_CTX] as number) - 1;
}
/** The mutex slot of record r. */
export function recMutex(t: Table, r: number): number {
  return t.i32[t.recOff(r) + R_MUTEX] as number;
}
/** Whether record r is in write (exclusive) mode. */
export function recWrite(t: Table, r: number): boolean {
  return ((t.i32[t.recOff(r) + R_FLAGS] as number) & RF_WRITE) !== 0;
}
/** Whether record r is a watcher (waitUnlocked): in the wait list, never granted, ahead of nobody. */
export function recWatch(t: Table, r: number): boolean {
  return ((t.i32[t.recOff(r) + R_FLAGS] as number) & RF_WATCH) !== 0;
}
/** Whether record flags `f` are a hold's (in use, neither a wait nor a reference record). */
function holdFlags(f: number): boolean {
  return f !== 0 && (f & (RF_WAITER | RF_REF)) === 0;
}
/** Whether record r is a hold (in use, neither a wait nor a reference record). */
export function recHold(t: Table, r: number): boolean {
  return holdFlags(t.i32[t.recOff(r) + R_FLAGS] as number);
}
/** Whether record r is a wait (or watch) record still queued. */
export function recWaiting(t: Table, r: number): boolean {
  return ((t.i32[t.recOff(r) + R_FLAGS] as number) & RF_WAITER) !== 0;
}
/** Whether watcher r saw its mutex unlocked for its mode since it queued (its watch is over). */
export function recUnlockedSeen(t: Table, r: number): boolean {
  return ((t.i32[t.recOff(r) + R_FLAGS] as number) & RF_UNLOCKED) !== 0;
}
/** Marks watcher r's watch over (RF_UNLOCKED). */
export function markUnlockedSeen(t: Table, r: number): void {
  Atomics.or(t.i32, t.recOff(r) + R_FLAGS, RF_UNLOCKED);
}
/** Clears waiter r's kick: it re-checked (waking.ts). */
export function clearKick(t: Table, r: number): void {
  Atomics.and(t.i32, t.recOff(r) + R_FLAGS, ~RF_KICK);
}
/** The watchdog deadline of hold r (monotonic ms, Infinity for none). */
export function recDeadline(t: Table, r: number): number {
  return t.f64[(t.recOff(r) + R_DEADLINE) >> 1] as number;
}
/** The tag of hold r (0n: none). */
export function recTag(t: Table, r: number): bigint {
  return t.i64[(t.recOff(r) + R_TAG) >> 1] as bigint;
}
/** Sets the tag of hold r. */
export function setRecTag(t: Table, r: number, tag: bigint): void {
  t.i64[(t.recOff(r) + R_TAG) >> 1] = tag;
}

// ---- mutexes (by the word offset of their slot, `moff`, as the rules carry it) ----

/** The first waiter (or watcher) of the mutex, -1 if none. */
export function firstWaiter(t: Table, moff: number): number {
  return (t.i32[moff + M_WAIT_HEAD] as number) - 1;
}
/** The first holder of the mutex, -1 if none. */
export function firstHolder(t: Table, moff: number): number {
  return (t.i32[moff + M_HOLD_HEAD] as number) - 1;
}
/** Whether the mutex has any holder. */
export function isHeld(t: Table, moff: number): boolean {
  return t.i32[moff + M_NHOLDERS] !== 0;
}
/** Whether a holder conflicts with a request of mode `write` (write: any holder; read: a write holder). */
export function heldAgainst(t: Table, moff: number, write: boolean): boolean {
  return (write ? t.i32[moff + M_NHOLDERS] : t.i32[moff + M_WRITE_HELD]) !== 0;
}
/** The mutex's key. */
export function mutexKey(t: Table, moff: number): bigint {
  return t.i64[(moff + M_KEY) >> 1] as bigint;
}
/** Whether anything (waiter or watcher) is queued on the mutex. */
export function hasWaiters(t: Table, moff: number): boolean {
  return t.i32[moff + M_NWAITERS] !== 0;
}
/** The participant (a thread of a process) that made record r. */
export function recPart(t: Table, r: number): number {
  return t.i32[t.recOff(r) + R_PART] as number;
}
/** The last record of the mutex's wait queue, or -1. */
export function lastWaiter(t: Table, moff: number): number {
  return (t.i32[moff + M_WAIT_TAIL] as number) - 1;
}
/** How many watchers and unordered contexts' requests the mutex's queue has (layout.ts M_NSPECIAL). */
export function specialWaiters(t: Table, moff: number): number {
  return t.i32[moff + M_NSPECIAL] as number;
}
/** Whether the mutex's class is wait-die (else wound-wait). */
export function isWaitDie(t: Table, moff: number): boolean {
  return t.i32[moff + M_KIND] === KIND_WAIT_DIE;
}
/** Whether no thread references the mutex slot any more (it may be freed once unused). */
export function unreferenced(t: Table, moff: number): boolean {
  return t.i32[moff + M_REFS] === 0;
}
/** Whether the mutex carries an owner-died mark that the next grant must take (takeOwnerDied). */
export function ownerDiedPending(t: Table, moff: number): boolean {
  return t.i32[moff + M_OWNER_DIED] !== 0;
}
/** Reads and clears the mutex's owner-died mark (at a grant). */
export function takeOwnerDied(t: Table, moff: number): boolean {
  if (t.i32[moff + M_OWNER_DIED] === 0) return false;
  t.i32[moff + M_OWNER_DIED] = 0;
  return true;
}

/**
 * How many cohort passes went over `head`, the first request of the mutex's queue (layout.ts
 * M_COHORT_HEAD/M_COHORT_PASSES). The count is kept per head record: a record reused as a later head may find
 * an earlier head's count, which only allows fewer passes, never more.
 */
export function cohortPassesOver(t: Table, moff: number, head: number): number {
  return t.i32[moff + M_COHORT_HEAD] === head + 1 ? (t.i32[moff + M_COHORT_PASSES] as number) : 0;
}
/** Records that the mutex went to another request over `head`, the `passes`-th time (cohortPassesOver). */
export function countCohortPass(t: Table, moff: number, head: number, passes: number): void {
  t.i32[moff + M_COHORT_HEAD] = head + 1;
  t.i32[moff + M_COHORT_PASSES] = passes;
}
/**
 * The participant of the first waiter of a mutex held by one holder, read without the table lock: who a
 * release by that holder is likely to wake (a hint, -1 for none; records change under it, so it may name
 * anybody, or nobody that still waits).
 */
export function soleHolderNextPart(t: Table, moff: number): number {
  const i32 = t.i32;
  if (Atomics.load(i32, moff + M_NHOLDERS) !== 1) return -1;
  const head = Atomics.load(i32, moff + M_WAIT_HEAD);
  if (head <= 0 || head > t.nRec) return -1;
  const part = Atomics.load(i32, t.recOff(head - 1) + R_PART);
  return part >= 0 && part < t.nPart ? part : -1;
}
/**
 * Whether record r, the wait record of context c (-1: a ctx-less request) on mutex m of this thread, is now a
 * hold of it: a release handed it the lock (ww-rules.ts handOff). Read under the table lock by the waiter's
 * re-check, and without it by the waiter's doorbell once it saw r kicked (the release wrote the hold before
 * the kick).
 */
export function isHandedHold(t: Table, r: number, m: number, c: number): boolean {
  const roff = t.recOff(r);
  return (
    holdFlags(Atomics.load(t.i32, roff + R_FLAGS)) &&
    t.i32[roff + R_MUTEX] === m &&
    t.i32[roff + R_CTX] === c + 1 &&
    t.i32[roff + R_PART] === t.self
  );
}
/** Whether the mutex has any holder, read without the table lock (a hint, re-checked under it). */
export function isHeldNow(t: Table, moff: number): boolean {
  return Atomics.load(t.i32, moff + M_NHOLDERS) !== 0;
}

// ---- contexts (c is a context slot) ----

/** Context c's stamp (smaller: older; ordered contexts are offset to be younger than all others). */
export function ctxStamp(t: Table, c: number): number {
  return t.f64[(t.ctxOff(c) + C_STAMP) >> 1] as number;
}
/** Context c's flags (CF_*). */
export function ctxFlags(t: Table, c: number): number {
  return t.i32[t.ctxOff(c) + C_FLAGS] as number;
}
/** How many holds context c has. */
export function ctxAcquired(t: Table, c: number): number {
  return t.i32[t.ctxOff(c) + C_ACQUIRED] as number;
}
/** Whether context c was forced off its locks by the watchdog. */
export function ctxForced(t: Table, c: number): boolean {
  return (ctxFlags(t, c) & CF_FORCED) !== 0;
}
/** Whether context c is wounded (wound-wait). */
export function ctxWounded(t: Table, c: number): boolean {
  return (ctxFlags(t, c) & CF_WOUNDED) !== 0;
}
/** Whether context c takes its mutexes in ascending key order (CF_ORDERED). */
export function ctxOrdered(t: Table, c: number): boolean {
  return (ctxFlags(t, c) & CF_ORDERED) !== 0;
}
/** Marks context c forced (the watchdog took its locks). */
export function markForced(t: Table, c: number): void {
  Atomics.or(t.i32, t.ctxOff(c) + C_FLAGS, CF_FORCED);
}
/** The participant (thread, of any process) that owns context c. */
export function ctxPart(t: Table, c: number): number {
  return t.i32[t.ctxOff(c) + C_PART] as number;
}
/** Marks context c wounded. */
export function markWounded(t: Table, c: number): void {
  Atomics.or(t.i32, t.ctxOff(c) + C_FLAGS, CF_WOUNDED);
}
/** The mutex slot context c waits on, -1 if none. */
export function ctxWaitingOn(t: Table, c: number): number {
  return (t.i32[t.ctxOff(c) + C_WAITING_ON] as number) - 1;
}
/** Records that context c waits on mutex m (-1: nothing). */
export function setCtxWaitingOn(t: Table, c: number, m: number): void {
  t.i32[t.ctxOff(c) + C_WAITING_ON] = m + 1;
}
/** Context c's first hold, -1 if none (the next: recCtxNext). */
export function ctxFirstHold(t: Table, c: number): number {
  return (t.i32[t.ctxOff(c) + C_HOLD_HEAD] as number) - 1;
}
