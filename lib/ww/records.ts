/**
 * Records of the lock store: allocation from the free list; hold and wait records linked into a mutex's
 * holder or waiter list and a context's hold list; reference records; freeing an unused mutex slot. Every function runs inside the table's critical section.
 * @internal
 */
import {
  CF_ORDERED,
  CF_WOUNDED,
  C_ACQUIRED,
  C_FLAGS,
  C_HOLD_HEAD,
  C_MAX_HOLD,
  C_WAITING_ON,
  H_FREE_REC,
  M_HOLD_HEAD,
  M_NHOLDERS,
  M_NSPECIAL,
  M_NWAITERS,
  M_REFS,
  M_STATE,
  M_WAIT_HEAD,
  M_WAIT_TAIL,
  M_WRITE_HELD,
  RF_REF,
  RF_USED,
  RF_WAITER,
  RF_WATCH,
  RF_WRITE,
  R_CTX,
  R_CTX_NEXT,
  R_DEADLINE,
  R_FLAGS,
  R_MUTEX,
  R_NEXT,
  R_PART,
  R_SINCE,
  R_TAG,
  SLOT_EMPTY,
  SLOT_TOMB,
  SLOT_USED,
} from './layout';
import { enospc, type Table } from './table';

/** Pops a free record, or -1 if there is none. */
export function popRecord(t: Table): number {
  const i32 = t.i32;
  const head = i32[H_FREE_REC] as number;
  if (head === 0) return -1;
  const r = head - 1;
  i32[H_FREE_REC] = i32[t.recOff(r) + R_NEXT] as number;
  if (t.csSpinUs > 0) t.testPause();
  return r;
}

/** Pops a free record; on an empty pool throws ENOSPC (the caller's Table.critical leaves the section). */
export function allocRecord(t: Table): number {
  const r = popRecord(t);
  if (r < 0) throw recordsFull(t);
  return r;
}

/**
 * Turns free record r into a queued request (watch: a watcher) of context c (-1: none) for mutex m, made by
 * participant `part` at monotonic time `now`; not linked yet (linkWaiter).
 */
export function initWaitRecord(t: Table, r: number, m: number, c: number, write: boolean, watch: boolean, now: number, part: number): void {
  const i32 = t.i32;
  const roff = t.recOff(r);
  i32[roff + R_FLAGS] = RF_USED | RF_WAITER | (watch ? RF_WATCH : 0) | (write ? RF_WRITE : 0);
  i32[roff + R_CTX] = c + 1;
  i32[roff + R_MUTEX] = m;
  i32[roff + R_PART] = part;
  i32[roff + R_CTX_NEXT] = 0;
  t.f64[(roff + R_SINCE) >> 1] = now;
  t.f64[(roff + R_DEADLINE) >> 1] = Infinity;
  t.i64[(roff + R_TAG) >> 1] = 0n;
}

/**
 * Links wait record w into the wait list of its mutex (at `moff`) after record `prev` (-1: at the head),
 * counts it, and marks its context as waiting there.
 */
export function linkWaiter(t: Table, moff: number, w: number, prev: number): void {
  const i32 = t.i32;
  const woff = t.recOff(w);
  if (prev < 0) {
    i32[woff + R_NEXT] = i32[moff + M_WAIT_HEAD] as number;
    i32[moff + M_WAIT_HEAD] = w + 1;
  } else {
    const poff = t.recOff(prev);
    i32[woff + R_NEXT] = i32[poff + R_NEXT] as number;
    i32[poff + R_NEXT] = w + 1;
  }
  if (i32[woff + R_NEXT] === 0) i32[moff + M_WAIT_TAIL] = w + 1;
  i32[moff + M_NWAITERS]++;
  if (isSpecialWaiter(t, w)) i32[moff + M_NSPECIAL]++;
  const ctag = i32[woff + R_CTX] as number;
  if (ctag !== 0) i32[t.ctxOff(ctag - 1) + C_WAITING_ON] = (i32[woff + R_MUTEX] as number) + 1;
}

