/**
 * One thread's view of a lock store: typed views over the shared mapping, region offsets, the table's
 * critical section, this thread's participant slot, and the shared clock.
 *
 * The critical section is a futex mutex on H_LOCK (Drepper's "mutex 2", with the owner's participant
 * index as the locked value so that a dead owner can be named). Sections are a few dozen loads and stores
 * and never span an await: a thread first spins, then sleeps in FUTEX_WAIT for at most 1 ms at a time (the
 * owner may be another process that the scheduler preempted; spinning would only keep it off the CPU).
 * @internal
 */
import * as wt from 'node:worker_threads';
import { debuglog } from 'node:util';
import { DmabufError } from '../errors';
import { native } from '../kernel/native';
import {
  CONTENDED,
  CTX_WORDS,
  HEADER_WORDS,
  H_LOCK,
  H_NCTX,
  H_NMUTEX,
  H_NPART,
  H_NREC,
  LIVE_BYTE_BASE,
  MUTEX_WORDS,
  PART_WORDS,
  P_PID,
  P_REVOKE_ACK_AT,
  P_REVOKE_REQ,
  P_REVOKE_TOKEN,
  P_STATE,
  P_THREAD,
  REC_WORDS,
  CAPACITY_ENV,
} from './layout';
import type { StoreFile } from './store-file';

/** Debug log for the lock core (`NODE_DEBUG=dmabuf-sync`). */
export const debug = debuglog('dmabuf-sync');

/**
 * How long a thread waits for the table's critical section held by itself (a re-entry, or the test hook)
 * before declaring it wedged, and how long when another live thread holds it (sections last microseconds;
 * only a stopped or starved process holds one for seconds: emulators under load do).
 */
const WEDGED_SELF_MS = 2000;
const WEDGED_OTHER_MS = 30_000;
/** How often a thread waiting for the critical section checks that its owner is alive. */
const OWNER_CHECK_MS = 20;

// performance.now() counts CLOCK_MONOTONIC (libuv's uv_hrtime) from a per-process origin; one offset read
// once turns it into the machine-wide CLOCK_MONOTONIC that deadlines shared across processes need. The
// global is looked up at each call so that test fake timers (which replace it) move this clock too.
const MONO_OFFSET = native.monotonicMs() - globalThis.performance.now();

/** CLOCK_MONOTONIC in ms: the same in every process of the machine, never jumps with the wall clock. */
export function monoNow(): number {
  return globalThis.performance.now() + MONO_OFFSET;
}

function wedgedError(path: string, ms: number, pid: number): DmabufError {
  return new DmabufError(
    'EOWNERDEAD',
    `the lock table ${path} has been held for over ${ms / 1000} s by a thread of process ${pid} that is still ` +
      'alive: it is stopped (SIGSTOP, a debugger) or stuck inside a lock operation. Resume or end that process',
  );
}

function enospc(what: string, cap: number): DmabufError {
  return new DmabufError(
    'ENOSPC',
    `the lock store is out of ${what} (capacity ${cap}): release/dispose unused ones, or raise the capacity with ` +
      `the ${CAPACITY_ENV} environment variable (e.g. ${CAPACITY_ENV}="participants=1024,mutexes=16384,contexts=32768,records=131072"), ` +
      'set before the first process creates the store (it is re-created once no process uses it)',
  );
}

/** The error for a full table. */
export { enospc };

/** A thread's view of one store. */
export class Table {
  readonly file: StoreFile;
  readonly buffer: ArrayBuffer;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly i64: BigInt64Array;
  readonly u8: Uint8Array;
  readonly nPart: number;
  readonly nMutex: number;
  readonly nCtx: number;
  readonly nRec: number;
  readonly partBase: number;
  readonly mutexBase: number;
  readonly ctxBase: number;
  readonly recBase: number;
  /** This thread's participant slot, and the value it writes into H_LOCK (slot + 1). */
  self = -1;
  private lockValue = 0;
  /**
   * Run with the table lock taken over from a dead owner (set by the store: rebuild, reap, wake), and
   * before a participant slot left by a dead thread is reused.
   */
  recover: () => void = () => {};
  /** Removes what dead participant p left (set by the store). */
  reap: (p: number) => void = () => {};
  /** Run once right after the critical section is left (see afterUnlock). */
  private deferred: (() => void) | undefined;

  constructor(file: StoreFile) {
    this.file = file;
    const buf = file.buffer;
    this.buffer = buf;
    this.i32 = new Int32Array(buf);
    this.f64 = new Float64Array(buf);
    this.i64 = new BigInt64Array(buf);
    this.u8 = new Uint8Array(buf);
    this.nPart = this.i32[H_NPART] as number;
    this.nMutex = this.i32[H_NMUTEX] as number;
    this.nCtx = this.i32[H_NCTX] as number;
    this.nRec = this.i32[H_NREC] as number;
    this.partBase = HEADER_WORDS;
    this.mutexBase = this.partBase + this.nPart * PART_WORDS;
    this.ctxBase = this.mutexBase + this.nMutex * MUTEX_WORDS;
    this.recBase = this.ctxBase + this.nCtx * CTX_WORDS;
  }

  /** Takes a participant slot for this thread (once the store has set `reap`). */
  start(): void {
    this.self = this.attach();
    this.lockValue = this.self + 1;
    // The revoker lets a watchdog of another process take this thread's CPU views away while its event loop
    // is blocked (see ww-rules.ts, forceIfExpired).
    const off = this.partOff(this.self);
    native.revoker(this.buffer, off + P_REVOKE_REQ, off + P_REVOKE_TOKEN, off + P_REVOKE_ACK_AT);
  }

