/**
 * The lock core's shared memory: one SharedArrayBuffer holding every mutex, acquire context and hold/wait
 * record of the process, so that all worker_threads see the same locks. This file owns only the layout,
 * the table spinlock and how the buffer is created and handed to workers; the lock semantics live in
 * lock-table.ts.
 *
 * Layout (32-bit words; 64-bit fields sit at even word offsets so Float64Array/BigInt64Array views alias them):
 *
 *   header   [0, HEADER_WORDS)            spinlock word, magic, capacities, free lists, force publication,
 *                                         f64 stamp counter and unique-key counter
 *   mutexes  nMutex   x MUTEX_WORDS       open-addressing table keyed by a bigint key
 *   contexts nContext x CTX_WORDS         acquire context slots (stamp, flags, acquired, name, ...)
 *   records  nRecord  x REC_WORDS         pool of hold/wait records, linked per mutex and per context
 *
 * @internal
 */
import { debuglog } from 'node:util';
import * as wt from 'node:worker_threads';
import { DmabufError } from '../errors';

/** Debug log for the lock core (`NODE_DEBUG=dmabuf-sync`). */
export const debug = debuglog('dmabuf-sync');

/** Key under which the main thread publishes the buffer with worker_threads.setEnvironmentData. */
export const ENV_DATA_KEY = 'dmabuf-sync:state:v1';
/** Environment variable overriding the capacities (see parseCapacity). */
export const CAPACITY_ENV = 'DMABUF_SYNC_CAPACITY';

const MAGIC = 0x64_6d_62_31; // 'dmb1'

// ---- header (word offsets) ----
export const H_LOCK = 0;
export const H_MAGIC = 1;
export const H_NMUTEX = 2;
export const H_NCTX = 3;
export const H_NREC = 4;
/** Free record list head (record index + 1; 0 = empty). */
export const H_FREE_REC = 5;
/** Free context list head (slot + 1; 0 = empty). */
export const H_FREE_CTX = 6;
/** Bumped (and notified) each time a context is forced off: a futex word for anyone watching forces. */
export const H_FORCED_SEQ = 7;
/** The last context forced off (slot + 1). */
export const H_LAST_FORCED = 8;
/** Mutex slots in use (not counting tombstones). */
export const H_MUTEX_USED = 9;
/** f64 index (not word index) of the stamp counter and of the unique-key counter. */
export const F_STAMP = 8; // words 16..17
export const F_KEYCTR = 9; // words 18..19
export const HEADER_WORDS = 32;

// ---- mutex slot (word offsets inside the slot) ----
export const MUTEX_WORDS = 16;
/** bigint key: words 0..1 (BigInt64Array index = word / 2). */
export const M_KEY = 0;
/** 0 empty, 1 used, 2 tombstone. */
export const M_STATE = 2;
/** WwMutex objects (any thread) referencing the slot. */
export const M_REFS = 3;
/** Futex word: bumped on every change that could let a waiter proceed. */
export const M_SEQ = 4;
export const M_NWAITERS = 5;
export const M_NWRITERS_WAITING = 6;
export const M_HOLD_HEAD = 7;
export const M_WAIT_HEAD = 8;
export const M_NHOLDERS = 9;
export const M_WRITE_HELD = 10;
/** Class kind of the mutex: KIND_WOUND_WAIT or KIND_WAIT_DIE. */
export const M_KIND = 11;

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
export const C_THREAD = 5;
export const C_PID = 6;
/** Mutex slot + 1 the context is waiting on (0 = none): a wound or force notifies it there. */
export const C_WAITING_ON = 7;
/** Head of the context's hold records (record + 1), linked through R_CTX_NEXT. */
export const C_HOLD_HEAD = 8;
export const C_NEXT_FREE = 9;
export const C_NAME_LEN = 10;
export const C_KIND = 11;
export const C_GEN = 12;
export const C_NAME = 16; // 12 words = 48 bytes
export const NAME_BYTES = 48;

export const CF_USED = 1;
export const CF_WOUNDED = 2;
export const CF_FORCED = 4;

