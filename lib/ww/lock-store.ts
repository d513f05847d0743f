/**
 * The lock store: the interface WwMutex and AcquireContext talk to, and its one implementation over a
 * store file shared by every thread of every process of a domain (layout.ts, store-file.ts). Mutex and
 * context slots are managed here; the ww rules are in ww-rules.ts, records in records.ts, waking in
 * waking.ts, the snapshot in lock-query.ts.
 *
 * Handles are small integers: mutex slot `m`, context slot `c` (-1 = no context), record `r`. Return values
 * are numeric codes so that the uncontended path allocates nothing.
 * @internal
 */
import * as wt from 'node:worker_threads';
import { DmabufError } from '../errors';
import {
  CF_ORDERED,
  CF_USED,
  C_ACQUIRED,
  C_FLAGS,
  C_HOLD_HEAD,
  C_MAX_HOLD,
  C_NAME,
  C_NAME_LEN,
  C_NEXT_FREE,
  C_PART,
  C_REVOKED,
  C_STAMP,
  C_TOKEN,
  C_WAITING_ON,
  F_KEYCTR,
  I_STAMP,
  CF_PARKED,
  CF_FORCED,
  H_FREE_CTX,
  H_FREE_REC,
  M_HOLD_HEAD,
  M_KEY,
  M_KIND,
  M_NHOLDERS,
  M_NSPECIAL,
  M_NWAITERS,
  M_REFS,
  M_STATE,
  M_WAIT_HEAD,
  M_WAIT_TAIL,
  M_COHORT_PASSES,
  M_COHORT_HEAD,
  M_WRITE_HELD,
  NAME_BYTES,
  ORDERED_STAMP,
  R_DEADLINE,
  SLOT_EMPTY,
  SLOT_TOMB,
  SLOT_USED,
} from './layout';
import { queryTable, type LockSnapshot } from './lock-query';
import { DEFAULT_DOMAIN, checkDomain, openStore } from './store-file';
import { Table, debug, enospc, monoNow } from './table';
import { addRef, dropRef, freeMutexIfUnused, popRecord, recordsFull } from './records';
import { Waker } from './waking';
import { reapDeadAround, reapParticipant, recoverTable } from './recovery';
import * as rules from './ww-rules';
import type { ForcedRelease } from './ww-rules';

export { GRANTED, WAITING, WOULD_BLOCK, EDEADLK, EALREADY, FORCED, NOT_HELD, F_TRY, F_WW } from './ww-rules';
export type { ForcedRelease } from './ww-rules';
export type { LockSnapshot, LockHolderInfo, LockWaiterInfo } from './lock-query';
export { monoNow } from './table';

/** The storage behind the lock core (one per domain and thread). */
export interface LockStore {
  /** Scratch outputs of the last acquire/poll (valid until the next call on this thread). */
  lastRecord: number;
  /** The last grant found that the mutex's previous write holder died holding it (the data may be half written). */
  ownerDied: boolean;
  /** Earliest deadline (monotonic ms) of the holders the waiter may force. */
  waitUntil: number;
  victim: number;
  /** The monotonic time at which the last WAITING result was decided (see waitUntil). */
  now: number;
  /** The domain (store file name). */
  readonly domain: string;

  openMutex(key: bigint | undefined, kind: number): number;
  closeMutex(m: number): void;
  mutexKey(m: number): bigint;
  isLocked(m: number): boolean;

  /** A context slot; `ordered`: CF_ORDERED and the stamp offset by ORDERED_STAMP. */
  openContext(kind: number, name: string, maxHoldMs: number, ordered: boolean): number;
  /** Frees the slot; false (nothing done) if the context still holds or waits. */
  closeContext(c: number): boolean;
  ctxStamp(c: number): number;
  /** The watchdog deadline (monotonic ms, Infinity for none) of hold record r, as set when it was granted. */
  holdDeadline(r: number): number;
  ctxAcquired(c: number): number;
  ctxFlags(c: number): number;
  ctxName(c: number): string;

