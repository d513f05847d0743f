/**
 * The lock store's layout: word offsets of every shared field, and the capacities. The store is one file
 * mapped MAP_SHARED by every thread of every process that locks in its domain (see store-file.ts); all
 * fields are 32-bit words, 64-bit fields sit at even word offsets so that Float64Array / BigInt64Array views
 * alias them. Links between records are "index + 1", 0 ending a list.
 *
 *   header        HEADER_WORDS              table lock, magic, version, capacities, free lists, counters
 *   participants  nPart    x PART_WORDS     one per thread (of any process) attached to the store
 *   mutexes       nMutex   x MUTEX_WORDS    open-addressing table keyed by a bigint key
 *   contexts      nCtx     x CTX_WORDS      acquire contexts
 *   records       nRec     x REC_WORDS      hold and wait records, linked per mutex and per context
 *
 * Byte locks (OFD, fcntl) on the file: byte 0 decides who formats it (see store-file.ts); byte
 * LIVE_BYTE_BASE + p is held exclusively by the thread attached as participant p for as long as it lives.
 * @internal
 */
import { DmabufError } from '../errors';

/** 'dmbS': a cross-process store. Bumped with every change of the layout below. */
export const MAGIC = 0x64_6d_62_53;
export const VERSION = 7;

// ---- header (word offsets) ----
/** Table lock: 0 free, else the owner's participant index + 1, with CONTENDED set when someone sleeps on it. */
export const H_LOCK = 0;
export const H_MAGIC = 1;
export const H_VERSION = 2;
export const H_NPART = 3;
export const H_NMUTEX = 4;
export const H_NCTX = 5;
export const H_NREC = 6;
/** Free record list head (record + 1; 0 = empty). */
export const H_FREE_REC = 7;
/** Free context list head (slot + 1; 0 = empty). */
export const H_FREE_CTX = 8;
/**
 * i64 index (not word index) of the stamp counter, bumped with Atomics.add outside the table lock (opening a
 * context takes no table lock), and f64 index of the unique-key counter.
 */
export const I_STAMP = 8; // words 16..17
export const F_KEYCTR = 9; // words 18..19
export const HEADER_WORDS = 32;

/** Bit of H_LOCK: a thread sleeps (futex) on the table lock; the unlocker must wake one. */
export const CONTENDED = 1 << 30;

// ---- participant (a thread attached to the store) ----
export const PART_WORDS = 8;
/** 0 free, 1 attached. */
export const P_STATE = 0;
export const P_PID = 1;
export const P_THREAD = 2;
/** Futex word: bumped by anyone who changed a mutex this participant waits on; its doorbell thread wakes. */
export const P_DOORBELL = 3;
/**
 * A revocation request to this participant's revoker thread (native/futex.cc), posted by a watchdog of
 * another process under the table lock: i64 token (words 4..5), the word index of the context's C_REVOKED
 * field to acknowledge into, and the seqlock/futex word (odd while being written).
 */
export const P_REVOKE_TOKEN = 4;
export const P_REVOKE_ACK_AT = 6;
export const P_REVOKE_REQ = 7;

// ---- mutex slot ----
export const MUTEX_WORDS = 16;
/** bigint key: words 0..1 (BigInt64Array index = word / 2). */
export const M_KEY = 0;
/** 0 empty, 1 used, 2 tombstone. */
export const M_STATE = 2;
/** Threads (participants, of any process) referencing the slot: one RF_REF record each. */
export const M_REFS = 3;
/**
 * Queued records that a release may have to kick from anywhere in the queue: watchers, and requests of
 * unordered contexts (their wound/die checks can act behind a queued writer). With none, forEachReady stops
 * at the first queued write request (ww-rules.ts).
 */
export const M_NSPECIAL = 4;
export const M_NWAITERS = 5;
export const M_HOLD_HEAD = 6;
export const M_WAIT_HEAD = 7;
export const M_NHOLDERS = 8;
export const M_WRITE_HELD = 9;
/** Class kind: KIND_WOUND_WAIT or KIND_WAIT_DIE. */
export const M_KIND = 10;
/** 1 when a write holder died holding it: the next locker is told (ownerDied), which clears it. */
export const M_OWNER_DIED = 11;
/** The last record of the wait queue (+ 1; 0: empty): a request usually goes there (ww-rules.ts queueSpot). */
export const M_WAIT_TAIL = 12;
/**
 * Cohort passes (ww-rules.ts handOff): how many times a release passed the mutex to its participant's own
 * waiter over the head of the queue, and that head's record (+ 1): passes over one head are bounded, whoever
 * makes them (a reused record may count on: fewer passes, never more).
 */
export const M_COHORT_PASSES = 13;
export const M_COHORT_HEAD = 14;

export const SLOT_EMPTY = 0;
export const SLOT_USED = 1;
export const SLOT_TOMB = 2;
export const KIND_WOUND_WAIT = 1;
export const KIND_WAIT_DIE = 2;

// ---- context slot ----
export const CTX_WORDS = 32;
/** f64 stamp: words 0..1. */
export const C_STAMP = 0;
export const C_FLAGS = 2;
export const C_ACQUIRED = 3;
export const C_MAX_HOLD = 4;
/** Participant (thread) that owns the context. */
export const C_PART = 5;
/** Mutex slot + 1 the context is waiting on (0 = none): a wound or force wakes it there. */
export const C_WAITING_ON = 6;
/** Head of the context's hold records (record + 1), linked through R_CTX_NEXT. */
export const C_HOLD_HEAD = 7;
export const C_NEXT_FREE = 8;
export const C_NAME_LEN = 9;
/**
 * i64 revocation token of the context's CPU views (words 10..11; 0 = it handed out none yet, see
 * tagHoldForView), and the last token its process's revoker acknowledged revoking (words 12..13).
 */
