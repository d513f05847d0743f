/**
 * The lock table: ww_mutex semantics (Documentation/locking/ww-mutex-design.rst) extended with shared
 * (read) holders, over the SharedArrayBuffer of shared-state.ts. Everything here runs inside the table's
 * short critical section and never awaits; waiting is done by the caller through `LockStore.wait`.
 *
 * The JavaScript layer (WwMutex, AcquireContext) only talks to the `LockStore` interface so that a
 * cross-process store (a shared memfd, same layout) can be put behind it later.
 *
 * Handles are small integers: mutex slot `m`, context slot `c` (-1 = no context), record `r`.
 * Return values are numeric codes so that the uncontended path allocates nothing.
 * @internal
 */
import * as wt from 'node:worker_threads';
import { DmabufError } from '../errors';
import {
  CAPACITY_ENV,
  CF_FORCED,
  CF_USED,
  CF_WOUNDED,
  C_ACQUIRED,
  C_FLAGS,
  C_GEN,
  C_HOLD_HEAD,
  C_KIND,
  C_MAX_HOLD,
  C_NAME,
  C_NAME_LEN,
  C_NEXT_FREE,
  C_PID,
  C_STAMP,
  C_THREAD,
  C_WAITING_ON,
  F_KEYCTR,
  F_STAMP,
  H_FORCED_SEQ,
  H_FREE_CTX,
  H_FREE_REC,
  H_LAST_FORCED,
  H_MUTEX_USED,
  KIND_WAIT_DIE,
  M_HOLD_HEAD,
  M_KEY,
  M_KIND,
  M_NHOLDERS,
  M_NWAITERS,
  M_NWRITERS_WAITING,
  M_REFS,
  M_SEQ,
  M_STATE,
  M_WAIT_HEAD,
  M_WRITE_HELD,
  NAME_BYTES,
  RF_USED,
  RF_WAITER,
  RF_WRITE,
  R_CTX,
  R_CTX_NEXT,
  R_DEADLINE,
  R_FLAGS,
  R_MUTEX,
  R_NEXT,
  R_PID,
  R_SINCE,
  R_TAG,
  R_THREAD,
  SLOT_EMPTY,
  SLOT_TOMB,
  SLOT_USED,
  SharedState,
  sharedState,
} from './shared-state';

// ---- result codes ----
/** The lock was taken; `LockStore.lastRecord` is the hold record. */
export const GRANTED = 0;
/** The request is queued; `lastRecord` is the wait record, `waitSeq`/`waitUntil`/`victim` say how to wait. */
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
  /** The worker_threads threadId of the holder (0: the main thread). */
  threadId: number;
  /** The holder's process id. */
  pid: number;
}
/** A waiter in a `LockSnapshot` (same fields as a holder). */
export type LockWaiterInfo = LockHolderInfo;

/** Plain-data snapshot of every mutex that has a holder or a waiter, across all threads. */
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

/** What a forced release removed. */
export interface ForcedRelease {
  ctxId: number;
  ctxName: string;
  keys: bigint[];
  /** Non-zero tags of the removed holds (set with setHoldTag). */
  tags: bigint[];
}

/**
 * The storage behind the lock core. One implementation per sharing domain: `SabLockStore` shares between the
 * worker_threads of one process; a cross-process store will implement the same operations.
 */
export interface LockStore {
  /** Scratch outputs of the last acquire/poll (valid until the next call on this thread). */
  lastRecord: number;
  waitSeq: number;
  waitUntil: number;
  victim: number;

  openMutex(key: bigint | undefined, kind: number): number;
  closeMutex(m: number): void;
  mutexKey(m: number): bigint;
  mutexKind(m: number): number;
  isLocked(m: number): boolean;

  openContext(kind: number, name: string, maxHoldMs: number): number;
  /** Frees the slot; false (nothing done) if the context still holds or waits. */
  closeContext(c: number): boolean;
  ctxStamp(c: number): number;
  ctxAcquired(c: number): number;
  ctxFlags(c: number): number;
  ctxName(c: number): string;

  acquire(m: number, c: number, write: boolean, flags: number): number;
  poll(w: number, m: number, c: number, write: boolean, flags: number): number;
  cancel(w: number, m: number, c: number): void;
  release(m: number, c: number, r: number): number;
  setHoldTag(m: number, c: number, tag: bigint): boolean;
  /** Whether context c holds mutex m. */
  holds(m: number, c: number): boolean;
  earliestDeadline(c: number): number;
  /** Forces `c` off if one of its holds is past its deadline at `now` (or unconditionally with `now` = Infinity). */
  forceIfExpired(c: number, now: number): ForcedRelease | null;
  /** Wakes the waiters of `m` without changing anything (used to make an aborted waiter notice at once). */
  kick(m: number): void;
  /** Resolves when `m` may have changed since `seq` was read, or after `timeoutMs`. */
  wait(m: number, seq: number, timeoutMs: number): Promise<unknown> | undefined;
  query(): LockSnapshot;
}

