/**
 * Waking waiters, in this thread, other threads and other processes.
 *
 * A waiter sleeps until its mutex's M_SEQ word differs from the value it read under the table lock. Every
 * change that could let a waiter proceed bumps M_SEQ and then:
 * - this thread's own waiters are resolved directly (a microtask: async tasks of one thread hand a lock
 *   over without an event-loop turn), at most LOCAL_WAKE_BATCH at once, the rest one batch per setImmediate;
 * - every other participant (thread, any process) with a waiter record on the mutex gets its doorbell rung:
 *   its P_DOORBELL word is bumped and futex-woken; a helper thread of that participant sleeps in FUTEX_WAIT
 *   on it and hands the ring to its event loop, which re-checks its waiters' words. V8's Atomics.notify
 *   cannot do this: it is emulated per process.
 * @internal
 */
import { clearTimeout as clearNap, setTimeout as nap } from 'node:timers';
import { native, type NativeDoorbell } from '../kernel/native';
import { M_NWAITERS, M_SEQ, M_WAIT_HEAD, P_DOORBELL, R_NEXT, R_PART } from './layout';
import type { Table } from './table';

/** How many same-thread waiters one release wakes directly. */
const LOCAL_WAKE_BATCH = 8;

interface Sleeper {
  idx: number;
  seq: number;
  resolve: () => void;
  timer: NodeJS.Timeout | undefined;
}

/** Waits and wakes of one thread on one store. */
export class Waker {
  private readonly t: Table;
  /** This thread's sleepers by futex word index, oldest first. */
  private readonly sleepers = new Map<number, Sleeper[]>();
  private bell: NativeDoorbell | undefined;
  private draining = false;
  /** Participants rung during the current wake (de-duplication scratch). */
  private readonly rung: number[] = [];

  constructor(t: Table) {
    this.t = t;
  }

  /** Bumps the mutex's M_SEQ and wakes its waiters everywhere (only if it has any). */
  wake(moff: number): void {
    const i32 = this.t.i32;
    if (i32[moff + M_NWAITERS] === 0) return;
    Atomics.add(i32, moff + M_SEQ, 1);
    this.notify(moff);
  }

  /** Wakes the waiters of the mutex at `moff` (its M_SEQ already changed, or a waiter must re-check anyway). */
  notify(moff: number): void {
    const t = this.t;
    const i32 = t.i32;
    const rung = this.rung;
    for (let p = i32[moff + M_WAIT_HEAD] as number; p !== 0; p = i32[t.recOff(p - 1) + R_NEXT] as number) {
      const part = i32[t.recOff(p - 1) + R_PART] as number;
      if (part === t.self || rung.includes(part)) continue;
      rung.push(part);
      this.ring(part);
    }
    rung.length = 0;
    this.wakeLocal(moff + M_SEQ, false);
  }

  /** Rings participant `part`'s doorbell. */
  ring(part: number): void {
    const idx = this.t.partOff(part) + P_DOORBELL;
    Atomics.add(this.t.i32, idx, 1);
    native.futexWake(this.t.buffer, idx, 1);
  }

  /**
   * Resolves when the word M_SEQ of the mutex at `moff` may differ from `seq`, or after `timeoutMs`; undefined
   * if it already differs.
   */
  wait(moff: number, seq: number, timeoutMs: number): Promise<void> | undefined {
    const idx = moff + M_SEQ;
    if (Atomics.load(this.t.i32, idx) !== seq) return undefined;
    if (this.bell === undefined) {
      this.bell = native.doorbell(this.t.buffer, this.t.partOff(this.t.self) + P_DOORBELL, () => this.onRing());
    }
    return new Promise((resolve) => {
      const s: Sleeper = { idx, seq, resolve, timer: undefined };
      // A nap is a safety net bounded by real time (node:timers, which test fake clocks leave alone).
      s.timer = nap(() => this.settle(s), timeoutMs);
      // A pending wait does not keep the process alive by itself (the lock core's keep-alive does).
      s.timer.unref();
      let list = this.sleepers.get(idx);
      if (list === undefined) this.sleepers.set(idx, (list = []));
      list.push(s);
    });
  }

  /** Wakes a sleeper wherever it is in its list. */
  private settle(s: Sleeper): void {
    const list = this.sleepers.get(s.idx);
    if (list !== undefined) {
      const i = list.indexOf(s);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.sleepers.delete(s.idx);
    }
    clearNap(s.timer);
    s.resolve();
  }

  /** Resolves up to a batch of this thread's sleepers on word `idx`; `changedOnly`: only those it concerns. */
  private wakeLocal(idx: number, changedOnly: boolean): void {
    const list = this.sleepers.get(idx);
    if (list === undefined) return;
    const now = Atomics.load(this.t.i32, idx);
    let woken = 0;
    for (let i = 0; i < list.length && woken < LOCAL_WAKE_BATCH; ) {
      const s = list[i] as Sleeper;
      if (changedOnly && s.seq === now) {
        i++;
        continue;
      }
      list.splice(i, 1);
      clearNap(s.timer);
      s.resolve();
      woken++;
    }
    if (list.length === 0) this.sleepers.delete(idx);
    else if (!this.draining) {
      // The rest on a later turn: 1000 waiters re-polling in one microtask burst would stall the loop.
      this.draining = true;
      setImmediate(() => {
        this.draining = false;
        this.onRing();
      });
    }
  }

  /** The doorbell rang (or a drain is due): wake the sleepers whose word changed. */
  private onRing(): void {
    for (const idx of [...this.sleepers.keys()]) this.wakeLocal(idx, true);
  }
}
