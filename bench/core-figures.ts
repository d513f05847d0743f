/**
 * Figures of the lock core alone (lib/ww: WwClass, AcquireContext, WwMutex), without a dma-buf or a
 * syscall per lock, so they run on any host. scripts/bench.sh runs them natively on the host: under QEMU TCG
 * JavaScript costs far more relative to syscalls than on hardware, so the VM's numbers overstate our own
 * overhead. Mutexes are keyed like DmabufSync's (an explicit 64-bit key per mutex; keys from a range no
 * inode reaches, so nothing else in the store's default domain can collide with them).
 *
 * 1c: what DmabufSync.lock()+unlock() does in the lock core, uncontended, vs async-mutex.
 * 3c: stress_reorder (figure 3's task/subset grid) on the lock core, vs per-key async-mutex in sorted order.
 * Figures 3pc (core-stress-processes.ts) and 9c (core-handoff.ts), the lock core across processes and in
 * hand-offs, use the keys and the stress of this file.
 */
import { Mutex, type MutexInterface } from 'async-mutex';
import { WwClass, WwMutex, type AcquireContext } from '../lib';
import { ROUNDS, WARM_MS, log, results, rows, runStress, subsetSize } from './figures';
import { SCALE, fmtNs, interleaved, nowMs, prng, randomSubset, timeLoop, timeSync, verdict } from './util';

/** Figure 3c: the length of one of our stress runs (x SCALE), which the count per grid point is calibrated for. */
const RUN_MS = 500;
/** DmabufSync's acquire contexts carry a hold limit, which arms the watchdog per grant: so do ours. */
const MAX_HOLD_MS = 10_000;

/**
 * The first key of a run's mutexes: 2^62 + `range` x 2^52 + pid x 4096. Each figure draws from its own
 * `range` (1c and 3c: 0; 9c: 1; 3pc: 2), and the pid (of the bench process, also in its peers) keeps runs
 * of other benches on the same machine apart: the store's default domain is machine-wide.
 */
export function keyBase(range: number, pid = process.pid): bigint {
  return (1n << 62n) + BigInt(range) * (1n << 52n) + BigInt(pid) * 4096n;
}

/** `n` keyed mutexes of `cls` from `base` on, keys ascending with the index (so sorting indices sorts keys). */
export function keyedMutexes(cls: WwClass, n: number, base = keyBase(0)): WwMutex[] {
  return Array.from({ length: n }, (_, i) => new WwMutex(cls, base + BigInt(i)));
}

// ---------------------------------------------------------------------------------------------------------
// Figure 1c: the lock-core part of one uncontended DmabufSync lock()+unlock().

/**
 * One uncontended lock+unlock as DmabufSync does it, minus the syscalls: a context, every mutex for write
 * (tryLock first, lock() only if busy), done(), unlock each, fini(). Called and awaited like lock().
 */
async function coreLockUnlock(cls: WwClass, ms: WwMutex[]): Promise<void> {
  const ctx = cls.acquireContext({ name: 'fig1c', maxHoldMs: MAX_HOLD_MS, ordered: true });
  for (const m of ms) if (!m.tryLock('write', ctx)) await m.lock(ctx, 'write');
  ctx.done();
  for (const m of ms) m.unlock(ctx);
  ctx.fini();
}

/** The baseline: acquire every async-mutex in order, release them all (one awaited async call). */
async function mutexLockUnlock(ms: Mutex[]): Promise<void> {
  const releases: MutexInterface.Releaser[] = [];
  for (const m of ms) releases.push(await m.acquire());
  for (let k = releases.length - 1; k >= 0; k--) (releases[k] as MutexInterface.Releaser)();
}

/**
 * Figure 1c: uncontended lock-core cost of DmabufSync.lock()+unlock() for 1 and 8 mutexes vs async-mutex
 * (target <= 1.2x, issue 17), with two informational rows of what part of it costs: the context alone,
 * and the await floor.
 */