function hashKey(key: bigint, n: number): number {
  const lo = Number(BigInt.asUintN(32, key));
  const hi = Number(BigInt.asUintN(32, key >> 32n));
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % n;
}

function enospc(what: string, cap: number): DmabufError {
  return new DmabufError(
    'ENOSPC',
    `the lock table is out of ${what} (capacity ${cap}): release/dispose unused ones, or raise the capacity with ` +
      `the ${CAPACITY_ENV} environment variable (e.g. ${CAPACITY_ENV}="mutexes=16384,contexts=32768,records=131072"), ` +
      `set before the first thread loads dmabuf-sync`,
  );
}

const textDecoder = new TextDecoder();

/** How many same-thread waiters one release wakes directly (see SabLockStore.notify). */
const LOCAL_WAKE_BATCH = 8;

/** Atomics.waitAsync (Node >= 16); typed here because the ES2022 lib typings predate it. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(a: Int32Array, i: number, v: number, t: number): { async: boolean; value: Promise<unknown> | string };
  }
).waitAsync;

/** LockStore over a SharedArrayBuffer shared by the worker_threads of this process. */
export class SabLockStore implements LockStore {
  lastRecord = -1;
  waitSeq = 0;
  waitUntil = Infinity;
  victim = -1;

  private readonly s: SharedState;
  /** This thread's waiters by futex index (see notify). */
  private readonly localWaiters = new Map<number, Array<() => void>>();
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly i64: BigInt64Array;
  private readonly threadId = wt.threadId;
  private readonly pid = process.pid;

  constructor(s: SharedState) {
    this.s = s;
    this.i32 = s.i32;
    this.f64 = s.f64;
    this.i64 = s.i64;
  }

  // ---------------------------------------------------------------- mutex slots

  openMutex(key: bigint | undefined, kind: number): number {
    const s = this.s;
    const i32 = this.i32;
    s.lock();
    try {
      if (key === undefined) {
        // Fresh keys are negative so they can never collide with inode numbers.
        const n = (this.f64[F_KEYCTR] as number) + 1;
        this.f64[F_KEYCTR] = n;
        key = -BigInt(n);
      }
      key = BigInt.asIntN(64, key);
      const n = s.nMutex;
      let i = hashKey(key, n);
      let tomb = -1;
      for (let probe = 0; probe < n; probe++, i = i + 1 === n ? 0 : i + 1) {
        const off = s.mutexOff(i);
        const st = i32[off + M_STATE];
        if (st === SLOT_EMPTY) break;
        if (st === SLOT_TOMB) {
          if (tomb < 0) tomb = i;
          continue;
        }
        if (this.i64[(off + M_KEY) >> 1] === key) {
          if (i32[off + M_KIND] !== kind) {
            throw new DmabufError(
              'EINVAL',
              `lock key ${key} is already used with the other ww class kind: every WwMutex of one key must use ` +
                `the same kind ('wound-wait' or 'wait-die'), or deadlock avoidance breaks`,
            );
          }
          i32[off + M_REFS]++;
          return i;
        }
      }
      const slot = tomb >= 0 ? tomb : i32[s.mutexOff(i) + M_STATE] === SLOT_EMPTY ? i : -1;
      if (slot < 0) throw enospc('mutex slots', n);
      const off = s.mutexOff(slot);
      this.i64[(off + M_KEY) >> 1] = key;
      i32[off + M_REFS] = 1;
      i32[off + M_KIND] = kind;
      i32[off + M_HOLD_HEAD] = 0;
      i32[off + M_WAIT_HEAD] = 0;
      i32[off + M_NHOLDERS] = 0;
      i32[off + M_NWAITERS] = 0;
      i32[off + M_NWRITERS_WAITING] = 0;
      i32[off + M_WRITE_HELD] = 0;
      Atomics.store(i32, off + M_STATE, SLOT_USED);
      i32[H_MUTEX_USED]++;
      return slot;
    } finally {
      s.unlock();
    }
  }

  closeMutex(m: number): void {
    const s = this.s;
    s.lock();
    const off = s.mutexOff(m);
    if (this.i32[off + M_REFS]! > 0) this.i32[off + M_REFS]--;
    this.maybeFreeMutex(m);
    s.unlock();
  }

