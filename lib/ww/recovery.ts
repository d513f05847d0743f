/**
 * Recovery from participants (threads, in any process) that died: a SIGKILLed process, a terminated worker.
 * Liveness is the participant's OFD byte lock, which the kernel drops on any death (table.ts `isAlive`).
 *
 * - A dead participant's holds and waits are removed, its contexts freed, its slot emptied
 *   (`reapParticipant`). A write hold removed this way marks the mutex M_OWNER_DIED: the data may be half
 *   written, and the next locker is told.
 * - A participant that died inside the table's critical section may have left any list half updated. Its
 *   successor rebuilds every derived structure from the records (`rebuildTable`): a record's flags, mutex,
 *   context and participant words are the truth; lists, counts and free lists are recomputed. Every update
 *   in the lock core writes a record's flags first when it takes one and clears them first when it frees
 *   one, so a record is either fully described by its words or free.
 * Every function runs inside the critical section.
 * @internal
 */
import {
  CF_PARKED,
  CF_USED,
  C_ACQUIRED,
  C_FLAGS,
  C_HOLD_HEAD,
  C_NEXT_FREE,
  C_PART,
  C_WAITING_ON,
  H_FREE_CTX,
  H_FREE_REC,
  M_HOLD_HEAD,
  M_NHOLDERS,
  M_NSPECIAL,
  M_NWAITERS,
  M_OWNER_DIED,
  M_REFS,
  M_STATE,
  M_WAIT_HEAD,
  M_WAIT_TAIL,
  M_WRITE_HELD,
  P_STATE,
  RF_REF,
  RF_USED,
  RF_WAITER,
  RF_WATCH,
  RF_WRITE,
  R_CTX,
  R_CTX_NEXT,
  R_FLAGS,
  R_MUTEX,
  R_NEXT,
  R_PART,
  R_SINCE,
  SLOT_USED,
} from './layout';
import { dropRef, freeMutexIfUnused, freeRecord, isSpecialWaiter, linkWaiter, removeHold, removeWaiter } from './records';
import { debug, type Table } from './table';
import { queueSpot } from './ww-rules';
import type { Waker } from './waking';

/** Removes everything participant p left; returns how many records it removed. */
export function reapParticipant(t: Table, waker: Waker, p: number): number {
  const i32 = t.i32;
  let removed = 0;
  for (let r = 0; r < t.nRec; r++) {
    const roff = t.recOff(r);
    const flags = i32[roff + R_FLAGS] as number;
    if ((flags & RF_USED) === 0 || i32[roff + R_PART] !== p) continue;
    const m = i32[roff + R_MUTEX] as number;
    const moff = t.mutexOff(m);
    if ((flags & RF_REF) !== 0) {
      dropRef(t, r);
      continue;
    }
    if ((flags & RF_WAITER) !== 0) {
      removeWaiter(t, moff, r);
    } else {
      if ((flags & RF_WRITE) !== 0) i32[moff + M_OWNER_DIED] = 1;
      removeHold(t, moff, r);
    }
    freeRecord(t, r);
    removed++;
    waker.wakeAll(moff);
    freeMutexIfUnused(t, m);
  }
  for (let c = 0; c < t.nCtx; c++) {
    const coff = t.ctxOff(c);
    if (((i32[coff + C_FLAGS] as number) & (CF_USED | CF_PARKED)) === 0 || i32[coff + C_PART] !== p) continue;
    Atomics.store(i32, coff + C_FLAGS, 0);
    i32[coff + C_ACQUIRED] = 0;
    i32[coff + C_HOLD_HEAD] = 0;
    i32[coff + C_WAITING_ON] = 0;
    i32[coff + C_NEXT_FREE] = i32[H_FREE_CTX] as number;
    i32[H_FREE_CTX] = c + 1;
  }
  Atomics.store(i32, t.partOff(p) + P_STATE, 0);
  if (removed > 0) debug('reaped dead participant %d of %s: %d hold/wait records', p, t.file.path, removed);
  return removed;
}

/**
 * What the thread that took over the table lock from a dead owner does: rebuild, reap the dead, and wake
 * every waiter (a whole run of state may have changed under them).
 */