  acquire(m: number, c: number, write: boolean, flags: number): number;
  /** waitUnlocked's check (ww-rules.ts, watch): GRANTED when unlocked for the mode, else WAITING with a watch record. */
  watch(m: number, write: boolean, w: number): number;
  poll(w: number, m: number, c: number, write: boolean, flags: number): number;
  cancel(w: number, m: number, c: number): void;
  release(m: number, c: number, r: number): number;
  /** Counts a lock() of this thread waiting on m (+1 when it starts, -1 when it ends, however it ends). */
  noteWait(m: number, delta: 1 | -1): void;
  setHoldTag(m: number, c: number, tag: bigint): boolean;
  /** Whether context c holds mutex m. */
  holds(m: number, c: number): boolean;
  /** Earliest deadline (monotonic ms, see monoNow) of c's holds. */
  earliestDeadline(c: number): number;
  /**
   * Forces `c` off if one of its holds is past its deadline at monotonic `now` (or always with Infinity).
   * A holder in another process is forced only once its process revoked its CPU views (null until then).
   */
  forceIfExpired(c: number, now: number): ForcedRelease | null;
  /**
   * For a CPU view handed out under c's hold on m: tags the hold (setHoldTag) and returns the revocation token
   * of c's views (a mapping made with it is revoked when c is forced, from any process), in one pass. 0n if c
   * was already forced (it must not hand out views), -1n if c does not hold m.
   */
  tagHoldForView(m: number, c: number, tag: bigint): bigint;
  /**
   * Resolves when wait record `w` is kicked (its mutex changed so that it may proceed), or `timeoutMs` after
   * monotonic time `now` (default: the clock now); undefined if it already was.
   */
  wait(w: number, timeoutMs: number, now?: number, m?: number, c?: number): Promise<number> | undefined;
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

const textDecoder = new TextDecoder();

/** How often (at most) a waiting thread checks that the holders and waiters ahead of it are alive. */
const LIVENESS_CHECK_MS = 150;

/**
 * How many context slots a thread keeps for its next contexts (closeContext parks, openContext reuses):
 * most contexts lock and fini() within a loop turn, and a slot from the free list costs two table-lock
 * round trips per context. Few: other threads may need the slots.
 */
const PARKED_CONTEXTS = 8;

/** How many context names a thread keeps encoded (TableLockStore.nameBytes). */
const NAME_CACHE = 256;

/** A context name as stored in its slot: UTF-8, truncated to NAME_BYTES on a character boundary. */
function encodeName(name: string): Uint8Array {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length <= NAME_BYTES) return bytes;
  let end = NAME_BYTES;
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** LockStore over a store file (shared by every thread of every process of the domain). */
export class TableLockStore implements LockStore, rules.Core {
  lastRecord = -1;
  now = 0;
  waitUntil = Infinity;
  victim = -1;
  readonly domain: string;
  readonly t: Table;
  readonly waker: Waker;
  ownerDied = false;
  /** When this thread's waiters next check the liveness of those they wait for (monotonic ms). */
  private livenessCheckAt = 0;
  private readonly maybeFree = (m: number): void => freeMutexIfUnused(this.t, m);
  /** This thread's WwMutex objects per mutex slot, and the reference record that stands for them. */
  private readonly refs = new Map<number, { count: number; record: number }>();
  private readonly nameOf = (c: number): string => this.ctxName(c);
  /**
   * Context names already encoded (openContext), truncated to NAME_BYTES: tasks and sync objects lock again
   * and again under a few names each (a swap chain's buffers by turns), and encoding one costs as much as a
   * third of an uncontended lock. Emptied when it reaches NAME_CACHE entries (names made per call, e.g.
   * with a counter, must not grow it).
   */
  private readonly nameBytes = new Map<string, Uint8Array>();
  /** lock() calls of this thread waiting, per mutex slot (noteWait). */
  private readonly localWaits: Int32Array;
  /** This thread's parked context slots (see PARKED_CONTEXTS). */
  private readonly parked: number[] = [];
  /** The name encoding last written into each context slot by this thread (skips rewriting it). */
  private readonly slotNames: Array<Uint8Array | undefined> = [];