  /** Frees a slot nobody references, holds or waits on. Called with the table locked. */
  private maybeFreeMutex(m: number): void {
    const s = this.s;
    const i32 = this.i32;
    const off = s.mutexOff(m);
    if (i32[off + M_STATE] !== SLOT_USED || i32[off + M_REFS] !== 0) return;
    if (i32[off + M_HOLD_HEAD] !== 0 || i32[off + M_WAIT_HEAD] !== 0) return;
    i32[off + M_STATE] = SLOT_TOMB;
    i32[H_MUTEX_USED]--;
    // A tombstone followed by an empty slot ends no probe chain: turn the run of tombstones ending here back
    // into empty slots, so that tombstones do not accumulate (slots never move: WwMutex objects cache them).
    const n = s.nMutex;
    if (i32[s.mutexOff(m + 1 === n ? 0 : m + 1) + M_STATE] === SLOT_EMPTY) {
      let j = m;
      for (let k = 0; k < n && i32[s.mutexOff(j) + M_STATE] === SLOT_TOMB; k++) {
        i32[s.mutexOff(j) + M_STATE] = SLOT_EMPTY;
        j = j === 0 ? n - 1 : j - 1;
      }
    }
  }

  mutexKey(m: number): bigint {
    return this.i64[(this.s.mutexOff(m) + M_KEY) >> 1] as bigint;
  }

  mutexKind(m: number): number {
    return this.i32[this.s.mutexOff(m) + M_KIND] as number;
  }

  isLocked(m: number): boolean {
    return Atomics.load(this.i32, this.s.mutexOff(m) + M_NHOLDERS) > 0;
  }

  // ---------------------------------------------------------------- contexts

  openContext(kind: number, name: string, maxHoldMs: number): number {
    // Encode outside the critical section; truncate on a character boundary.
    let bytes = Buffer.from(name, 'utf8');
    if (bytes.length > NAME_BYTES) {
      let end = NAME_BYTES;
      while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
      bytes = bytes.subarray(0, end);
    }
    const s = this.s;
    const i32 = this.i32;
    s.lock();
    try {
      const head = i32[H_FREE_CTX] as number;
      if (head === 0) throw enospc('acquire context slots', s.nCtx);
      const c = head - 1;
      const off = s.ctxOff(c);
      i32[H_FREE_CTX] = i32[off + C_NEXT_FREE] as number;
      // The stamp counter lives under the table lock; f64 counts exactly up to 2^53.
      const stamp = (this.f64[F_STAMP] as number) + 1;
      this.f64[F_STAMP] = stamp;
      this.f64[(off + C_STAMP) >> 1] = stamp;
      i32[off + C_ACQUIRED] = 0;
      i32[off + C_MAX_HOLD] = maxHoldMs;
      i32[off + C_THREAD] = this.threadId;
      i32[off + C_PID] = this.pid;
      i32[off + C_WAITING_ON] = 0;
      i32[off + C_HOLD_HEAD] = 0;
      i32[off + C_KIND] = kind;
      i32[off + C_GEN]++;
      i32[off + C_NAME_LEN] = bytes.length;
      this.s.u8.set(bytes, (off + C_NAME) * 4);
      Atomics.store(i32, off + C_FLAGS, CF_USED);
      return c;
    } finally {
      s.unlock();
    }
  }

  closeContext(c: number): boolean {
    const s = this.s;
    const i32 = this.i32;
    const off = s.ctxOff(c);
    s.lock();
    try {
      if (((i32[off + C_FLAGS] as number) & CF_USED) === 0) return true;
      if (i32[off + C_HOLD_HEAD] !== 0 || i32[off + C_WAITING_ON] !== 0) return false;
      Atomics.store(i32, off + C_FLAGS, 0);
      i32[off + C_ACQUIRED] = 0;
      i32[off + C_NEXT_FREE] = i32[H_FREE_CTX] as number;
      i32[H_FREE_CTX] = c + 1;
      return true;
    } finally {
      s.unlock();
    }
  }

  ctxStamp(c: number): number {
    return this.f64[(this.s.ctxOff(c) + C_STAMP) >> 1] as number;
  }
  ctxAcquired(c: number): number {
    return Atomics.load(this.i32, this.s.ctxOff(c) + C_ACQUIRED);
  }
  ctxFlags(c: number): number {
    return Atomics.load(this.i32, this.s.ctxOff(c) + C_FLAGS);
  }
  ctxName(c: number): string {
    const off = this.s.ctxOff(c);
    const start = (off + C_NAME) * 4;
    // slice() copies out of the shared buffer: TextDecoder does not accept shared views.
    return textDecoder.decode(this.s.u8.slice(start, start + (this.i32[off + C_NAME_LEN] as number)));
  }

  // ---------------------------------------------------------------- records

  private allocRecord(): number {
    const i32 = this.i32;
    const head = i32[H_FREE_REC] as number;
    if (head === 0) {
      this.s.unlock();
      throw enospc('hold/wait records', this.s.nRec);
    }
    const r = head - 1;
    i32[H_FREE_REC] = i32[this.s.recOff(r) + R_NEXT] as number;
    return r;
  }

  private freeRecord(r: number): void {
    const i32 = this.i32;
    const off = this.s.recOff(r);
    i32[off + R_FLAGS] = 0;
    i32[off + R_NEXT] = i32[H_FREE_REC] as number;
    i32[H_FREE_REC] = r + 1;
  }

