/**
 * Waking waiters, in this thread, other threads and other processes.
 *
 * A waiter sleeps on its own wait record until that record is *kicked*: its RF_KICK flag set, under the
 * table lock, by whoever changed the mutex in a way that lets this waiter proceed. Which waiters can proceed
 * is the ww rules' question (ww-rules.ts, forEachReady): the head of the queue once it is free, the readers
 * behind a released writer, a waiter whose context was wounded or forced. Everyone else sleeps on: a release
 * wakes one writer, not the whole queue (no thundering herd, no re-polls that only queue again).
 *
 * A kicked waiter of this thread is resolved directly (a microtask: async tasks of one thread hand a lock
 * over without an event-loop turn), at most LOCAL_WAKE_BATCH at once, the rest one batch per setImmediate.
 * Every other participant (thread, any process) with a kicked record gets its doorbell rung: its P_DOORBELL
 * word is bumped and futex-woken; a helper thread of that participant sleeps in FUTEX_WAIT on it and hands
 * the ring to its event loop, which resolves its sleepers whose records are kicked. V8's Atomics.notify
 * cannot do this: it is emulated per process.
 *
 * The waiter clears its kick when it re-checks under the table lock (ww-rules.ts poll/watch), so a kick that
 * lands between that check and its sleep is seen by wait() and never lost.
 * @internal
 */
import { clearTimeout as clearNap, setTimeout as nap } from 'node:timers';
import { native, type NativeDoorbell } from '../kernel/native';
import { M_NWAITERS, M_WAIT_HEAD, P_DOORBELL, RF_KICK, R_FLAGS, R_NEXT, R_PART } from './layout';
import { monoNow, type Table } from './table';
import { isHandedHold, soleHolderNextPart } from './ww-view';

/** How many same-thread waiters one wake resolves directly. */
const LOCAL_WAKE_BATCH = 8;

/** What wait() resolves with: woken (kicked or nap over): re-check. */
export const WOKEN = 0;
/** What wait() resolves with: a release of this thread handed the waiter the lock (handOff); no re-check needed. */
export const HANDED = 1;
/** As HANDED, and the mutex's previous owner died holding it (the grant's ownerDied). */
export const HANDED_OWNER_DIED = 2;

/** Calls `kick(r)` for every waiter record of the mutex at `moff` that a re-check would let proceed. */
export type ReadyWaiters = (t: Table, moff: number, kick: (r: number) => void) => void;

interface Sleeper {
  /** The waiter's record. */
  w: number;
  /** Its mutex slot and context slot (-1: not given, or a ctx-less waiter). */
  m: number;
  c: number;
  resolve: (how: number) => void;
  /** When its nap ends (monotonic ms). */
  until: number;
}

/** Every Waker of this thread (one per store): an abort wakes all their sleepers. */
const wakers = new Set<Waker>();
/** The AbortSignals that already have this thread's listener. */
const listenedSignals = new WeakSet<AbortSignal>();

function onAbort(): void {
  for (const waker of wakers) waker.wakeEverySleeper();
}

/**
 * Makes an abort of `signal` wake this thread's sleepers, so that the aborted waiter sees it at once. One
 * listener per signal and thread for its whole life, not one per wait: adding and removing an event
 * listener cost a third of a hand-off. Waiters whose signal is not aborted re-check and sleep again.
 */
export function wakeOnAbort(signal: AbortSignal): void {
  if (listenedSignals.has(signal)) return;
  listenedSignals.add(signal);
  signal.addEventListener('abort', onAbort, { once: true });
}

/** Waits and wakes of one thread on one store. */
export class Waker {
  private readonly t: Table;
  private readonly ready: ReadyWaiters;
  /** This thread's sleepers by wait record, oldest first. */
  private readonly sleepers = new Map<number, Sleeper>();
  private bell: NativeDoorbell | undefined;
  private draining = false;
  /** Participants to ring after the current wake (de-duplication scratch; the first nRung count). */
  private readonly rung: number[] = [];
  private nRung = 0;
  /** This thread's kicked records of the current wake (the first nLocal count). */
  private readonly local: number[] = [];
  private nLocal = 0;
  private readonly kickOne = (r: number): void => this.kick(r);
  /**
   * One safety-net timer for all sleepers, armed at the earliest nap end (`napAt`); a timer per sleep cost
   * a fifth of a hand-off.
   */
  private napTimer: NodeJS.Timeout | undefined;
  private napAt = Infinity;
  private readonly onNap = (): void => this.expireNaps();