// ---- hold / wait record ----
export const REC_WORDS = 16;
/** Next record in the mutex's holder or waiter list (record + 1), or in the free list. */
export const R_NEXT = 0;
/** Next hold of the same context (record + 1). */
export const R_CTX_NEXT = 1;
export const R_FLAGS = 2;
/** Context slot + 1 (0 = ctx-less). */
export const R_CTX = 3;
export const R_MUTEX = 4;
export const R_THREAD = 5;
export const R_PID = 6;
/** f64 since (Date.now()): words 8..9; f64 deadline: words 10..11; i64 tag: words 12..13. */
export const R_SINCE = 8;
export const R_DEADLINE = 10;
export const R_TAG = 12;

export const RF_WRITE = 1;
export const RF_WAITER = 2;
export const RF_USED = 4;

/** Capacities of the fixed tables. */
export interface Capacity {
  mutexes: number;
  contexts: number;
  records: number;
}

export const DEFAULT_CAPACITY: Readonly<Capacity> = { mutexes: 4096, contexts: 8192, records: 32768 };

/**
 * Parses DMABUF_SYNC_CAPACITY: either one number N (mutexes = N, contexts = 2N, records = 8N) or a list
 * like "mutexes=1024,contexts=2048,records=8192" (missing fields keep their defaults).
 * Invalid values throw EINVAL rather than silently running with a surprising size.
 */
export function parseCapacity(text: string | undefined): Capacity {
  const cap: Capacity = { ...DEFAULT_CAPACITY };
  if (text === undefined || text.trim() === '') return cap;
  const bad = (): never => {
    throw new DmabufError(
      'EINVAL',
      `${CAPACITY_ENV}="${text}" is not valid: use a number N (N mutexes, 2N contexts, 8N records) or ` +
        `"mutexes=N,contexts=N,records=N" with integers from 16 to 16777216`,
    );
  };
  const num = (s: string): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 16 || n > 1 << 24) bad();
    return n;
  };
  if (/^\s*\d+\s*$/.test(text)) {
    const n = num(text.trim());
    return { mutexes: n, contexts: 2 * n, records: 8 * n };
  }
  for (const part of text.split(',')) {
    const [k, v] = part.split('=').map((s) => s.trim());
    if (v === undefined || !(k === 'mutexes' || k === 'contexts' || k === 'records')) bad();
    cap[k as keyof Capacity] = num(v as string);
  }
  return cap;
}

/** Typed views over the shared buffer plus the region bases, computed once per thread. */
/** How long a thread waits for the table's critical section before declaring its owner dead. */
const WEDGED_MS = 2000;

function wedgedError(): DmabufError {
  return new DmabufError(
    'EOWNERDEAD',
    'the shared lock table has been held for over 2 s: a worker_thread was most likely terminate()d in the middle ' +
      'of a lock operation. Let workers finish their lock calls before terminating them; restart the process to recover',
  );
}

