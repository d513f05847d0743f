/**
 * query(): a plain snapshot of every mutex of a store with a holder or a waiter, in every thread of every
 * process, naming each holder's and waiter's process and thread.
 * @internal
 */
import {
  M_HOLD_HEAD,
  M_KEY,
  M_STATE,
  M_WAIT_HEAD,
  P_PID,
  P_THREAD,
  RF_WATCH,
  RF_WRITE,
  R_CTX,
  R_FLAGS,
  R_NEXT,
  R_PART,
  R_SINCE,
  SLOT_USED,
} from './layout';
import type { Table } from './table';

/** One holder or waiter in a `LockSnapshot`. */
export interface LockHolderInfo {
  /** The context's name ('' for none or a ctx-less hold). */
  ctxName: string;
  /** The context's stamp; null for a ctx-less hold. */
  stamp: number | null;
  /** Shared ('read') or exclusive ('write'). */
  mode: 'read' | 'write';
  /** Date.now() when the hold (or the wait) began. */
  since: number;
  /** The holder's or waiter's process id. */
  pid: number;
  /** Its worker_threads threadId (0: the main thread). */
  threadId: number;
}
/** A waiter in a `LockSnapshot` (same fields as a holder). */
export type LockWaiterInfo = LockHolderInfo;

/** Plain-data snapshot of every mutex that has a holder or a waiter, across all threads and processes. */
export interface LockSnapshot {
  /** One entry per mutex with a holder or a waiter. */
  locks: Array<{
    /** The mutex key (for dmabuf-sync: the buffer's inode). */
    key: bigint;
    /** Who holds it now. */
    holders: LockHolderInfo[];
    /** Who waits for it, in queue order. */
    waiters: LockWaiterInfo[];
  }>;
}

/** Reads the snapshot under the table lock; `mono` is the monotonic now (to turn `since` into wall time). */
export function queryTable(t: Table, ctxName: (c: number) => string, ctxStamp: (c: number) => number, mono: number): LockSnapshot {
  const i32 = t.i32;
  const wall = Date.now();
  const locks: LockSnapshot['locks'] = [];
  const info = (r: number): LockHolderInfo => {
    const roff = t.recOff(r);
    const ctag = i32[roff + R_CTX] as number;
    const poff = t.partOff(i32[roff + R_PART] as number);
    return {
      ctxName: ctag !== 0 ? ctxName(ctag - 1) : '',
      stamp: ctag !== 0 ? ctxStamp(ctag - 1) : null,
      mode: ((i32[roff + R_FLAGS] as number) & RF_WRITE) !== 0 ? 'write' : 'read',
      since: wall - (mono - (t.f64[(roff + R_SINCE) >> 1] as number)),
      pid: i32[poff + P_PID] as number,
      threadId: i32[poff + P_THREAD] as number,
    };
  };
  t.lock();
  try {
    for (let m = 0; m < t.nMutex; m++) {
      const moff = t.mutexOff(m);
      if (i32[moff + M_STATE] !== SLOT_USED) continue;
      if (i32[moff + M_HOLD_HEAD] === 0 && i32[moff + M_WAIT_HEAD] === 0) continue;
      const holders: LockHolderInfo[] = [];
      const waiters: LockWaiterInfo[] = [];
      for (let p = i32[moff + M_HOLD_HEAD] as number; p !== 0; p = i32[t.recOff(p - 1) + R_NEXT] as number) holders.push(info(p - 1));
      for (let p = i32[moff + M_WAIT_HEAD] as number; p !== 0; p = i32[t.recOff(p - 1) + R_NEXT] as number) {
        // Watchers (waitUnlocked) do not wait for the lock itself.
        if (((i32[t.recOff(p - 1) + R_FLAGS] as number) & RF_WATCH) === 0) waiters.push(info(p - 1));
      }
      if (holders.length === 0 && waiters.length === 0) continue;
      locks.push({ key: t.i64[(moff + M_KEY) >> 1] as bigint, holders, waiters });
    }
  } finally {
    t.unlock();
  }
  return { locks };
}