  /** Bumps the mutex's futex word and wakes its waiters in every thread (only if there are any). */
  private wake(moff: number): void {
    if (this.i32[moff + M_NWAITERS] === 0) return;
    Atomics.add(this.i32, moff + M_SEQ, 1);
    this.notify(moff + M_SEQ);
  }

  /**
   * Wakes the waiters on futex word `idx`: other threads through Atomics.notify, this thread's own directly.
   * A same-thread Atomics.notify only settles waitAsync on a later event-loop turn; resolving our own
   * waiters' promises lets them retry in a microtask, which matters when async tasks of one thread contend.
   */
  private notify(idx: number): void {
    Atomics.notify(this.i32, idx);
    const list = this.localWaiters.get(idx);
    if (list === undefined) return;
    // Only the first few: all of them re-polling in one microtask burst would stall the event loop with
    // 1000 waiters; the rest wake through their waitAsync (just notified), one task each.
    const woken = list.splice(0, LOCAL_WAKE_BATCH);
    if (list.length === 0) this.localWaiters.delete(idx);
    for (const wakeUp of woken) wakeUp();
  }

  /** The context's hold record on the mutex at `moff`, or -1. */
  private findHold(moff: number, c: number): number {
    const i32 = this.i32;
    const tag = c + 1;
    for (let p = i32[moff + M_HOLD_HEAD] as number; p !== 0; p = i32[this.s.recOff(p - 1) + R_NEXT] as number) {
      if (i32[this.s.recOff(p - 1) + R_CTX] === tag) return p - 1;
    }
    return -1;
  }

  /** Turns record r into a hold of (m, c): links it into the holder list and the context's hold list. */
  private addHold(m: number, moff: number, r: number, c: number, write: boolean, now: number): void {
    const i32 = this.i32;
    const roff = this.s.recOff(r);
    i32[roff + R_FLAGS] = RF_USED | (write ? RF_WRITE : 0);
    i32[roff + R_CTX] = c + 1;
    i32[roff + R_MUTEX] = m;
    i32[roff + R_THREAD] = this.threadId;
    i32[roff + R_PID] = this.pid;
    this.f64[(roff + R_SINCE) >> 1] = now;
    this.i64[(roff + R_TAG) >> 1] = 0n;
    i32[roff + R_NEXT] = i32[moff + M_HOLD_HEAD] as number;
    i32[moff + M_HOLD_HEAD] = r + 1;
    Atomics.store(i32, moff + M_NHOLDERS, (i32[moff + M_NHOLDERS] as number) + 1);
    if (write) i32[moff + M_WRITE_HELD] = 1;
    let deadline = Infinity;
    if (c >= 0) {
      const coff = this.s.ctxOff(c);
      const maxHold = i32[coff + C_MAX_HOLD] as number;
      if (maxHold > 0) deadline = now + maxHold;
      i32[roff + R_CTX_NEXT] = i32[coff + C_HOLD_HEAD] as number;
      i32[coff + C_HOLD_HEAD] = r + 1;
      Atomics.store(i32, coff + C_ACQUIRED, (i32[coff + C_ACQUIRED] as number) + 1);
    } else {
      i32[roff + R_CTX_NEXT] = 0;
    }
    this.f64[(roff + R_DEADLINE) >> 1] = deadline;
  }

  /**
   * Unlinks record r from the singly linked list whose head word is at `head`; `next` is the record field
   * that links this list (records are on two lists at once: their mutex's and their context's).
   * Links are record index + 1, 0 ending the list.
   */
  private unlink(head: number, r: number, next: number): void {
    const i32 = this.i32;
    const s = this.s;
    let prev = -1;
    for (let p = i32[head] as number; p !== 0; p = i32[s.recOff(p - 1) + next] as number) {
      if (p - 1 === r) {
        const after = i32[s.recOff(r) + next] as number;
        if (prev < 0) i32[head] = after;
        else i32[s.recOff(prev) + next] = after;
        return;
      }
      prev = p - 1;
    }
  }

  /** Unlinks hold r from its mutex and its context (the record itself is not freed). */
  private removeHold(moff: number, r: number): void {
    const i32 = this.i32;
    const s = this.s;
    const roff = s.recOff(r);
    this.unlink(moff + M_HOLD_HEAD, r, R_NEXT);
    Atomics.store(i32, moff + M_NHOLDERS, (i32[moff + M_NHOLDERS] as number) - 1);
    if (((i32[roff + R_FLAGS] as number) & RF_WRITE) !== 0) i32[moff + M_WRITE_HELD] = 0;
    const ctag = i32[roff + R_CTX] as number;
    if (ctag !== 0) {
      const coff = s.ctxOff(ctag - 1);
      this.unlink(coff + C_HOLD_HEAD, r, R_CTX_NEXT);
      const acquired = (i32[coff + C_ACQUIRED] as number) - 1;
      Atomics.store(i32, coff + C_ACQUIRED, acquired);
      // As in the kernel: a context that holds nothing is no longer wounded (it has backed off).
      if (acquired === 0) Atomics.and(i32, coff + C_FLAGS, ~CF_WOUNDED);
    }
  }