export class SharedState {
  readonly sab: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly i64: BigInt64Array;
  readonly u8: Uint8Array;
  readonly nMutex: number;
  readonly nCtx: number;
  readonly nRec: number;
  /** Word offsets of the regions. */
  readonly mutexBase: number;
  readonly ctxBase: number;
  readonly recBase: number;
  /** Worker threads may Atomics.wait on the spinlock; the main thread must only spin. */
  private readonly canBlock: boolean;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.i32 = new Int32Array(sab);
    this.f64 = new Float64Array(sab);
    this.i64 = new BigInt64Array(sab);
    this.u8 = new Uint8Array(sab);
    if (this.i32[H_MAGIC] !== MAGIC) throw new Error('dmabuf-sync: shared lock state has the wrong layout version');
    this.nMutex = this.i32[H_NMUTEX] as number;
    this.nCtx = this.i32[H_NCTX] as number;
    this.nRec = this.i32[H_NREC] as number;
    this.mutexBase = HEADER_WORDS;
    this.ctxBase = this.mutexBase + this.nMutex * MUTEX_WORDS;
    this.recBase = this.ctxBase + this.nCtx * CTX_WORDS;
    this.canBlock = !wt.isMainThread;
  }

  /** Allocates and formats a new buffer: empty tables, every context and record on its free list. */
  static create(cap: Capacity): SharedArrayBuffer {
    const words = HEADER_WORDS + cap.mutexes * MUTEX_WORDS + cap.contexts * CTX_WORDS + cap.records * REC_WORDS;
    const sab = new SharedArrayBuffer(words * 4);
    const i32 = new Int32Array(sab);
    i32[H_NMUTEX] = cap.mutexes;
    i32[H_NCTX] = cap.contexts;
    i32[H_NREC] = cap.records;
    const ctxBase = HEADER_WORDS + cap.mutexes * MUTEX_WORDS;
    const recBase = ctxBase + cap.contexts * CTX_WORDS;
    // Free lists in index order so that low slots are reused first (keeps the working set small).
    for (let c = 0; c < cap.contexts; c++) i32[ctxBase + c * CTX_WORDS + C_NEXT_FREE] = c + 1 < cap.contexts ? c + 2 : 0;
    for (let r = 0; r < cap.records; r++) i32[recBase + r * REC_WORDS + R_NEXT] = r + 1 < cap.records ? r + 2 : 0;
    i32[H_FREE_CTX] = 1;
    i32[H_FREE_REC] = 1;
    Atomics.store(i32, H_MAGIC, MAGIC);
    return sab;
  }

  /**
   * Enters the table's critical section. Sections are a few dozen loads/stores and never span an await, so
   * spinning is cheap; worker threads fall back to Atomics.wait (state 2 = locked with sleepers, as in
   * Drepper's futex mutex) so a preempted holder does not burn a core, the main thread only spins because
   * blocking its event loop is not allowed.
   */
  lock(): void {
    const i32 = this.i32;
    if (Atomics.compareExchange(i32, H_LOCK, 0, 1) === 0) return;
    this.lockSlow();
  }

  private lockSlow(): void {
    const i32 = this.i32;
    for (let spin = 0; spin < 200; spin++) {
      if (Atomics.load(i32, H_LOCK) === 0 && Atomics.compareExchange(i32, H_LOCK, 0, 1) === 0) return;
    }
    // A section lasts microseconds; one held for seconds means its owner died inside it (a worker
    // terminate()d mid-operation). Fail loudly instead of spinning forever.
    const giveUpAt = Date.now() + WEDGED_MS;
    if (this.canBlock) {
      // From here on we may sleep, so mark the word contended and always leave it contended when we take it.
      while (Atomics.exchange(i32, H_LOCK, 2) !== 0) {
        Atomics.wait(i32, H_LOCK, 2, 1);
        if (Date.now() > giveUpAt) throw wedgedError();
      }
      return;
    }
    for (let spin = 1; ; spin++) {
      if (Atomics.load(i32, H_LOCK) === 0 && Atomics.compareExchange(i32, H_LOCK, 0, 1) === 0) return;
      if ((spin & 0xfff) === 0 && Date.now() > giveUpAt) throw wedgedError();
    }
  }

  /** @internal Leaves the table locked as a thread killed mid-section would (tests only). */
  wedgeForTest(): void {
    Atomics.store(this.i32, H_LOCK, 1);
  }

  /** Leaves the critical section, waking one sleeping worker if any marked the word contended. */
  unlock(): void {
    if (Atomics.exchange(this.i32, H_LOCK, 0) === 2) Atomics.notify(this.i32, H_LOCK, 1);
  }

  mutexOff(m: number): number {
    return this.mutexBase + m * MUTEX_WORDS;
  }
  ctxOff(c: number): number {
    return this.ctxBase + c * CTX_WORDS;
  }
  recOff(r: number): number {
    return this.recBase + r * REC_WORDS;
  }
}

let state: SharedState | undefined;

/**
 * The thread's view of the process-wide state, created on first use. The main thread creates the buffer and
 * publishes it through environment data, which workers inherit when spawned; a worker spawned before the
 * library was loaded in its parent finds nothing and has to create a private buffer (its locks are then not
 * shared with the parent: load the library before spawning workers).
 */
export function sharedState(): SharedState {
  if (state !== undefined) return state;
  let sab = wt.getEnvironmentData(ENV_DATA_KEY) as SharedArrayBuffer | undefined;
  // Realm-independent check: the buffer may come from another vm context (e.g. test runners' sandboxes).
  if (Object.prototype.toString.call(sab) !== '[object SharedArrayBuffer]') {
    sab = SharedState.create(parseCapacity(process.env[CAPACITY_ENV]));
    if (!wt.isMainThread) {
      debug(
        'worker %d: no shared lock state inherited from the parent (the library was loaded there after this ' +
          'worker was spawned): created a private one, locks are not shared with other threads',
        wt.threadId,
      );
    }
    // Publish it so that workers spawned from this thread from now on share it.
    wt.setEnvironmentData(ENV_DATA_KEY, sab);
  }
  state = new SharedState(sab as SharedArrayBuffer);
  return state;
}