export function recoverTable(t: Table, waker: Waker): void {
  rebuildTable(t);
  reapDead(t, waker);
  for (let m = 0; m < t.nMutex; m++) {
    const moff = t.mutexOff(m);
    if (t.i32[moff + M_NWAITERS] !== 0) waker.wakeAll(moff);
  }
}

/**
 * Reaps the dead among the participants holding or waiting for the mutex m (one liveness check per distinct
 * participant). Takes the table lock.
 */
export function reapDeadAround(t: Table, waker: Waker, m: number): void {
  const i32 = t.i32;
  const moff = t.mutexOff(m);
  const seen: number[] = [];
  t.lock();
  try {
    for (const head of [M_HOLD_HEAD, M_WAIT_HEAD]) {
      for (let p = i32[moff + head] as number; p !== 0; p = i32[t.recOff(p - 1) + R_NEXT] as number) {
        const part = i32[t.recOff(p - 1) + R_PART] as number;
        if (part !== t.self && !seen.includes(part)) seen.push(part);
      }
    }
    for (const part of seen) if (!t.isAlive(part)) reapParticipant(t, waker, part);
  } finally {
    t.unlock();
  }
}

/** Reaps every attached participant whose thread is gone. Returns how many. */
export function reapDead(t: Table, waker: Waker): number {
  let n = 0;
  for (let p = 0; p < t.nPart; p++) {
    if (p === t.self || Atomics.load(t.i32, t.partOff(p) + P_STATE) === 0) continue;
    if (!t.isAlive(p)) {
      reapParticipant(t, waker, p);
      n++;
    }
  }
  return n;
}

/**
 * Recomputes every list, count and free list from the records, contexts and mutex slots: what a successor
 * does after the table lock's owner died inside the critical section.
 */