/** Whether wait record w counts in M_NSPECIAL: a watcher, or a request of an unordered context. */
export function isSpecialWaiter(t: Table, w: number): boolean {
  const i32 = t.i32;
  const roff = t.recOff(w);
  if (((i32[roff + R_FLAGS] as number) & RF_WATCH) !== 0) return true;
  const ctag = i32[roff + R_CTX] as number;
  return ctag !== 0 && ((i32[t.ctxOff(ctag - 1) + C_FLAGS] as number) & CF_ORDERED) === 0;
}

/** The ENOSPC error of an empty record pool. */
export function recordsFull(t: Table): Error {
  return enospc('hold/wait records', t.nRec);
}

/** Turns free record r into participant `part`'s reference of mutex m. */
export function addRef(t: Table, m: number, r: number, part: number): void {
  const i32 = t.i32;
  const roff = t.recOff(r);
  i32[roff + R_FLAGS] = RF_USED | RF_REF;
  i32[roff + R_CTX] = 0;
  i32[roff + R_MUTEX] = m;
  i32[roff + R_PART] = part;
  i32[roff + R_NEXT] = 0;
  i32[t.mutexOff(m) + M_REFS]++;
}

/** Drops reference record r (and its mutex's slot if that was the last use of it). */
export function dropRef(t: Table, r: number): void {
  const m = t.i32[t.recOff(r) + R_MUTEX] as number;
  const moff = t.mutexOff(m);
  if ((t.i32[moff + M_REFS] as number) > 0) t.i32[moff + M_REFS]--;
  freeRecord(t, r);
  freeMutexIfUnused(t, m);
}

/** Frees mutex slot m if nobody references, holds or waits on it. */
export function freeMutexIfUnused(t: Table, m: number): void {
  const i32 = t.i32;
  const off = t.mutexOff(m);
  if (i32[off + M_STATE] !== SLOT_USED || i32[off + M_REFS] !== 0) return;
  if (i32[off + M_HOLD_HEAD] !== 0 || i32[off + M_WAIT_HEAD] !== 0) return;
  i32[off + M_STATE] = SLOT_TOMB;
  // A tombstone followed by an empty slot ends no probe chain: turn the run of tombstones ending here back
  // into empty slots, so that tombstones do not accumulate (slots never move: WwMutex objects cache them).
  const n = t.nMutex;
  if (i32[t.mutexOff(m + 1 === n ? 0 : m + 1) + M_STATE] === SLOT_EMPTY) {
    let j = m;
    for (let k = 0; k < n && i32[t.mutexOff(j) + M_STATE] === SLOT_TOMB; k++) {
      i32[t.mutexOff(j) + M_STATE] = SLOT_EMPTY;
      j = j === 0 ? n - 1 : j - 1;
    }
  }
}

/** Pushes record r back on the free list. */
export function freeRecord(t: Table, r: number): void {
  const i32 = t.i32;
  const off = t.recOff(r);
  i32[off + R_FLAGS] = 0;
  i32[off + R_NEXT] = i32[H_FREE_REC] as number;
  i32[H_FREE_REC] = r + 1;
}

/** Context c's hold record on the mutex at `moff`, or -1. */
export function findHold(t: Table, moff: number, c: number): number {
  const i32 = t.i32;
  const tag = c + 1;
  for (let p = i32[moff + M_HOLD_HEAD] as number; p !== 0; p = i32[t.recOff(p - 1) + R_NEXT] as number) {
    if (i32[t.recOff(p - 1) + R_CTX] === tag) return p - 1;
  }
  return -1;
}