  /** Unlinks waiter w from the mutex's wait list and clears its context's waitingOn. */
  private removeWaiter(moff: number, w: number): void {
    const i32 = this.i32;
    const s = this.s;
    const woff = s.recOff(w);
    this.unlink(moff + M_WAIT_HEAD, w, R_NEXT);
    i32[moff + M_NWAITERS]--;
    if (((i32[woff + R_FLAGS] as number) & RF_WRITE) !== 0) i32[moff + M_NWRITERS_WAITING]--;
    const ctag = i32[woff + R_CTX] as number;
    if (ctag !== 0) i32[s.ctxOff(ctag - 1) + C_WAITING_ON] = 0;
  }

  // ---------------------------------------------------------------- acquire / wait

  acquire(m: number, c: number, write: boolean, flags: number): number {
    const s = this.s;
    const i32 = this.i32;
    const moff = s.mutexOff(m);
    let coff = -1;
    s.lock();
    if (c >= 0) {
      coff = s.ctxOff(c);
      const cf = i32[coff + C_FLAGS] as number;
      if ((cf & CF_FORCED) !== 0) {
        s.unlock();
        return FORCED;
      }
      if (i32[moff + M_NHOLDERS] !== 0 && this.findHold(moff, c) >= 0) {
        s.unlock();
        return EALREADY;
      }
    }
    // Fast path: nobody waits, so only the holders matter.
    const nwaiters = i32[moff + M_NWAITERS] as number;
    let prevOfInsert = -1; // record after which a waiter would be inserted (-1: at the head)
    let blocked = write ? i32[moff + M_NHOLDERS] !== 0 : i32[moff + M_WRITE_HELD] !== 0;
    let conflictAhead = false; // a queued request ahead of our position conflicts with ours
    let olderCtxAhead = false; // ... and it has a context (so it is older: the queue is in stamp order)
    if (nwaiters !== 0) {
      // Queue position as in the kernel's __ww_mutex_add_waiter: contexts in stamp order (oldest first),
      // ctx-less requests FIFO at the tail; a context is put before the first younger context that follows
      // the last older one, so ctx-less waiters between them keep their place.
      const stamp = c >= 0 ? (this.f64[(coff + C_STAMP) >> 1] as number) : Infinity;
      let last = -1;
      let cand = -1;
      let conflictSeen = false;
      let olderSeen = false;
      let candConflict = false;
      let candOlder = false;
      for (let p = i32[moff + M_WAIT_HEAD] as number; p !== 0; ) {
        const r = p - 1;
        const roff = s.recOff(r);
        const ctag = i32[roff + R_CTX] as number;
        if (c >= 0 && ctag !== 0) {
          if ((this.f64[(s.ctxOff(ctag - 1) + C_STAMP) >> 1] as number) < stamp) cand = -1;
          else if (cand < 0) {
            cand = r;
            candConflict = conflictSeen;
            candOlder = olderSeen;
            prevOfInsert = last;
          }
        }
        if (write || ((i32[roff + R_FLAGS] as number) & RF_WRITE) !== 0) {
          conflictSeen = true;
          if (ctag !== 0) olderSeen = true;
        }
        last = r;
        p = i32[roff + R_NEXT] as number;
      }
      if (cand >= 0) {
        conflictAhead = candConflict;
        olderCtxAhead = candOlder;
      } else {
        prevOfInsert = last;
        conflictAhead = conflictSeen;
        olderCtxAhead = olderSeen;
      }
      // A ctx-less request never passes anybody, and ww contexts only get ahead of younger ones.
      if (conflictAhead) blocked = true;
      if (c < 0 && olderCtxAhead) olderCtxAhead = false;
    }
    if (!blocked) {
      const r = this.allocRecord();
      this.addHold(m, moff, r, c, write, Date.now());
      // Waiters behind us may now have to die (wait-die) or wound us (wound-wait): let them re-check.
      if (nwaiters !== 0) this.wake(moff);
      s.unlock();
      this.lastRecord = r;
      return GRANTED;
    }
    if ((flags & F_TRY) !== 0) {
      s.unlock();
      return WOULD_BLOCK;
    }
    if (c >= 0 && (flags & F_WW) !== 0 && this.mustBackOff(moff, coff, olderCtxAhead)) {
      s.unlock();
      return EDEADLK;
    }
    // Queue a wait record.
    const w = this.allocRecord();
    const woff = s.recOff(w);
    i32[woff + R_FLAGS] = RF_USED | RF_WAITER | (write ? RF_WRITE : 0);
    i32[woff + R_CTX] = c + 1;
    i32[woff + R_MUTEX] = m;
    i32[woff + R_THREAD] = this.threadId;
    i32[woff + R_PID] = this.pid;
    i32[woff + R_CTX_NEXT] = 0;
    this.f64[(woff + R_SINCE) >> 1] = Date.now();
    this.f64[(woff + R_DEADLINE) >> 1] = Infinity;
    this.i64[(woff + R_TAG) >> 1] = 0n;
    if (prevOfInsert < 0) {
      i32[woff + R_NEXT] = i32[moff + M_WAIT_HEAD] as number;
      i32[moff + M_WAIT_HEAD] = w + 1;
    } else {
      const poff = s.recOff(prevOfInsert);
      i32[woff + R_NEXT] = i32[poff + R_NEXT] as number;
      i32[poff + R_NEXT] = w + 1;
    }
    i32[moff + M_NWAITERS]++;
    if (write) i32[moff + M_NWRITERS_WAITING]++;
    if (c >= 0) i32[coff + C_WAITING_ON] = m + 1;
    // Wait-die: younger waiters queued behind us must re-check and die if they hold locks (__ww_mutex_die).
    if (i32[woff + R_NEXT] !== 0) this.wake(moff);
    this.prepareWait(moff, c);
    s.unlock();
    this.lastRecord = w;
    return WAITING;
  }