export const C_TOKEN = 10;
export const C_REVOKED = 12;
export const C_NAME = 16; // 12 words = 48 bytes
export const NAME_BYTES = 48;

export const CF_USED = 1;
export const CF_WOUNDED = 2;
export const CF_FORCED = 4;
/**
 * The context takes its mutexes in ascending key order (AcquireContextOptions.ordered): two such contexts
 * never wound or kill each other, and its stamp is offset by ORDERED_STAMP so that it is younger than every
 * context without the flag (docs/design.md, "Ordered contexts").
 */
export const CF_ORDERED = 8;
/**
 * A slot kept by its participant (C_PART) for its next context instead of going back to the free list (see
 * LockStore.closeContext): not a live context (no CF_USED), freed like one when that participant dies.
 */
export const CF_PARKED = 16;
/** Added to an ordered context's stamp (stamps count far below it: 2^52 acquire contexts). */
export const ORDERED_STAMP = 2 ** 52;

// ---- hold / wait record ----
export const REC_WORDS = 16;
/** Next record in the mutex's holder or waiter list, or in the free list. */
export const R_NEXT = 0;
/** Next hold of the same context. */
export const R_CTX_NEXT = 1;
export const R_FLAGS = 2;
/** Context slot + 1 (0 = ctx-less). */
export const R_CTX = 3;
export const R_MUTEX = 4;
/** Participant (thread) that made the request. */
export const R_PART = 5;
/** f64 since and deadline (CLOCK_MONOTONIC ms, one clock for all processes): words 8..9, 10..11; i64 tag: 12..13. */
export const R_SINCE = 8;
export const R_DEADLINE = 10;
export const R_TAG = 12;

export const RF_WRITE = 1;
export const RF_WAITER = 2;
/** Set on every record in use, so that a free record's flags read 0. */
export const RF_USED = 4;
/**
 * With RF_WAITER: a watcher (waitUnlocked) in the waiter list, to be woken like a waiter; it is never
 * granted, and no request counts it as queued ahead.
 */
export const RF_WATCH = 8;
/**
 * A reference record: participant R_PART has WwMutex objects of mutex R_MUTEX (counted in its thread). On
 * no list; reaped with the participant, so a dead process's references do not keep slots forever.
 */
export const RF_REF = 16;
/**
 * With RF_WAITER: the waiter was kicked (waking.ts): a change lets it proceed, or it must back off. Set by
 * the changer, cleared by the waiter's own re-check, both under the table lock.
 */
export const RF_KICK = 32;
/**
 * With RF_WATCH: the mutex was unlocked for the watcher's mode at some point since it queued (set with its
 * kick): the watch is over, even if somebody locked it again before the watcher's thread got to run.
 */
export const RF_UNLOCKED = 64;

/** Byte locked (OFD) by whoever formats the store, shared by everyone attached. */
export const FORMAT_BYTE = 0;
/** Byte LIVE_BYTE_BASE + p: held exclusively by participant p while its thread lives. */
export const LIVE_BYTE_BASE = 1;

/** Environment variable overriding the capacities (see parseCapacity). */
export const CAPACITY_ENV = 'DMABUF_SYNC_CAPACITY';

/** Capacities of the fixed tables. */
export interface Capacity {
  participants: number;
  mutexes: number;
  contexts: number;
  records: number;
}

export const DEFAULT_CAPACITY: Readonly<Capacity> = { participants: 256, mutexes: 4096, contexts: 8192, records: 32768 };

/** Bytes of a store with these capacities. */
export function storeBytes(cap: Capacity): number {
  const words =
    HEADER_WORDS + cap.participants * PART_WORDS + cap.mutexes * MUTEX_WORDS + cap.contexts * CTX_WORDS + cap.records * REC_WORDS;
  // Whole pages, so that the mapping covers the file exactly.
  return Math.ceil((words * 4) / 65536) * 65536;
}

/**
 * Parses DMABUF_SYNC_CAPACITY: either one number N (mutexes = N, contexts = 2N, records = 8N) or a list
 * like "participants=64,mutexes=1024,contexts=2048,records=8192" (missing fields keep their defaults).
 * Invalid values throw EINVAL rather than silently running with a surprising size. Only the process that
 * formats a store reads it; the others use the capacities written in the store.
 */
export function parseCapacity(text: string | undefined): Capacity {
  const cap: Capacity = { ...DEFAULT_CAPACITY };
  if (text === undefined || text.trim() === '') return cap;
  const bad = (): never => {
    throw new DmabufError(
      'EINVAL',
      `${CAPACITY_ENV}="${text}" is not valid: use a number N (N mutexes, 2N contexts, 8N records) or ` +
        `"participants=N,mutexes=N,contexts=N,records=N" with integers from 2 (participants) or 16 to 16777216`,
    );
  };
  const num = (s: string, min: number): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min || n > 1 << 24) bad();
    return n;
  };
  if (/^\s*\d+\s*$/.test(text)) {
    const n = num(text.trim(), 16);
    return { ...cap, mutexes: n, contexts: 2 * n, records: 8 * n };
  }
  for (const part of text.split(',')) {
    const [k, v] = part.split('=').map((s) => s.trim());
    if (v === undefined || !(k === 'participants' || k === 'mutexes' || k === 'contexts' || k === 'records')) bad();
    cap[k as keyof Capacity] = num(v as string, k === 'participants' ? 2 : 16);
  }
  return cap;
}
