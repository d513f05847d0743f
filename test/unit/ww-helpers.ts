/**
 * Shared pieces of the ww lock-core tests: a completion (kernel `struct completion`), sleeps, error-code
 * capture and the stress workloads of kernel/locking/test-ww_mutex.c, reused by the worker helper.
 */
import type { AcquireContext } from '../../lib/ww/acquire-context';
import type { WwClass } from '../../lib/ww/ww-class';
import type { WwMutex } from '../../lib/ww/ww-mutex';

export const KINDS = ['wound-wait', 'wait-die'] as const;

/** kernel completion: complete() once, wait() any number of times. */
export class Completion {
  private resolve!: () => void;
  private done = false;
  readonly promise: Promise<void> = new Promise((r) => (this.resolve = r));
  complete(): void {
    this.done = true;
    this.resolve();
  }
  get completed(): boolean {
    return this.done;
  }
  wait(): Promise<void> {
    return this.promise;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The error code a promise rejects with, or 0 when it resolves. */
export async function codeOf(p: Promise<unknown>): Promise<string | 0> {
  try {
    await p;
    return 0;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/** The code a synchronous call throws, or 0. */
export function thrownCode(fn: () => unknown): string | 0 {
  try {
    fn();
    return 0;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

export function randomOrder(n: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const r = Math.floor(Math.random() * (i + 1));
    [order[i], order[r]] = [order[r] as number, order[i] as number];
  }
  return order;
}

function isEdeadlk(err: unknown): boolean {
  return (err as { code?: string }).code === 'EDEADLK';
}

/**
 * The critical section of every stress: for each held lock, a non-atomic read / yield / write of its
 * counter. If two tasks ever held one lock at once, increments get lost and the totals do not match.
 */
async function criticalSection(counters: Int32Array, held: number[], done: Int32Array): Promise<void> {
  const before = held.map((i) => counters[i] as number);
  await tick();
  held.forEach((i, k) => {
    counters[i] = (before[k] as number) + 1;
    done[i]!++;
  });
}

/** kernel stress_inorder_work: lock all in one random order; on EDEADLK unlock all, lockSlow the contended one, retry. */
export async function stressInorder(
  cls: WwClass, locks: WwMutex[], counters: Int32Array, done: Int32Array, until: number, name = 'inorder',
): Promise<number> {
  const order = randomOrder(locks.length);
  let loops = 0;
  do {
    const ctx = cls.acquireContext({ name });
    let contended = -1;
    for (;;) {
      const held: number[] = contended >= 0 ? [order[contended] as number] : [];
      let failedAt = -1;
      for (let n = 0; n < order.length; n++) {
        if (n === contended) continue;
        try {
          await (locks[order[n] as number] as WwMutex).lock(ctx);
          held.push(order[n] as number);
        } catch (err) {
          if (!isEdeadlk(err)) throw err;
          failedAt = n;
          break;
        }
      }
      if (failedAt < 0) await criticalSection(counters, held, done);
      for (const i of held) (locks[i] as WwMutex).unlock(ctx);
      if (failedAt < 0) break;
      contended = failedAt;
      await (locks[order[contended] as number] as WwMutex).lockSlow(ctx);
    }
    ctx.fini();
    loops++;
  } while (Date.now() < until);
  return loops;
}

/** kernel stress_reorder_work: on EDEADLK, lockSlow the contended lock and move it to the front of the list. */
export async function stressReorder(
  cls: WwClass, locks: WwMutex[], counters: Int32Array, done: Int32Array, until: number, name = 'reorder',
  modeOf: (i: number) => 'read' | 'write' = () => 'write',
): Promise<number> {
  const list = randomOrder(locks.length);
  let loops = 0;
  do {
    const ctx = cls.acquireContext({ name });
    const held: number[] = [];
    for (let n = 0; n < list.length; n++) {
      const i = list[n] as number;
      if (held.includes(i)) continue;
      try {
        await (locks[i] as WwMutex).lock(ctx, modeOf(i));
        held.push(i);
      } catch (err) {
        if (!isEdeadlk(err)) throw err;
        for (const h of held.splice(0)) (locks[h] as WwMutex).unlock(ctx);
        await (locks[i] as WwMutex).lockSlow(ctx, modeOf(i));
        held.push(i);
        list.splice(n, 1);
        list.unshift(i);
        n = -1; // restart the iteration, skipping what is held
      }
    }
    const writes = held.filter((i) => modeOf(i) === 'write');
    const reads = held.filter((i) => modeOf(i) === 'read');
    const seen = reads.map((i) => counters[i]);
    await criticalSection(counters, writes, done);
    // A reader must never see a writer's update while it holds the lock.
    reads.forEach((i, k) => {
      if (counters[i] !== seen[k]) throw new Error(`counter ${i} changed under a read hold`);
    });
    for (const i of held) (locks[i] as WwMutex).unlock(ctx);
    ctx.fini();
    loops++;
  } while (Date.now() < until);
  return loops;
}

/** kernel stress_one_work: one random lock, ctx-less, over and over. */
export async function stressOne(locks: WwMutex[], counters: Int32Array, done: Int32Array, until: number): Promise<number> {
  const i = Math.floor(Math.random() * locks.length);
  const lock = locks[i] as WwMutex;
  let loops = 0;
  do {
    await lock.lock(null);
    await criticalSection(counters, [i], done);
    lock.unlock();
    loops++;
  } while (Date.now() < until);
  return loops;
}

/**
 * DmabufSync's way: an ordered context takes a random subset of the locks in ascending key order; on EDEADLK
 * (only an unordered context can cause one) it drops everything, waits until the contended lock is free and
 * retries in order. Counts its back-offs in `stats`.
 */
export async function stressOrdered(
  cls: WwClass, locks: WwMutex[], counters: Int32Array, done: Int32Array, until: number, stats: { backoffs: number },
): Promise<number> {
  const byKey = [...locks.keys()].sort((a, b) => ((locks[a] as WwMutex).key < (locks[b] as WwMutex).key ? -1 : 1));
  let loops = 0;
  do {
    const subset = byKey.filter(() => Math.random() < 0.5);
    const ctx = cls.acquireContext({ name: 'ordered', ordered: true });
    for (;;) {
      const held: number[] = [];
      let failed = -1;
      try {
        for (const i of subset) {
          failed = i;
          await (locks[i] as WwMutex).lock(ctx);
          held.push(i);
        }
      } catch (err) {
        for (const h of held) (locks[h] as WwMutex).unlock(ctx);
        if (!isEdeadlk(err)) throw err;
        stats.backoffs++;
        await (locks[failed] as WwMutex).waitUnlocked();
        continue;
      }
      await criticalSection(counters, held, done);
      for (const h of held) (locks[h] as WwMutex).unlock(ctx);
      break;
    }
    ctx.fini();
    loops++;
  } while (Date.now() < until);
  return loops;
}

export type { AcquireContext };

/**
 * The kinds of stress task of kernel stress(): inorder, reorder, one (ctx-less, one lock) and read/write
 * mixed; and ordered (ordered contexts, as DmabufSync locks).
 */
export type StressTask = 'inorder' | 'reorder' | 'one' | 'mixed' | 'ordered';

/** Runs the stress tasks concurrently over `locks` until `until`; resolves to each task's loop count. */
export function runStress(
  cls: WwClass, locks: WwMutex[], counters: Int32Array, done: Int32Array, until: number, tasks: StressTask[],
  stats: { backoffs: number } = { backoffs: 0 },
): Promise<number[]> {
  const mixedMode = (i: number): 'read' | 'write' => (i % 3 === 0 ? 'write' : 'read');
  return Promise.all(
    tasks.map((t) =>
      t === 'inorder' ? stressInorder(cls, locks, counters, done, until)
      : t === 'reorder' ? stressReorder(cls, locks, counters, done, until)
      : t === 'mixed' ? stressReorder(cls, locks, counters, done, until, 'mixed', mixedMode)
      : t === 'ordered' ? stressOrdered(cls, locks, counters, done, until, stats)
      : stressOne(locks, counters, done, until),
    ),
  );
}