  /**
   * The ww kill check for a request of context at `coff` that has to wait on the mutex at `moff`
   * (kernel __ww_mutex_check_kill, with shared holders). Every holder blocks a waiter, directly or through the
   * queued requests ahead of it, so all holders count. Wound-wait also wounds the younger holders here.
   * Returns true if the request must fail with EDEADLK.
   */
  private mustBackOff(moff: number, coff: number, olderCtxAhead: boolean): boolean {
    const i32 = this.i32;
    const s = this.s;
    const acquired = i32[coff + C_ACQUIRED] as number;
    const stamp = this.f64[(coff + C_STAMP) >> 1] as number;
    if (i32[moff + M_KIND] === KIND_WAIT_DIE) {
      if (acquired === 0) return false;
      // Wait-die: a context holding locks dies rather than wait for an older one.
      if (olderCtxAhead) return true;
      for (let p = i32[moff + M_HOLD_HEAD] as number; p !== 0; p = i32[s.recOff(p - 1) + R_NEXT] as number) {
        const ctag = i32[s.recOff(p - 1) + R_CTX] as number;
        if (ctag !== 0 && (this.f64[(s.ctxOff(ctag - 1) + C_STAMP) >> 1] as number) < stamp) return true;
      }
      return false;
    }
    // Wound-wait: a wounded context holding locks backs off; otherwise wound every younger holder.
    if (acquired > 0 && ((i32[coff + C_FLAGS] as number) & CF_WOUNDED) !== 0) return true;
    for (let p = i32[moff + M_HOLD_HEAD] as number; p !== 0; p = i32[s.recOff(p - 1) + R_NEXT] as number) {
      const ctag = i32[s.recOff(p - 1) + R_CTX] as number;
      if (ctag === 0) continue;
      const hoff = s.ctxOff(ctag - 1);
      if ((this.f64[(hoff + C_STAMP) >> 1] as number) <= stamp) continue;
      if (((i32[hoff + C_FLAGS] as number) & CF_WOUNDED) !== 0) continue;
      Atomics.or(i32, hoff + C_FLAGS, CF_WOUNDED);
      // If the wounded context is itself waiting somewhere, wake it so that it notices (and dies).
      const on = i32[hoff + C_WAITING_ON] as number;
      if (on !== 0) {
        const off = s.mutexOff(on - 1);
        Atomics.add(i32, off + M_SEQ, 1);
        this.notify(off + M_SEQ);
      }
    }
    return false;
  }

  /** Fills waitSeq / waitUntil / victim for a waiter of the mutex at `moff`. */
  private prepareWait(moff: number, c: number): void {
    const i32 = this.i32;
    const s = this.s;
    let until = Infinity;
    let victim = -1;
    const now = Date.now();
    for (let p = i32[moff + M_HOLD_HEAD] as number; p !== 0; p = i32[s.recOff(p - 1) + R_NEXT] as number) {
      const roff = s.recOff(p - 1);
      const d = this.f64[(roff + R_DEADLINE) >> 1] as number;
      if (d < until) until = d;
      if (d <= now && victim < 0 && i32[roff + R_CTX] !== c + 1) victim = (i32[roff + R_CTX] as number) - 1;
    }
    this.waitSeq = Atomics.load(i32, moff + M_SEQ);
    this.waitUntil = until;
    this.victim = victim;
  }