export function rebuildTable(t: Table): void {
  const i32 = t.i32;
  // The old wait lists give the queue order (stamps and arrival times cannot: a ctx-less request queued
  // between contexts keeps its place, and removals leave the rest as they were). Read them before they are
  // cleared, trusting a link only to a waiter record of that mutex not seen before; a record that the dead
  // owner was linking in or out is placed again below, by the rule acquire queues by.
  const queuePos = new Int32Array(t.nRec).fill(-1);
  let pos = 0;
  for (let m = 0; m < t.nMutex; m++) {
    const moff = t.mutexOff(m);
    if (i32[moff + M_STATE] !== SLOT_USED) continue;
    for (let p = i32[moff + M_WAIT_HEAD] as number; p > 0 && p <= t.nRec; ) {
      const r = p - 1;
      const roff = t.recOff(r);
      const flags = i32[roff + R_FLAGS] as number;
      if ((flags & RF_USED) === 0 || (flags & RF_WAITER) === 0 || i32[roff + R_MUTEX] !== m || queuePos[r] !== -1) break;
      queuePos[r] = pos++;
      p = i32[roff + R_NEXT] as number;
    }
  }
  for (let m = 0; m < t.nMutex; m++) {
    const moff = t.mutexOff(m);
    i32[moff + M_HOLD_HEAD] = 0;
    i32[moff + M_WAIT_HEAD] = 0;
    i32[moff + M_WAIT_TAIL] = 0;
    i32[moff + M_NHOLDERS] = 0;
    i32[moff + M_NWAITERS] = 0;
    i32[moff + M_NSPECIAL] = 0;
    i32[moff + M_WRITE_HELD] = 0;
    i32[moff + M_REFS] = 0;
  }
  let freeCtx = 0;
  for (let c = t.nCtx - 1; c >= 0; c--) {
    const coff = t.ctxOff(c);
    i32[coff + C_HOLD_HEAD] = 0;
    i32[coff + C_ACQUIRED] = 0;
    i32[coff + C_WAITING_ON] = 0;
    // A parked slot stays its thread's (that thread's list names it); a dead thread's is freed by reapDead.
    if (((i32[coff + C_FLAGS] as number) & (CF_USED | CF_PARKED)) === 0) {
      i32[coff + C_NEXT_FREE] = freeCtx;
      freeCtx = c + 1;
    }
  }
  i32[H_FREE_CTX] = freeCtx;
  const waiters: number[] = [];
  let freeRec = 0;
  for (let r = t.nRec - 1; r >= 0; r--) {
    const roff = t.recOff(r);
    const flags = i32[roff + R_FLAGS] as number;
    const m = i32[roff + R_MUTEX] as number;
    const ctag = i32[roff + R_CTX] as number;
    const valid =
      (flags & RF_USED) !== 0 &&
      m >= 0 && m < t.nMutex && i32[t.mutexOff(m) + M_STATE] === SLOT_USED &&
      (ctag === 0 || (ctag <= t.nCtx && ((i32[t.ctxOff(ctag - 1) + C_FLAGS] as number) & CF_USED) !== 0));
    if (!valid) {
      i32[roff + R_FLAGS] = 0;
      i32[roff + R_NEXT] = freeRec;
      freeRec = r + 1;
      continue;
    }
    if ((flags & RF_REF) !== 0) {
      i32[t.mutexOff(m) + M_REFS]++;
      continue;
    }
    if ((flags & RF_WAITER) !== 0) {
      waiters.push(r);
      continue;
    }
    const moff = t.mutexOff(m);
    i32[roff + R_NEXT] = i32[moff + M_HOLD_HEAD] as number;
    i32[moff + M_HOLD_HEAD] = r + 1;
    i32[moff + M_NHOLDERS]++;
    if ((flags & RF_WRITE) !== 0) i32[moff + M_WRITE_HELD] = 1;
    if (ctag !== 0) {
      const coff = t.ctxOff(ctag - 1);
      i32[roff + R_CTX_NEXT] = i32[coff + C_HOLD_HEAD] as number;
      i32[coff + C_HOLD_HEAD] = r + 1;
      i32[coff + C_ACQUIRED]++;
    }
  }
  i32[H_FREE_REC] = freeRec;
  // Queues in the order they had: the listed waiters in list order, each appended; then the others (their
  // insertion or removal was cut short) in arrival order, each where acquire would put it (queueSpot), a
  // watcher at the head as watch() does.
  const since = (r: number): number => t.f64[(t.recOff(r) + R_SINCE) >> 1] as number;
  const listed = waiters.filter((r) => queuePos[r] !== -1).sort((a, b) => (queuePos[a] as number) - (queuePos[b] as number));
  const unlisted = waiters.filter((r) => queuePos[r] === -1).sort((a, b) => since(a) - since(b));
  const tail = new Int32Array(t.nMutex).fill(-1);
  const link = (r: number, prev: number): void => linkWaiter(t, t.mutexOff(i32[t.recOff(r) + R_MUTEX] as number), r, prev);
  for (const r of listed) {
    const m = i32[t.recOff(r) + R_MUTEX] as number;
    link(r, tail[m] as number);
    tail[m] = r;
  }
  for (const r of unlisted) {
    const roff = t.recOff(r);
    const flags = i32[roff + R_FLAGS] as number;
    const moff = t.mutexOff(i32[roff + R_MUTEX] as number);
    link(r, (flags & RF_WATCH) !== 0 ? -1 : queueSpot(t, moff, (i32[roff + R_CTX] as number) - 1).prev);
  }
  debug('rebuilt lock table %s after its owner died inside the critical section', t.file.path);
}

/**
 * Checks the table's invariants (tests and diagnostics): every list agrees with the records, counts and free
 * lists are exact, and every record belongs to a live participant. Returns the problems found (none: []).
 */