  constructor(t: Table, ready: ReadyWaiters) {
    this.t = t;
    this.ready = ready;
    wakers.add(this);
  }

  /** A change of the mutex at `moff` (table locked): kicks the waiters that can now proceed, wherever they are. */
  wake(moff: number): void {
    if (this.t.i32[moff + M_NWAITERS] === 0) return;
    this.ready(this.t, moff, this.kickOne);
    this.flush();
  }

  /** Kicks every waiter of the mutex at `moff` (table locked): each re-checks (a recovery). */
  wakeAll(moff: number): void {
    const t = this.t;
    const i32 = t.i32;
    for (let p = i32[moff + M_WAIT_HEAD] as number; p !== 0; p = i32[t.recOff(p - 1) + R_NEXT] as number) this.kick(p - 1);
    this.flush();
  }

  /** Kicks wait record r (table locked) and tells its thread: it re-checks (a wound, a forced context). */
  kickWaiter(r: number): void {
    this.kick(r);
    this.flush();
  }

  /**
   * Whether wait record r (table locked) belongs to a sleeper of this thread's that handOff() can resolve
   * directly: asleep in wait(), not woken yet.
   */
  isAsleep(r: number): boolean {
    return this.sleepers.has(r);
  }

  /**
   * Resolves the sleeper of wait record r (isAsleep) with `how` (HANDED, HANDED_OWNER_DIED): a release of
   * this thread made r a hold of its context, so its wait() returns granted without a re-check under the
   * table lock (and without RF_KICK: nobody polls the record again).
   */
  handOff(r: number, how: number): void {
    const s = this.sleepers.get(r);
    if (s === undefined) return;
    this.sleepers.delete(r);
    s.resolve(how);
  }

  /** Sets record r's kick and notes who must be told. */
  private kick(r: number): void {
    const t = this.t;
    const roff = t.recOff(r);
    Atomics.or(t.i32, roff + R_FLAGS, RF_KICK);
    const part = t.i32[roff + R_PART] as number;
    if (part === t.self) {
      this.local[this.nLocal++] = r;
      return;
    }
    let i = 0;
    while (i < this.nRung && this.rung[i] !== part) i++;
    if (i === this.nRung) this.rung[this.nRung++] = part;
  }

  /**
   * Rings the noted participants and resolves this thread's kicked sleepers. The scratch lists are reused
   * with a count (setting an array's length is a runtime call, paid on every wake).
   */
  private flush(): void {
    // Rung once the table lock is left: the woken participant's first act is to take it (its re-check), and
    // a futex wake costs the ringer tens of µs when it reaches an idle CPU (a VM exit). Kicks stay set
    // under the lock, before the ring, so a waiter that checks its record before sleeping never misses one.
    if (this.nRung > 0) {
      if (this.t.isLockedByMe()) this.t.afterUnlock(this.ringNoted);
      else this.ringNoted();
    }
    const n = this.nLocal;
    this.nLocal = 0;
    let woken = 0;
    for (let i = 0; i < n; i++) {
      const s = this.sleepers.get(this.local[i] as number);
      if (s === undefined) continue; // running: it re-checks anyway
      if (woken === LOCAL_WAKE_BATCH) {
        this.drainLater();
        break;
      }
      this.settle(s);
      woken++;
    }
  }

  /** Rings the participants noted by kick() since the last ring, each once. */
  private readonly ringNoted = (): void => {
    for (let i = 0; i < this.nRung; i++) this.ring(this.rung[i] as number);
    this.nRung = 0;
  };