  poll(w: number, m: number, c: number, write: boolean, flags: number): number {
    const s = this.s;
    const i32 = this.i32;
    const moff = s.mutexOff(m);
    const coff = c >= 0 ? s.ctxOff(c) : -1;
    s.lock();
    if (c >= 0 && ((i32[coff + C_FLAGS] as number) & CF_FORCED) !== 0) {
      this.removeWaiter(moff, w);
      this.freeRecord(w);
      this.wake(moff);
      s.unlock();
      return FORCED;
    }
    let blocked = write ? i32[moff + M_NHOLDERS] !== 0 : i32[moff + M_WRITE_HELD] !== 0;
    let olderCtxAhead = false;
    for (let p = i32[moff + M_WAIT_HEAD] as number; p !== 0 && p - 1 !== w; ) {
      const roff = s.recOff(p - 1);
      if (write || ((i32[roff + R_FLAGS] as number) & RF_WRITE) !== 0) {
        blocked = true;
        if (c >= 0 && i32[roff + R_CTX] !== 0) {
          olderCtxAhead = true;
          break;
        }
      }
      p = i32[roff + R_NEXT] as number;
    }
    if (!blocked) {
      this.removeWaiter(moff, w);
      this.addHold(m, moff, w, c, write, Date.now());
      // Readers queued behind may be admitted too, and younger waiters may have to die: let them re-check.
      this.wake(moff);
      s.unlock();
      this.lastRecord = w;
      return GRANTED;
    }
    if (c >= 0 && (flags & F_WW) !== 0 && this.mustBackOff(moff, coff, olderCtxAhead)) {
      this.removeWaiter(moff, w);
      this.freeRecord(w);
      // A writer leaving the queue can unblock readers behind it.
      this.wake(moff);
      s.unlock();
      return EDEADLK;
    }
    this.prepareWait(moff, c);
    s.unlock();
    return WAITING;
  }

  cancel(w: number, m: number, _c: number): void {
    const s = this.s;
    const moff = s.mutexOff(m);
    s.lock();
    if (((this.i32[s.recOff(w) + R_FLAGS] as number) & RF_WAITER) !== 0) {
      this.removeWaiter(moff, w);
      this.freeRecord(w);
      this.wake(moff);
    }
    s.unlock();
  }

  kick(m: number): void {
    this.notify(this.s.mutexOff(m) + M_SEQ);
  }

  wait(m: number, seq: number, timeoutMs: number): Promise<unknown> | undefined {
    const idx = this.s.mutexOff(m) + M_SEQ;
    const res = waitAsync(this.i32, idx, seq, timeoutMs);
    if (!res.async) return undefined;
    // Settled by whichever comes first: a wake from this thread (notify above) or waitAsync (another
    // thread's notify, or the timeout); the loser is dropped so the list cannot grow.
    return new Promise((resolve) => {
      let list = this.localWaiters.get(idx);
      if (list === undefined) this.localWaiters.set(idx, (list = []));
      list.push(resolve as () => void);
      const own = list;
      (res.value as Promise<unknown>).then(() => {
        const i = own.indexOf(resolve as () => void);
        if (i >= 0) {
          own.splice(i, 1);
          if (own.length === 0 && this.localWaiters.get(idx) === own) this.localWaiters.delete(idx);
        }
        resolve(undefined);
      });
    });
  }

  // ---------------------------------------------------------------- release / force

  release(m: number, c: number, r: number): number {
    const s = this.s;
    const i32 = this.i32;
    const moff = s.mutexOff(m);
    s.lock();
    if (c >= 0) {
      r = i32[moff + M_NHOLDERS] !== 0 ? this.findHold(moff, c) : -1;
      if (r < 0) {
        const forced = ((i32[s.ctxOff(c) + C_FLAGS] as number) & CF_FORCED) !== 0;
        s.unlock();
        return forced ? FORCED : NOT_HELD;
      }
    } else {
      const roff = s.recOff(r);
      if (i32[roff + R_FLAGS] === 0 || ((i32[roff + R_FLAGS] as number) & RF_WAITER) !== 0 ||
          i32[roff + R_MUTEX] !== m || i32[roff + R_CTX] !== 0) {
        s.unlock();
        return NOT_HELD;
      }
    }
    this.removeHold(moff, r);
    this.freeRecord(r);
    this.wake(moff);
    if (i32[moff + M_REFS] === 0) this.maybeFreeMutex(m);
    s.unlock();
    return GRANTED;
  }

  setHoldTag(m: number, c: number, tag: bigint): boolean {
    const s = this.s;
    s.lock();
    const r = this.findHold(s.mutexOff(m), c);
    if (r >= 0) this.i64[(s.recOff(r) + R_TAG) >> 1] = BigInt.asIntN(64, tag);
    s.unlock();
    return r >= 0;
  }

  holds(m: number, c: number): boolean {
    const s = this.s;
    const moff = s.mutexOff(m);
    if (Atomics.load(this.i32, moff + M_NHOLDERS) === 0) return false;
    s.lock();
    const r = this.findHold(moff, c);
    s.unlock();
    return r >= 0;
  }