  constructor(domain: string, gid?: number) {
    this.domain = domain;
    const file = openStore(domain, gid);
    this.t = new Table(file);
    this.waker = new Waker(this.t, rules.forEachReady);
    this.localWaits = new Int32Array(this.t.nMutex);
    this.t.recover = () => recoverTable(this.t, this.waker);
    this.t.reap = (p) => void reapParticipant(this.t, this.waker, p);
    this.t.start();
    debug('thread %d attached to lock store %s as participant %d%s', wt.threadId, file.path, this.t.self, file.formatted ? ' (formatted it)' : '');
  }

  // ---------------------------------------------------------------- mutex slots

  openMutex(key: bigint | undefined, kind: number): number {
    const t = this.t;
    const i32 = t.i32;
    t.lock();
    try {
      if (key === undefined) {
        // Fresh keys are negative so they can never collide with inode numbers.
        const n = (t.f64[F_KEYCTR] as number) + 1;
        t.f64[F_KEYCTR] = n;
        key = -BigInt(n);
      }
      key = BigInt.asIntN(64, key);
      const n = t.nMutex;
      let i = hashKey(key, n);
      let tomb = -1;
      for (let probe = 0; probe < n; probe++, i = i + 1 === n ? 0 : i + 1) {
        const off = t.mutexOff(i);
        const st = i32[off + M_STATE];
        if (st === SLOT_EMPTY) break;
        if (st === SLOT_TOMB) {
          if (tomb < 0) tomb = i;
          continue;
        }
        if (t.i64[(off + M_KEY) >> 1] === key) {
          if (i32[off + M_KIND] !== kind) {
            throw new DmabufError(
              'EINVAL',
              `lock key ${key} is already used with the other ww class kind: every WwMutex of one key must use ` +
                `the same kind ('wound-wait' or 'wait-die'), or deadlock avoidance breaks`,
            );
          }
          if (!this.addRef(i)) throw recordsFull(t);
          return i;
        }
      }
      const slot = tomb >= 0 ? tomb : i32[t.mutexOff(i) + M_STATE] === SLOT_EMPTY ? i : -1;
      if (slot < 0) throw enospc('mutex slots', n);
      if (i32[H_FREE_REC] === 0) throw recordsFull(t);
      const off = t.mutexOff(slot);
      t.i64[(off + M_KEY) >> 1] = key;
      i32[off + M_REFS] = 0;
      i32[off + M_KIND] = kind;
      i32[off + M_HOLD_HEAD] = 0;
      i32[off + M_WAIT_HEAD] = 0;
      i32[off + M_WAIT_TAIL] = 0;
      i32[off + M_COHORT_PASSES] = 0;
      i32[off + M_COHORT_HEAD] = 0;
      i32[off + M_NHOLDERS] = 0;
      i32[off + M_NWAITERS] = 0;
      i32[off + M_NSPECIAL] = 0;
      i32[off + M_WRITE_HELD] = 0;
      Atomics.store(i32, off + M_STATE, SLOT_USED);
      this.addRef(slot); // a free record was checked above
      return slot;
    } finally {
      t.unlock();
    }
  }

  closeMutex(m: number): void {
    const ref = this.refs.get(m);
    if (ref === undefined) return;
    if (--ref.count > 0) return;
    this.refs.delete(m);
    const t = this.t;
    t.lock();
    dropRef(t, ref.record);
    t.unlock();
  }

  /**
   * Counts one more WwMutex of this thread on slot m; the first one takes a reference record (the table
   * is locked). Returns false (nothing changed) when the record pool is empty.
   */
  private addRef(m: number): boolean {
    const ref = this.refs.get(m);
    if (ref !== undefined) {
      ref.count++;
      return true;
    }
    const r = popRecord(this.t);
    if (r < 0) return false;
    addRef(this.t, m, r, this.t.self);
    this.refs.set(m, { count: 1, record: r });
    return true;
  }

  mutexKey(m: number): bigint {
    return this.t.i64[(this.t.mutexOff(m) + M_KEY) >> 1] as bigint;
  }

  isLocked(m: number): boolean {
    return Atomics.load(this.t.i32, this.t.mutexOff(m) + M_NHOLDERS) > 0;
  }

  // ---------------------------------------------------------------- contexts