export async function fig1c(): Promise<void> {
  const cls = new WwClass('wound-wait', 'fig1c');
  const out: Record<string, unknown> = {};
  let base1 = NaN;
  for (const n of [1, 8]) {
    const ours = keyedMutexes(cls, n);
    const theirs = Array.from({ length: n }, () => new Mutex());
    const a = (): Promise<void> => coreLockUnlock(cls, ours);
    const b = (): Promise<void> => mutexLockUnlock(theirs);
    await timeLoop(async () => {
      await a();
      await b();
    }, WARM_MS / 2, 0);
    const r = await interleaved(
      ROUNDS,
      async () => (await timeLoop(a, 1500 / ROUNDS, 300 / ROUNDS)).nsPerOp,
      async () => (await timeLoop(b, 1500 / ROUNDS, 300 / ROUNDS)).nsPerOp,
    );
    for (const m of ours) m.dispose();
    if (n === 1) base1 = r.b;
    out[`mutexes${n}`] = { oursNsPerOp: r.a, asyncMutexNsPerOp: r.b, ratio: r.ratio, roundRatios: r.ratios };
    rows.push({
      figure: '1c',
      what: `lock core of lock+unlock, ${n} mutex${n > 1 ? 'es' : ''} (ctx, tryLock, done, unlock, fini)`,
      ours: fmtNs(r.a),
      baseline: `${fmtNs(r.b)} (async-mutex)`,
      ratio: r.ratio,
      target: '<= 1.2x',
      verdict: verdict(r.ratio, 'le', 1.2),
      note: `median of ${ROUNDS} interleaved rounds' ratios (${r.ratios.map((x) => x.toFixed(2)).join(', ')})`,
    });
  }
  // Where the 1-mutex time goes: the context's own cost, and the floor of one awaited async call.
  const ctxNs = timeSync(() => {
    const ctx = cls.acquireContext({ name: 'fig1c', maxHoldMs: MAX_HOLD_MS, ordered: true });
    ctx.done();
    ctx.fini();
  }, 800).nsPerOp;
  const floorNs = (await timeLoop(async () => await (async () => undefined)(), 800)).nsPerOp;
  out.contextOnlyNsPerOp = ctxNs;
  out.awaitFloorNsPerOp = floorNs;
  results.fig1c = out;
  for (const [what, ns] of [['  of which acquireContext + done + fini', ctxNs], ['  floor: one awaited empty async call', floorNs]] as const) {
    rows.push({ figure: '1c', what, ours: fmtNs(ns), baseline: `${fmtNs(base1)} (async-mutex, 1)`, ratio: ns / base1, target: '(info)', verdict: '' });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Figure 3c: stress_reorder on the lock core.

/** One stress run of either side: throughput and what its checks found. */
export interface CoreStressRun {
  ops: number;
  ms: number;
  opsPerSec: number;
  deadlocked: boolean;
  error?: string;
  /** Increments lost: the counters' shortfall against the increments made (0 unless exclusion failed). */
  lost: number;
  backoffs: number;
  /** Increments this run made per counter (index < M). */
  expected: number[];
}

/** The counters of a stress run: a plain array, or shared memory (figure 3pc: one per mutex, every process). */
export type Counters = number[] | Int32Array;

/**
 * The critical section of both sides: reads every counter, yields once (figure 3's tasks hold across at
 * least one microtask, since they await lock()), then writes each back plus one. Two tasks inside at once
 * would lose an increment, which the exact counter check then reports.
 */
async function critical(counts: Counters, expected: number[], idx: number[]): Promise<void> {
  const before = idx.map((k) => counts[k] as number);
  await null;
  for (let j = 0; j < idx.length; j++) {
    const k = idx[j] as number;
    counts[k] = (before[j] as number) + 1;
    expected[k] = (expected[k] as number) + 1;
  }
}

/**
 * Locks `ms` (sorted by key) for write under the ordered context `ctx` as DmabufSync's #acquireAll does:
 * tryLock, else lock(); on EDEADLK (only an unordered context can cause one) unlock everything, wait until the
 * contended mutex is free and retry in order with the same context (it keeps its age). `held` lists what is
 * held at every await. Returns the number of back-offs.
 */
async function acquireAll(ms: WwMutex[], ctx: AcquireContext, held: WwMutex[], opts: { signal: AbortSignal }): Promise<number> {
  let backoffs = 0;
  for (;;) {
    let failed: WwMutex | undefined;
    try {
      for (const m of ms) {
        if (!m.tryLock('write', ctx)) {
          failed = m;
          await m.lock(ctx, 'write', opts);
        }
        held.push(m);
      }
      return backoffs;
    } catch (err) {
      for (const m of held) m.unlock(ctx);
      held.length = 0;
      if ((err as { code?: string }).code !== 'EDEADLK') throw err;
      backoffs++;
      await (failed as WwMutex).waitUnlocked('write', opts);
    }
  }
}

/**
 * Every task's ops, drawn as figure 3 draws them (same seeds, subset sizes, prng and randomSubset), each
 * subset sorted by key (DmabufSync.lock() takes its buffers in inode order). Drawn before the clock starts:
 * at tens of µs an op, the drawing would be a good part of what is timed. Tasks `first` … `first`+T-1: a
 * task's ops depend on its number only, so tasks split over processes (figure 3pc) do the same work.
 */
export function planOps(T: number, M: number, count: number, seed: number, first = 0): number[][][] {
  return Array.from({ length: T }, (_, i) => {
    const t = first + i;
    const rand = prng(seed * 1000 + t);
    return Array.from({ length: count }, () => randomSubset(rand, M, subsetSize(rand, M)).sort((x, y) => x - y));
  });
}

/**
 * Our side: every task runs its planned ops, each op under one fresh acquire context. `counts` (zeroed by
 * the caller when given) are the counters the critical sections increment; `lost` compares them with this
 * run's own increments, so it means something only when no other process increments them meanwhile.
 */
export async function stressCore(
  cls: WwClass,
  mutexes: WwMutex[],
  M: number,
  plan: number[][][],
  counts: Counters = new Array<number>(M).fill(0),
  stallMs?: number,
): Promise<CoreStressRun> {
  const expected = new Array<number>(M).fill(0);
  const lists = plan.map((ops) => ops.map((idx) => idx.map((k) => mutexes[k] as WwMutex)));
  let backoffs = 0;
  const r = await runStress(
    plan.length,
    async (t, signal, done) => {
      const ops = plan[t] as number[][];
      const opLists = lists[t] as WwMutex[][];
      const opts = { signal };
      const held: WwMutex[] = [];
      for (let i = 0; i < ops.length; i++) {
        const ctx = cls.acquireContext({ name: `stress-${t}`, maxHoldMs: MAX_HOLD_MS, ordered: true });
        try {
          // Not `backoffs += await …`: that reads `backoffs` before the await and drops other tasks' counts.
          const b = await acquireAll(opLists[i] as WwMutex[], ctx, held, opts);
          backoffs += b;
          ctx.done();
          await critical(counts, expected, ops[i] as number[]);
        } finally {
          for (const m of held) m.unlock(ctx);
          held.length = 0;
          ctx.fini();
        }
        done();
      }
    },
    () => undefined, // the aborted signal rejects every pending lock()
    stallMs,
  );
  return { ...r, opsPerSec: (r.ops / r.ms) * 1000, lost: lostUpdates(counts, expected), backoffs, expected };
}

/** The baseline: the same planned ops with one async-mutex per key, acquired in sorted order. */
async function stressSortedMutex(M: number, plan: number[][][]): Promise<CoreStressRun> {
  const counts = new Array<number>(M).fill(0);
  const expected = new Array<number>(M).fill(0);
  const mutexes = Array.from({ length: M }, () => new Mutex());
  const r = await runStress(
    plan.length,
    async (t, signal, done) => {
      for (const idx of plan[t] as number[][]) {
        const releases: MutexInterface.Releaser[] = [];
        try {
          for (const k of idx) releases.push(await (mutexes[k] as Mutex).acquire());
          if (signal.aborted) return;
          await critical(counts, expected, idx);
        } finally {
          for (let k = releases.length - 1; k >= 0; k--) (releases[k] as MutexInterface.Releaser)();
        }
        done();
      }
    },
    () => {
      for (const m of mutexes) m.cancel();
    },
  );
  return { ...r, opsPerSec: (r.ops / r.ms) * 1000, lost: lostUpdates(counts, expected), backoffs: 0, expected };
}

function lostUpdates(counts: Counters, expected: number[]): number {
  let lost = 0;
  for (let i = 0; i < expected.length; i++) lost += (expected[i] as number) - (counts[i] as number);
  return lost;
}

/**
 * Figure 3c: stress_reorder on the lock core, T in {4, 16, 64} x M in {8, 64}, ours/baseline ops/s as the
 * median of ROUNDS interleaved runs (target >= 1.0x); a stall, an error or a lost update in any round is a
 * MISS. After a warm-up, a short probe run per grid point calibrates the count so that each of our runs lasts
 * about RUN_MS x SCALE.
 */
export async function fig3c(): Promise<void> {
  const cls = new WwClass('wound-wait', 'fig3c');
  const mutexes = keyedMutexes(cls, 64);
  try {
    // JIT warm-up of both sides (figure 3's warm-up shape: 16 tasks on 8 mutexes) for WARM_MS / 2.
    const warmPlan = planOps(16, 8, 50, 98);
    const warmUntil = nowMs() + (WARM_MS / 2) * SCALE;
    let warmOps = 0;
    do {
      warmOps += (await stressCore(cls, mutexes, 8, warmPlan)).ops;
      await stressSortedMutex(8, warmPlan);
    } while (nowMs() < warmUntil);
    const out: Record<string, unknown> = { warmUpOps: warmOps };
    for (const M of [8, 64]) {
      for (const T of [4, 16, 64]) {
        const seed = M * 100 + T;
        // Calibration: a short run of ours on this grid point sets the count for about RUN_MS a run.
        const probe = await stressCore(cls, mutexes, M, planOps(T, M, Math.max(2, Math.ceil(400 / T)), seed));
        const perOpMs = probe.ms / Math.max(1, probe.ops);
        const count = Math.max(2, Math.round((RUN_MS * SCALE) / perOpMs / T));
        const plan = planOps(T, M, count, seed);
        const runs: Array<{ ours: CoreStressRun; sorted: CoreStressRun }> = [];
        let last: CoreStressRun | undefined;
        const r = await interleaved(
          ROUNDS,
          async () => (last = await stressCore(cls, mutexes, M, plan)).opsPerSec,
          async () => {
            const sorted = await stressSortedMutex(M, plan);
            runs.push({ ours: last as CoreStressRun, sorted });
            return sorted.opsPerSec;
          },
        );
        const bad = runs.filter(({ ours, sorted }) => ours.deadlocked || ours.error || ours.lost !== 0 || sorted.lost !== 0);
        const backoffs = runs.reduce((sum, { ours }) => sum + ours.backoffs, 0);
        const held = mutexes.filter((m) => m.isLocked()).length;
        out[`T${T}_M${M}`] = { count, probeMsPerOp: perOpMs, ratio: r.ratio, roundRatios: r.ratios, runs, mutexesLeftLocked: held };
        log(`fig3c T=${T} M=${M}: ours ${r.a.toFixed(0)}/s, sorted async-mutex ${r.b.toFixed(0)}/s`);
        const first = bad[0];
        const problem = first
          ? first.ours.deadlocked
            ? 'ours STALLED'
            : first.ours.error
              ? `ours error: ${first.ours.error}`
              : `LOST UPDATES ours=${first.ours.lost} sorted=${first.sorted.lost}`
          : held > 0
            ? `${held} mutexes left locked`
            : undefined;
        rows.push({
          figure: '3c',
          what: `lock-core stress_reorder T=${T} M=${M} (${count} ops/task x ${ROUNDS})`,
          ours: `${r.a.toFixed(0)} ops/s`,
          baseline: `${r.b.toFixed(0)} ops/s (sorted async-mutex)`,
          ratio: r.ratio,
          target: '>= 1.0x',
          verdict: problem ? 'MISS' : verdict(r.ratio, 'ge', 1.0),
          note: problem ?? `counters ok, ${backoffs} backoffs`,
        });
      }
    }
    results.fig3c = out;
  } finally {
    for (const m of mutexes) if (!m.isLocked()) m.dispose();
  }
}