  /**
   * Before a release of the mutex at `moff` (table not locked): rings the participant that the release will
   * probably wake, the head of its queue, if it is another thread or process, so that its wake-up (tens to
   * hundreds of µs) overlaps the release's own work instead of following it. Only a hint: the release still
   * kicks and rings whoever it wakes (a ring that finds no kicked record is a no-op re-scan); the caller
   * skips it when a waiter of this thread may take the lock first (a cohort pass), which would make it a
   * spurious wake-up of another process.
   */
  ringAhead(moff: number): void {
    const part = soleHolderNextPart(this.t, moff);
    if (part >= 0 && part !== this.t.self) this.ring(part);
  }

  /** Rings participant `part`'s doorbell. */
  ring(part: number): void {
    const idx = this.t.partOff(part) + P_DOORBELL;
    Atomics.add(this.t.i32, idx, 1);
    native.futexWake(this.t.buffer, idx, 1);
  }

  /**
   * Resolves when wait record `w` is kicked, or `timeoutMs` after monotonic time `now` (default: read the
   * clock), with WOKEN; with HANDED or HANDED_OWNER_DIED when a release of this thread handed it the lock
   * (handOff), and with HANDED when another participant's release did (ww-rules.ts handOff), which a waiter of
   * context slot `c` on mutex slot `m` learns without the table lock. Undefined if it already is kicked
   * (re-check now).
   */
  wait(w: number, timeoutMs: number, now?: number, m = -1, c = -1): Promise<number> | undefined {
    if ((Atomics.load(this.t.i32, this.t.recOff(w) + R_FLAGS) & RF_KICK) !== 0) return undefined;
    if (this.bell === undefined) {
      this.bell = native.doorbell(this.t.buffer, this.t.partOff(this.t.self) + P_DOORBELL, () => this.onRing());
    }
    return new Promise<number>((resolve) => {
      const until = (now ?? monoNow()) + timeoutMs;
      this.sleepers.set(w, { w, m, c, resolve, until });
      if (until < this.napAt) this.armNap(until);
    });
  }

  /** (Re-)arms the nap timer for `at` (monotonic ms). */
  private armNap(at: number): void {
    if (this.napTimer !== undefined) clearNap(this.napTimer);
    this.napAt = at;
    // node:timers, which test fake clocks leave alone; +1: a timer may fire up to 1 ms early.
    this.napTimer = nap(this.onNap, Math.max(0, at - monoNow()) + 1);
    // A pending wait does not keep the process alive by itself (the lock core's keep-alive does).
    this.napTimer.unref();
  }

  /** The nap timer fired: wakes the sleepers whose nap is over and re-arms for the next one. */
  private expireNaps(): void {
    this.napTimer = undefined;
    this.napAt = Infinity;
    const now = monoNow();
    let next = Infinity;
    for (const s of this.sleepers.values()) {
      if (s.until <= now) this.settle(s);
      else if (s.until < next) next = s.until;
    }
    if (next < Infinity) this.armNap(next);
  }

  /** Wakes every sleeper of this Waker: each re-checks (an abort in this thread). */
  wakeEverySleeper(): void {
    for (const s of this.sleepers.values()) this.settle(s);
  }

  /** Wakes a sleeper. */
  private settle(s: Sleeper, how = WOKEN): void {
    if (this.sleepers.get(s.w) === s) this.sleepers.delete(s.w);
    s.resolve(how);
  }

  private drainLater(): void {
    if (this.draining) return;
    // The rest on a later turn: 1000 waiters re-polling in one microtask burst would stall the loop.
    this.draining = true;
    setImmediate(() => {
      this.draining = false;
      this.onRing();
    });
  }

  /** The doorbell rang (or a drain is due): wake a batch of the sleepers whose records are kicked. */
  private onRing(): void {
    const i32 = this.t.i32;
    let woken = 0;
    for (const s of this.sleepers.values()) {
      if ((Atomics.load(i32, this.t.recOff(s.w) + R_FLAGS) & RF_KICK) === 0) continue;
      if (woken === LOCAL_WAKE_BATCH) {
        this.drainLater();
        return;
      }
      // Handed the lock by another participant's release: the kick was set after the hold, so the hold is
      // seen; only this thread makes records of its context, so a hold of it on m is this waiter's. The
      // waiter still checks that its context was not forced since.
      this.settle(s, s.c >= 0 && isHandedHold(this.t, s.w, s.m, s.c) ? HANDED : WOKEN);
      woken++;
    }
  }
}