  openContext(_kind: number, name: string, maxHoldMs: number, ordered: boolean): number {
    let bytes = this.nameBytes.get(name);
    if (bytes === undefined) {
      bytes = encodeName(name);
      if (this.nameBytes.size >= NAME_CACHE) this.nameBytes.clear();
      this.nameBytes.set(name, bytes);
    }
    const t = this.t;
    const i32 = t.i32;
    // A slot this thread parked at a fini() needs no table lock: it is off the free list and nobody else
    // reads it (no record names it). A fresh one is taken off the free list under the lock, marked used and
    // ours there (a recovery's rebuild must not see it free), and filled in outside like a parked one.
    let c = this.parked.pop();
    if (c === undefined) c = this.takeFreeContext();
    const off = t.ctxOff(c);
    // Stamps need no lock either: one atomic counter, as the kernel's ww_class stamp (atomic_long_inc_return).
    const stamp = Number(Atomics.add(t.i64, I_STAMP, 1n)) + 1;
    t.f64[(off + C_STAMP) >> 1] = ordered ? stamp + ORDERED_STAMP : stamp;
    i32[off + C_ACQUIRED] = 0;
    i32[off + C_MAX_HOLD] = maxHoldMs;
    i32[off + C_WAITING_ON] = 0;
    i32[off + C_HOLD_HEAD] = 0;
    t.i64[(off + C_TOKEN) >> 1] = 0n;
    t.i64[(off + C_REVOKED) >> 1] = 0n;
    if (this.slotNames[c] !== bytes) {
      i32[off + C_NAME_LEN] = bytes.length;
      t.u8.set(bytes, (off + C_NAME) * 4);
      this.slotNames[c] = bytes;
    }
    // Published with the flags: another thread reads the fields only after seeing a record of this context,
    // which it does under the table lock, after this store.
    Atomics.store(i32, off + C_FLAGS, ordered ? CF_USED | CF_ORDERED : CF_USED);
    return c;
  }

  /** Takes a slot off the free list (table locked), marks it used by this participant; ENOSPC if none. */
  private takeFreeContext(): number {
    const t = this.t;
    const i32 = t.i32;
    t.lock();
    try {
      const head = i32[H_FREE_CTX] as number;
      if (head === 0) throw enospc('acquire context slots', t.nCtx);
      const c = head - 1;
      const off = t.ctxOff(c);
      i32[H_FREE_CTX] = i32[off + C_NEXT_FREE] as number;
      i32[off + C_PART] = t.self;
      i32[off + C_HOLD_HEAD] = 0;
      i32[off + C_WAITING_ON] = 0;
      i32[off + C_ACQUIRED] = 0;
      Atomics.store(i32, off + C_FLAGS, CF_PARKED);
      this.slotNames[c] = undefined;
      return c;
    } finally {
      t.unlock();
    }
  }

  closeContext(c: number): boolean {
    const t = this.t;
    const i32 = t.i32;
    const off = t.ctxOff(c);
    const flags = Atomics.load(i32, off + C_FLAGS);
    if ((flags & CF_USED) === 0) return true;
    // Only this thread adds holds or waits of its context; another thread (a forced release, a recovery)
    // only removes them: "holds nothing" read without the lock cannot be undone behind our back. (Anything
    // else is re-checked under the lock below: a forced release may be half way.)
    const idle = Atomics.load(i32, off + C_HOLD_HEAD) === 0 && Atomics.load(i32, off + C_WAITING_ON) === 0;
    if (idle && this.parked.length < PARKED_CONTEXTS && (flags & CF_FORCED) === 0) {
      // Kept for this thread's next context; other threads ignore it (no CF_USED), a recovery frees it with
      // this participant's other slots when it dies.
      Atomics.store(i32, off + C_FLAGS, CF_PARKED);
      this.parked.push(c);
      return true;
    }
    t.lock();
    try {
      if (((i32[off + C_FLAGS] as number) & CF_USED) === 0) return true;
      if (i32[off + C_HOLD_HEAD] !== 0 || i32[off + C_WAITING_ON] !== 0) return false;
      Atomics.store(i32, off + C_FLAGS, 0);
      i32[off + C_ACQUIRED] = 0;
      i32[off + C_NEXT_FREE] = i32[H_FREE_CTX] as number;
      i32[H_FREE_CTX] = c + 1;
      return true;
    } finally {
      t.unlock();
    }
  }