  earliestDeadline(c: number): number {
    const s = this.s;
    const i32 = this.i32;
    let d = Infinity;
    s.lock();
    for (let p = i32[s.ctxOff(c) + C_HOLD_HEAD] as number; p !== 0; p = i32[s.recOff(p - 1) + R_CTX_NEXT] as number) {
      const x = this.f64[(s.recOff(p - 1) + R_DEADLINE) >> 1] as number;
      if (x < d) d = x;
    }
    s.unlock();
    return d;
  }

  forceIfExpired(c: number, now: number): ForcedRelease | null {
    const s = this.s;
    const i32 = this.i32;
    if (c >= s.nCtx) return null;
    const coff = s.ctxOff(c);
    s.lock();
    try {
      const flags = i32[coff + C_FLAGS] as number;
      if ((flags & CF_USED) === 0 || (flags & CF_FORCED) !== 0) return null;
      let expired = false;
      for (let p = i32[coff + C_HOLD_HEAD] as number; p !== 0; p = i32[s.recOff(p - 1) + R_CTX_NEXT] as number) {
        if ((this.f64[(s.recOff(p - 1) + R_DEADLINE) >> 1] as number) <= now) {
          expired = true;
          break;
        }
      }
      if (!expired) return null;
      Atomics.or(i32, coff + C_FLAGS, CF_FORCED);
      const keys: bigint[] = [];
      const tags: bigint[] = [];
      while (i32[coff + C_HOLD_HEAD] !== 0) {
        const r = (i32[coff + C_HOLD_HEAD] as number) - 1;
        const roff = s.recOff(r);
        const m = i32[roff + R_MUTEX] as number;
        const moff = s.mutexOff(m);
        keys.push(this.mutexKey(m));
        const tag = this.i64[(roff + R_TAG) >> 1] as bigint;
        if (tag !== 0n) tags.push(tag);
        this.removeHold(moff, r);
        this.freeRecord(r);
        this.wake(moff);
        if (i32[moff + M_REFS] === 0) this.maybeFreeMutex(m);
      }
      // If the forced context is waiting for another lock, wake it there so that it fails with ETIMEDOUT.
      const on = i32[coff + C_WAITING_ON] as number;
      if (on !== 0) {
        const off = s.mutexOff(on - 1);
        Atomics.add(i32, off + M_SEQ, 1);
        this.notify(off + M_SEQ);
      }
      // Publish the forced context id: a futex word anybody can watch.
      i32[H_LAST_FORCED] = c + 1;
      Atomics.add(i32, H_FORCED_SEQ, 1);
      Atomics.notify(i32, H_FORCED_SEQ);
      return { ctxId: c, ctxName: this.ctxName(c), keys, tags };
    } finally {
      s.unlock();
    }
  }

  // ---------------------------------------------------------------- query

  query(): LockSnapshot {
    const s = this.s;
    const i32 = this.i32;
    const locks: LockSnapshot['locks'] = [];
    const info = (r: number): LockHolderInfo => {
      const roff = s.recOff(r);
      const ctag = i32[roff + R_CTX] as number;
      return {
        ctxName: ctag !== 0 ? this.ctxName(ctag - 1) : '',
        stamp: ctag !== 0 ? this.ctxStamp(ctag - 1) : null,
        mode: ((i32[roff + R_FLAGS] as number) & RF_WRITE) !== 0 ? 'write' : 'read',
        since: this.f64[(roff + R_SINCE) >> 1] as number,
        threadId: i32[roff + R_THREAD] as number,
        pid: i32[roff + R_PID] as number,
      };
    };
    s.lock();
    try {
      for (let m = 0; m < s.nMutex; m++) {
        const moff = s.mutexOff(m);
        if (i32[moff + M_STATE] !== SLOT_USED) continue;
        if (i32[moff + M_HOLD_HEAD] === 0 && i32[moff + M_WAIT_HEAD] === 0) continue;
        const holders: LockHolderInfo[] = [];
        const waiters: LockWaiterInfo[] = [];
        for (let p = i32[moff + M_HOLD_HEAD] as number; p !== 0; p = i32[s.recOff(p - 1) + R_NEXT] as number) {
          holders.push(info(p - 1));
        }
        for (let p = i32[moff + M_WAIT_HEAD] as number; p !== 0; p = i32[s.recOff(p - 1) + R_NEXT] as number) {
          waiters.push(info(p - 1));
        }
        locks.push({ key: this.mutexKey(m), holders, waiters });
      }
    } finally {
      s.unlock();
    }
    return { locks };
  }
}

// Created when the library is loaded, not on first lock: workers inherit the buffer only if it was
// published before they were spawned.
const store: LockStore = new SabLockStore(sharedState());

/** The thread's LockStore (over the process-wide shared state). */
export function lockStore(): LockStore {
  return store;
}