/** Turns record r into a hold of (m, c) by participant `part`, at monotonic time `now`. */
export function addHold(t: Table, m: number, moff: number, r: number, c: number, write: boolean, now: number, part: number): void {
  const i32 = t.i32;
  const roff = t.recOff(r);
  i32[roff + R_FLAGS] = RF_USED | (write ? RF_WRITE : 0);
  i32[roff + R_CTX] = c + 1;
  i32[roff + R_MUTEX] = m;
  i32[roff + R_PART] = part;
  t.f64[(roff + R_SINCE) >> 1] = now;
  t.i64[(roff + R_TAG) >> 1] = 0n;
  i32[roff + R_NEXT] = i32[moff + M_HOLD_HEAD] as number;
  i32[moff + M_HOLD_HEAD] = r + 1;
  if (t.csSpinUs > 0) t.testPause();
  Atomics.store(i32, moff + M_NHOLDERS, (i32[moff + M_NHOLDERS] as number) + 1);
  if (write) i32[moff + M_WRITE_HELD] = 1;
  let deadline = Infinity;
  if (c >= 0) {
    const coff = t.ctxOff(c);
    const maxHold = i32[coff + C_MAX_HOLD] as number;
    if (maxHold > 0) deadline = now + maxHold;
    i32[roff + R_CTX_NEXT] = i32[coff + C_HOLD_HEAD] as number;
    i32[coff + C_HOLD_HEAD] = r + 1;
    Atomics.store(i32, coff + C_ACQUIRED, (i32[coff + C_ACQUIRED] as number) + 1);
  } else {
    i32[roff + R_CTX_NEXT] = 0;
  }
  t.f64[(roff + R_DEADLINE) >> 1] = deadline;
}

/**
 * Unlinks record r from the singly linked list whose head word is at `head`; `next` is the record field
 * that links this list (records are on two lists at once: their mutex's and their context's).
 */
export function unlink(t: Table, head: number, r: number, next: number): void {
  const i32 = t.i32;
  let prev = -1;
  for (let p = i32[head] as number; p !== 0; p = i32[t.recOff(p - 1) + next] as number) {
    if (p - 1 === r) {
      const after = i32[t.recOff(r) + next] as number;
      if (prev < 0) i32[head] = after;
      else i32[t.recOff(prev) + next] = after;
      return;
    }
    prev = p - 1;
  }
}

/** Unlinks hold r from its mutex and its context (the record itself is not freed). */
export function removeHold(t: Table, moff: number, r: number): void {
  const i32 = t.i32;
  const roff = t.recOff(r);
  unlink(t, moff + M_HOLD_HEAD, r, R_NEXT);
  if (t.csSpinUs > 0) t.testPause();
  Atomics.store(i32, moff + M_NHOLDERS, (i32[moff + M_NHOLDERS] as number) - 1);
  if (((i32[roff + R_FLAGS] as number) & RF_WRITE) !== 0) i32[moff + M_WRITE_HELD] = 0;
  const ctag = i32[roff + R_CTX] as number;
  if (ctag !== 0) {
    const coff = t.ctxOff(ctag - 1);
    unlink(t, coff + C_HOLD_HEAD, r, R_CTX_NEXT);
    const acquired = (i32[coff + C_ACQUIRED] as number) - 1;
    Atomics.store(i32, coff + C_ACQUIRED, acquired);
    // As in the kernel: a context that holds nothing is no longer wounded (it has backed off).
    if (acquired === 0) Atomics.and(i32, coff + C_FLAGS, ~CF_WOUNDED);
  }
}

/** Unlinks waiter w from the mutex's wait list and clears its context's waitingOn. */
export function removeWaiter(t: Table, moff: number, w: number): void {
  const i32 = t.i32;
  let prev = -1;
  for (let p = i32[moff + M_WAIT_HEAD] as number; p !== 0; p = i32[t.recOff(p - 1) + R_NEXT] as number) {
    if (p - 1 === w) {
      const after = i32[t.recOff(w) + R_NEXT] as number;
      if (prev < 0) i32[moff + M_WAIT_HEAD] = after;
      else i32[t.recOff(prev) + R_NEXT] = after;
      if (after === 0) i32[moff + M_WAIT_TAIL] = prev + 1;
      break;
    }
    prev = p - 1;
  }
  i32[moff + M_NWAITERS]--;
  if (isSpecialWaiter(t, w)) i32[moff + M_NSPECIAL]--;
  const ctag = i32[t.recOff(w) + R_CTX] as number;
  if (ctag !== 0) i32[t.ctxOff(ctag - 1) + C_WAITING_ON] = 0;
}