  holdDeadline(r: number): number {
    return this.t.f64[(this.t.recOff(r) + R_DEADLINE) >> 1] as number;
  }
  ctxStamp(c: number): number {
    return this.t.f64[(this.t.ctxOff(c) + C_STAMP) >> 1] as number;
  }
  ctxAcquired(c: number): number {
    return Atomics.load(this.t.i32, this.t.ctxOff(c) + C_ACQUIRED);
  }
  ctxFlags(c: number): number {
    return Atomics.load(this.t.i32, this.t.ctxOff(c) + C_FLAGS);
  }
  ctxName(c: number): string {
    const off = this.t.ctxOff(c);
    const start = (off + C_NAME) * 4;
    return textDecoder.decode(this.t.u8.subarray(start, start + (this.t.i32[off + C_NAME_LEN] as number)));
  }

  // ---------------------------------------------------------------- the ww rules

  acquire(m: number, c: number, write: boolean, flags: number): number {
    return rules.acquire(this, m, c, write, flags);
  }
  watch(m: number, write: boolean, w: number): number {
    if (w >= 0 && monoNow() >= this.livenessCheckAt) {
      this.livenessCheckAt = monoNow() + LIVENESS_CHECK_MS;
      reapDeadAround(this.t, this.waker, m);
    }
    return rules.watch(this, m, write, w);
  }
  poll(w: number, m: number, c: number, write: boolean, flags: number): number {
    // A waiter checks now and then that the participants it waits for are alive: a dead holder or a dead
    // waiter ahead is removed within a wait period (the wait loop sleeps at most 250 ms at a time).
    const now = monoNow();
    if (now >= this.livenessCheckAt) {
      this.livenessCheckAt = now + LIVENESS_CHECK_MS;
      reapDeadAround(this.t, this.waker, m);
    }
    return rules.poll(this, w, m, c, write, flags, now);
  }
  cancel(w: number, m: number, c: number): void {
    rules.cancel(this, w, m, c);
  }
  noteWait(m: number, delta: 1 | -1): void {
    this.localWaits[m] = (this.localWaits[m] as number) + delta;
  }
  release(m: number, c: number, r: number): number {
    // No lock() of this thread waits for m, so no cohort pass can keep it here: whoever waits first will be
    // woken, and its ring can start now (see Waker.ringAhead).
    if (this.localWaits[m] === 0) this.waker.ringAhead(this.t.mutexOff(m));
    return rules.release(this, m, c, r, this.maybeFree);
  }
  setHoldTag(m: number, c: number, tag: bigint): boolean {
    return rules.setHoldTag(this, m, c, tag);
  }
  holds(m: number, c: number): boolean {
    return rules.holds(this, m, c);
  }
  earliestDeadline(c: number): number {
    return rules.earliestDeadline(this, c);
  }
  forceIfExpired(c: number, now: number): ForcedRelease | null {
    return rules.forceIfExpired(this, c, now, this.nameOf, this.maybeFree);
  }
  tagHoldForView(m: number, c: number, tag: bigint): bigint {
    return rules.tagHoldForView(this, m, c, tag);
  }

  // ---------------------------------------------------------------- waiting, query

  wait(w: number, timeoutMs: number, now?: number, m?: number, c?: number): Promise<number> | undefined {
    return this.waker.wait(w, timeoutMs, now, m, c);
  }

  query(): LockSnapshot {
    return queryTable(this.t, this.nameOf, (c) => this.ctxStamp(c), monoNow());
  }
}

const stores = new Map<string, LockStore>();

/**
 * This thread's store of `domain` (default: the user's default domain; with `gid`, that group's shared
 * domain), opened on first use. Every thread opens the file itself: its liveness lock is its own.
 */
export function lockStore(domain: string = DEFAULT_DOMAIN, gid?: number): LockStore {
  const id = gid === undefined ? domain : `${domain}@${gid}`;
  let s = stores.get(id);
  if (s === undefined) {
    s = new TableLockStore(checkDomain(domain), gid);
    stores.set(id, s);
  }
  return s;
}