export function checkTable(t: Table): string[] {
  const i32 = t.i32;
  const problems: string[] = [];
  const seen = new Uint8Array(t.nRec);
  const walk = (head: number, next: number, what: string, visit: (r: number) => void): number => {
    let n = 0;
    for (let p = i32[head] as number; p !== 0; p = i32[t.recOff(p - 1) + next] as number) {
      if (p - 1 >= t.nRec || ++n > t.nRec) {
        problems.push(`${what}: broken link`);
        return n;
      }
      visit(p - 1);
    }
    return n;
  };
  t.lock();
  try {
    for (let m = 0; m < t.nMutex; m++) {
      const moff = t.mutexOff(m);
      if (i32[moff + M_STATE] !== SLOT_USED) continue;
      let writers = 0;
      const nh = walk(moff + M_HOLD_HEAD, R_NEXT, `mutex ${m} holders`, (r) => {
        const f = i32[t.recOff(r) + R_FLAGS] as number;
        if ((f & RF_USED) === 0 || (f & RF_WAITER) !== 0 || i32[t.recOff(r) + R_MUTEX] !== m) problems.push(`mutex ${m}: holder ${r} is not a hold of it`);
        if ((f & RF_WRITE) !== 0) writers++;
        seen[r]! += 1;
      });
      let special = 0;
      let last = -1;
      const nw = walk(moff + M_WAIT_HEAD, R_NEXT, `mutex ${m} waiters`, (r) => {
        const f = i32[t.recOff(r) + R_FLAGS] as number;
        last = r;
        if (isSpecialWaiter(t, r)) special++;
        if ((f & RF_USED) === 0 || (f & RF_WAITER) === 0 || i32[t.recOff(r) + R_MUTEX] !== m) problems.push(`mutex ${m}: waiter ${r} is not a wait on it`);
        seen[r]! += 1;
      });
      if (nh !== i32[moff + M_NHOLDERS]) problems.push(`mutex ${m}: ${nh} holders listed, count ${i32[moff + M_NHOLDERS]}`);
      if (nw !== i32[moff + M_NWAITERS]) problems.push(`mutex ${m}: ${nw} waiters listed, count ${i32[moff + M_NWAITERS]}`);
      if (last + 1 !== i32[moff + M_WAIT_TAIL]) problems.push(`mutex ${m}: wait queue ends at ${last}, tail says ${(i32[moff + M_WAIT_TAIL] as number) - 1}`);
      if (special !== i32[moff + M_NSPECIAL]) problems.push(`mutex ${m}: ${special} special waiters listed, count ${i32[moff + M_NSPECIAL]}`);
      if (writers > 1 || (writers === 1 && nh > 1)) problems.push(`mutex ${m}: a writer shares it (${writers} writers, ${nh} holders)`);
      if ((writers === 1) !== (i32[moff + M_WRITE_HELD] === 1)) problems.push(`mutex ${m}: write-held flag wrong`);
    }
    const refs = new Int32Array(t.nMutex);
    for (let r = 0; r < t.nRec; r++) {
      const roff = t.recOff(r);
      if (((i32[roff + R_FLAGS] as number) & RF_REF) === 0) continue;
      const m = i32[roff + R_MUTEX] as number;
      if (i32[t.mutexOff(m) + M_STATE] !== SLOT_USED) problems.push(`reference ${r} is of a free mutex slot ${m}`);
      else refs[m]!++;
      seen[r]! += 1;
    }
    for (let m = 0; m < t.nMutex; m++) {
      const moff = t.mutexOff(m);
      if (i32[moff + M_STATE] === SLOT_USED && i32[moff + M_REFS] !== refs[m]) problems.push(`mutex ${m}: ${refs[m]} references, count ${i32[moff + M_REFS]}`);
    }
    const nfree = walk(H_FREE_REC, R_NEXT, 'free records', (r) => {
      if (i32[t.recOff(r) + R_FLAGS] !== 0) problems.push(`free record ${r} has flags`);
      seen[r]! += 1;
    });
    let used = 0;
    for (let r = 0; r < t.nRec; r++) {
      const roff = t.recOff(r);
      const f = i32[roff + R_FLAGS] as number;
      if ((f & RF_USED) !== 0) {
        used++;
        const p = i32[roff + R_PART] as number;
        if (!t.isAlive(p)) problems.push(`record ${r} belongs to dead participant ${p}`);
      }
      if (seen[r] !== 1) problems.push(`record ${r} is on ${seen[r]} lists`);
    }
    if (used + nfree !== t.nRec) problems.push(`${used} used + ${nfree} free records != ${t.nRec}`);
    for (let c = 0; c < t.nCtx; c++) {
      const coff = t.ctxOff(c);
      if (((i32[coff + C_FLAGS] as number) & CF_USED) === 0) continue;
      const n = walk(coff + C_HOLD_HEAD, R_CTX_NEXT, `context ${c} holds`, (r) => {
        if (i32[t.recOff(r) + R_CTX] !== c + 1) problems.push(`context ${c}: hold ${r} is not its`);
      });
      if (n !== i32[coff + C_ACQUIRED]) problems.push(`context ${c}: ${n} holds listed, acquired ${i32[coff + C_ACQUIRED]}`);
    }
  } finally {
    t.unlock();
  }
  return problems;
}