  /**
   * Takes a participant slot: the first whose liveness byte we can lock exclusively (its previous owner,
   * if any, is gone: the kernel dropped its lock when it died).
   */
  private attach(): number {
    for (let p = 0; p < this.nPart; p++) {
      if (!native.ofdLock(this.file.fd, 'write', LIVE_BYTE_BASE + p, 1, false)) continue;
      const off = this.partOff(p);
      this.lockValue = p + 1;
      this.lock();
      // Whatever a dead previous owner of the slot left goes first.
      if (Atomics.load(this.i32, off + P_STATE) !== 0) this.reap(p);
      this.i32[off + P_PID] = process.pid;
      this.i32[off + P_THREAD] = wt.threadId;
      this.i64[(off + P_REVOKE_TOKEN) >> 1] = 0n;
      // Even: no request being written (a poster that died mid-request may have left it odd).
      this.i32[off + P_REVOKE_REQ] = (this.i32[off + P_REVOKE_REQ] as number) & ~1;
      Atomics.store(this.i32, off + P_STATE, 1);
      this.unlock();
      return p;
    }
    throw enospc('participant slots (threads attached to the store)', this.nPart);
  }

  /** Whether participant p's thread is alive (holds its liveness byte). */
  isAlive(p: number): boolean {
    return p === this.self || native.ofdTest(this.file.fd, 'write', LIVE_BYTE_BASE + p, 1);
  }

  /**
   * @internal Test hook: with DMABUF_SYNC_TEST_CS_SPIN_US set, multi-word updates pause that long in their
   * middle (and before the lock is released), so that a test's SIGKILL lands inside the critical section.
   */
  readonly csSpinUs = Number(process.env.DMABUF_SYNC_TEST_CS_SPIN_US ?? 0) || 0;

  /** @internal See csSpinUs. */
  testPause(): void {
    const until = monoNow() + this.csSpinUs / 1000;
    while (monoNow() < until);
  }

  /** Enters the table's critical section. */
  lock(): void {
    if (Atomics.compareExchange(this.i32, H_LOCK, 0, this.lockValue) === 0) return;
    this.lockSlow();
  }

  private lockSlow(): void {
    const i32 = this.i32;
    const me = this.lockValue;
    for (let spin = 0; spin < 100; spin++) {
      if (Atomics.load(i32, H_LOCK) === 0 && Atomics.compareExchange(i32, H_LOCK, 0, me) === 0) return;
    }
    const start = monoNow();
    let checkAt = monoNow() + OWNER_CHECK_MS;
    for (;;) {
      let v = Atomics.load(i32, H_LOCK);
      if (v === 0) {
        // Taken after sleeping: leave it marked contended, other sleepers may remain (Drepper's mutex 2).
        if (Atomics.compareExchange(i32, H_LOCK, 0, me | CONTENDED) === 0) return;
        continue;
      }
      if ((v & CONTENDED) === 0) {
        if (Atomics.compareExchange(i32, H_LOCK, v, v | CONTENDED) !== v) continue;
        v |= CONTENDED;
      }
      native.futexWait(this.buffer, H_LOCK, v, 1);
      const now = monoNow();
      if (now >= checkAt) {
        checkAt = now + OWNER_CHECK_MS;
        const owner = (v & ~CONTENDED) - 1;
        // The owner died inside the critical section: take the lock over (one taker wins the exchange) and
        // repair what it may have left half done.
        if (owner >= 0 && owner < this.nPart && !this.isAlive(owner) && Atomics.compareExchange(i32, H_LOCK, v, me | CONTENDED) === v) {
          debug('participant %d died holding the lock table %s: repairing it', owner, this.file.path);
          this.recover();
          return;
        }
      }
      const owner = (v & ~CONTENDED) - 1;
      const limit = owner === this.self ? WEDGED_SELF_MS : WEDGED_OTHER_MS;
      if (now - start > limit) {
        const pid = owner >= 0 && owner < this.nPart ? (i32[this.partOff(owner) + P_PID] as number) : 0;
        throw wedgedError(this.file.path, limit, pid);
      }
    }
  }

  /**
   * Runs `body` inside the table's critical section and leaves it on every exit, a return or a throw (an
   * ENOSPC from an empty record pool, a bug): the way the ww rules take the table lock, so that no exit
   * can forget to release it.
   */
  critical<R>(body: () => R): R {
    this.lock();
    try {
      return body();
    } finally {
      this.unlock();
    }
  }

  /** Leaves the critical section, waking one sleeper if any, then runs what afterUnlock() deferred. */
  unlock(): void {
    if (this.csSpinUs > 0) this.testPause();
    if ((Atomics.exchange(this.i32, H_LOCK, 0) & CONTENDED) !== 0) native.futexWake(this.buffer, H_LOCK, 1);
    const deferred = this.deferred;
    if (deferred !== undefined) {
      this.deferred = undefined;
      deferred();
    }
  }

  /** Whether this thread is inside the critical section. */
  isLockedByMe(): boolean {
    return (Atomics.load(this.i32, H_LOCK) & ~CONTENDED) === this.lockValue;
  }

  /**
   * Runs `fn` once this thread leaves the critical section (it must be inside it): work that needs no
   * table lock and would only make others wait for it, such as ringing doorbells (a futex wake that
   * reaches an idle CPU can take tens of µs). One at a time: a second call before the unlock replaces it.
   */
  afterUnlock(fn: () => void): void {
    this.deferred = fn;
  }

  /** @internal Leaves the table locked as a thread stopped mid-section would (tests only). */
  wedgeForTest(): void {
    Atomics.store(this.i32, H_LOCK, this.lockValue);
  }

  partOff(p: number): number {
    return this.partBase + p * PART_WORDS;
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
