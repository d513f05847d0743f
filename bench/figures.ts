/**
 * The figures of the benchmark suite (bench/run.ts runs them and prints the table). Each pushes its rows
 * (ours, baseline, ratio, target, PASS/MISS) and stores its raw numbers in `results`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { once, setMaxListeners } from 'node:events';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { Mutex } from 'async-mutex';
import { DmaBuf, DmabufSync, KmsDisplay, SwapChain, VgemDevice, WwClass, WwMutex, type SyncFile, type VgemBuffer } from '../lib';
import { native } from '../lib/kernel/native';
import { fencesSignaled } from '../lib/kernel/implicit-fences';
import { findPipeline } from '../lib/kernel/kms-pipeline';
import {
  SCALE,
  fmtNs,
  interleaved,
  median,
  nowMs,
  nowNs,
  openFds,
  prng,
  randomSubset,
  rawBaseline,
  sleep,
  timeLoop,
  timeSync,
  verdict,
  type Row,
} from './util';

export const rows: Row[] = [];
export const results: Record<string, unknown> = {};
export const log = (msg: string): void => {
  process.stderr.write(`[bench ${(process.uptime()).toFixed(1)}s] ${msg}\n`);
};

const PAGE = 4096;

function hasVgem(): boolean {
  try {
    VgemDevice.open().close();
    return true;
  } catch {
    return false;
  }
}

export const devices = fs.existsSync('/dev/udmabuf') && hasVgem();

export function allocBufs(n: number): DmaBuf[] {
  return Array.from({ length: n }, () => DmaBuf.allocUdmabuf(PAGE));
}

function closeAll(bufs: DmaBuf[]): void {
  for (const b of bufs) b.close();
}

// ---------------------------------------------------------------------------------------------------------
// Figure 1: uncontended CPU lock+unlock of 1 and 8 buffers vs the C baseline doing the same syscalls.
export async function fig1(): Promise<void> {
  const out: Record<string, unknown> = {};
  for (const n of [1, 8]) {
    const bufs = allocBufs(n);
    const s = DmabufSync.init({ name: `fig1-${n}` });
    for (const b of bufs) s.get(b, 'rw');
    const lockUnlock = async (): Promise<void> => {
      await s.lock();
      await s.unlock();
    };
    // Under TCG the JIT needs seconds to reach steady state: warm up long before the first round.
    await timeLoop(lockUnlock, WARM_MS, 0);
    const r = await interleaved(
      ROUNDS,
      async () => (await timeLoop(lockUnlock, 2000 / ROUNDS, 300 / ROUNDS)).nsPerOp,
      () => rawBaseline<{ nsPerOp: number }>(['lock', String(n), String((1500 / ROUNDS) * SCALE), 'rw']).nsPerOp,
    );
    // The addon floor: the batched calls a lock+unlock makes (one poll() over the buffers, SYNC START for
    // each, SYNC END for each), with no JavaScript around them.
    const c = native.constants;
    const fds = Int32Array.from(bufs, (b) => b.fd);
    const events = new Uint32Array(n).fill(c.POLLOUT);
    const start = new Uint32Array(n).fill(c.DMA_BUF_SYNC_START | c.DMA_BUF_SYNC_RW);
    const end = new Uint32Array(n).fill(c.DMA_BUF_SYNC_END | c.DMA_BUF_SYNC_RW);
    const floor = timeSync(() => {
      native.firstUnready(fds, events);
      native.dmaBufSyncEach(fds, start);
      native.dmaBufSyncEach(fds, end);
    }, 1000).nsPerOp;
    // The same syscalls in the two addon calls lock() and unlock() make now (poll + SYNC START in one).
    const floor2 = timeSync(() => {
      native.readyThenSyncEach(fds, events, fds, start);
      native.dmaBufSyncEach(fds, end);
    }, 1000).nsPerOp;
    s.fini();
    closeAll(bufs);
    out[`buffers${n}`] = { oursNsPerOp: r.a, cNsPerOp: r.b, ratio: r.ratio, roundRatios: r.ratios, addonFloorNsPerOp: floor, floorRatio: r.a / floor, batchedFloorNsPerOp: floor2 };
    rows.push({
      figure: '1',
      what: `uncontended lock+unlock, ${n} buffer${n > 1 ? 's' : ''}`,
      ours: fmtNs(r.a),
      baseline: `${fmtNs(r.b)} (C)`,
      ratio: r.ratio,
      target: '<= 1.3x',
      verdict: verdict(r.ratio, 'le', 1.3),
    });
    rows.push({
      figure: '1',
      what: `  vs the addon floor (the same batched addon calls alone), ${n} buffer${n > 1 ? 's' : ''}`,
      ours: fmtNs(r.a),
      baseline: `${fmtNs(floor)} (addon)`,
      ratio: r.a / floor,
      target: '<= 3x',
      verdict: verdict(r.a / floor, 'le', 3),
    });
    rows.push({
      figure: '1',
      what: `  vs the two addon calls it makes (poll + SYNC START in one, SYNC END), ${n} buffer${n > 1 ? 's' : ''}`,
      ours: fmtNs(r.a),
      baseline: `${fmtNs(floor2)} (addon)`,
      ratio: r.a / floor2,
      target: '(info)',
      verdict: '',
    });
  }
  out.breakdown = await fig1Breakdown();
  results.fig1 = out;
}

/** Rounds of interleaved measurement (ours, baseline, ours, …) in figures 1, 1c, 2, 3c and 7. */
export const ROUNDS = 3;
/** JIT warm-up before a figure's first measurement (the VM is emulated: optimisation takes seconds). */
export const WARM_MS = 3000;

/**
 * Where the time of one uncontended lock+unlock of 1 buffer goes: the same run measures each layer alone.
 * Rows "1b" are informational (ratio against the C baseline).
 */
async function fig1Breakdown(): Promise<Record<string, number>> {
  const [buf] = allocBufs(1) as [DmaBuf];
  const fd = buf.fd;
  const c = native.constants;
  const rw = c.DMA_BUF_SYNC_RW;
  const steps: Array<[string, () => Promise<number> | number]> = [
    ['C: poll, SYNC START, SYNC END', () => rawBaseline<{ nsPerOp: number }>(['lock', '1', String(800 * SCALE), 'rw']).nsPerOp],
    [
      'addon calls only (same 3 syscalls via N-API)',
      () =>
        timeSync(() => {
          native.pollReady(fd, c.POLLOUT);
          native.dmaBufSync(fd, c.DMA_BUF_SYNC_START | rw);
          native.dmaBufSync(fd, c.DMA_BUF_SYNC_END | rw);
        }, 800).nsPerOp,
    ],
    [
      'lib wrappers: fencesSignaled + syncStart + syncEnd',
      () =>
        timeSync(() => {
          fencesSignaled(fd, 'rw');
          buf.syncStart('rw');
          buf.syncEnd('rw');
        }, 800).nsPerOp,
    ],
  ];
  const cls = new WwClass('wound-wait', 'breakdown');
  const m = new WwMutex(cls);
  steps.push([
    'acquireContext + done + fini',
    () =>
      timeSync(() => {
        const ctx = cls.acquireContext({ name: 'b', maxHoldMs: 10_000 });
        ctx.done();
        ctx.fini();
      }, 800).nsPerOp,
  ]);
  steps.push([
    'WwMutex lock(write)+unlock, context per op',
    async () =>
      (
        await timeLoop(async () => {
          const ctx = cls.acquireContext({ name: 'b', maxHoldMs: 10_000 });
          await m.lock(ctx, 'write');
          m.unlock(ctx);
          ctx.fini();
        }, 800)
      ).nsPerOp,
  ]);
  steps.push(['two awaited empty async calls (microtask floor)', async () => (await timeLoop(async () => {
    await (async () => undefined)();
    await (async () => undefined)();
  }, 800)).nsPerOp]);
  const s = DmabufSync.init({ name: 'breakdown' });
  s.get(buf, 'rw');
  steps.push([
    'DmabufSync lock+unlock (all of the above)',
    async () =>
      (
        await timeLoop(async () => {
          await s.lock();
          await s.unlock();
        }, 800)
      ).nsPerOp,
  ]);
  const out: Record<string, number> = {};
  let cNs = NaN;
  for (const [what, fn] of steps) {
    const ns = await fn();
    out[what] = ns;
    if (Number.isNaN(cNs)) cNs = ns;
    rows.push({ figure: '1b', what: `  ${what}`, ours: fmtNs(ns), baseline: `${fmtNs(cNs)} (C)`, ratio: ns / cNs, target: '(info)', verdict: '' });
  }
  const addonNs = out['addon calls only (same 3 syscalls via N-API)'] as number;
  const wrapNs = out['lib wrappers: fencesSignaled + syncStart + syncEnd'] as number;
  rows.push({
    figure: '1b',
    what: '  lib wrappers vs the addon calls they make',
    ours: fmtNs(wrapNs),
    baseline: `${fmtNs(addonNs)} (addon)`,
    ratio: wrapNs / addonNs,
    target: '<= 1.3x',
    verdict: verdict(wrapNs / addonNs, 'le', 1.3),
  });
  s.fini();
  m.dispose();
  buf.close();
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Figure 2: an elided read lock (another context holds read) vs async-mutex acquire+release.
export async function fig2(): Promise<void> {
  const cls = new WwClass('wound-wait', 'bench');
  const m = new WwMutex(cls);
  const holder = cls.acquireContext({ name: 'holder' });
  await m.lock(holder, 'read');
  const ctx = cls.acquireContext({ name: 'reader' });
  const mutex = new Mutex();
  await timeLoop(async () => {
    await m.lock(ctx, 'read');
    m.unlock(ctx);
    const release = await mutex.acquire();
    release();
  }, WARM_MS / 2, 0);
  const r = await interleaved(
    ROUNDS,
    async () =>
      (
        await timeLoop(async () => {
          await m.lock(ctx, 'read');
          m.unlock(ctx);
        }, 1500 / ROUNDS, 300 / ROUNDS)
      ).nsPerOp,
    async () =>
      (
        await timeLoop(async () => {
          const release = await mutex.acquire();
          release();
        }, 1500 / ROUNDS, 300 / ROUNDS)
      ).nsPerOp,
  );
  const ours = { nsPerOp: r.a };
  const base = { nsPerOp: r.b };
  // The same with a fresh acquire context per lock (what DmabufSync.lock() does), for reference.
  const withCtx = await timeLoop(async () => {
    const c = cls.acquireContext({ name: 'reader' });
    await m.lock(c, 'read');
    m.unlock(c);
    c.fini();
  }, 1000, 200);
  ctx.fini();
  m.unlock(holder);
  holder.fini();
  m.dispose();
  const ratio = r.ratio;
  const ratioCtx = withCtx.nsPerOp / base.nsPerOp;
  results.fig2 = { oursNsPerOp: ours.nsPerOp, withContextNsPerOp: withCtx.nsPerOp, asyncMutexNsPerOp: base.nsPerOp, ratio, ratioWithContext: ratioCtx };
  rows.push({
    figure: '2',
    what: 'elided read lock+unlock (WwMutex, reader held)',
    ours: fmtNs(ours.nsPerOp),
    baseline: `${fmtNs(base.nsPerOp)} (async-mutex)`,
    ratio,
    target: '<= 2x',
    verdict: verdict(ratio, 'le', 2),
  });
  rows.push({
    figure: '2',
    what: '  same + acquireContext/fini per lock',
    ours: fmtNs(withCtx.nsPerOp),
    baseline: `${fmtNs(base.nsPerOp)} (async-mutex)`,
    ratio: ratioCtx,
    target: '(info)',
    verdict: '',
  });
}

// ---------------------------------------------------------------------------------------------------------
// Figure 3: stress_reorder. T tasks lock a random subset of M buffers in random order, increment a counter in
// each, for a fixed count. Ours (DmabufSync) vs per-buffer async-mutex in sorted order; unsorted deadlocks.
/** No op done for this long: the stress run is deadlocked (or stalled by a bug) and is aborted. */
export const STALL_MS = 2000;

export interface StressResult {
  ops: number;
  ms: number;
  opsPerSec: number;
  deadlocked: boolean;
  lost: number;
  backoffs?: number;
  error?: string;
}

/**
 * Runs `task(t, signal, done)` for every t < T with a progress watchdog (no op done for `stallMs`: deadlocked,
 * the signal aborts and `onStall` runs); `done()` counts completed ops. The first error a task throws before
 * a stall is returned, not thrown.
 */
export async function runStress(
  T: number,
  task: (t: number, signal: AbortSignal, done: () => void) => Promise<void>,
  onStall: () => void,
  stallMs = STALL_MS,
): Promise<{ ops: number; ms: number; deadlocked: boolean; error?: string }> {
  let ops = 0;
  let last = -1;
  let lastChange = nowMs();
  let deadlocked = false;
  const ac = new AbortController();
  setMaxListeners(0, ac.signal); // every waiting lock() listens to it
  const t0 = nowMs();
  let error: string | undefined;
  const watchdog = setInterval(() => {
    if (ops !== last) {
      last = ops;
      lastChange = nowMs();
    } else if (nowMs() - lastChange > stallMs && !deadlocked) {
      deadlocked = true;
      ac.abort();
      onStall();
    }
  }, 50);
  const tasks = Array.from({ length: T }, (_, t) =>
    task(t, ac.signal, () => {
      ops++;
    }).catch((err: unknown) => {
      if (!deadlocked && error === undefined) error = `${(err as Error).message}`;
    }),
  );
  await Promise.all(tasks);
  const ms = (deadlocked ? lastChange : nowMs()) - t0;
  clearInterval(watchdog);
  return { ops, ms, deadlocked, error };
}

/** Size of one op's random subset in stress_reorder: 2..min(M, 8), drawn from `rand`. */
export function subsetSize(rand: () => number, M: number): number {
  const max = Math.min(M, 8);
  return 2 + Math.floor(rand() * (max - 1)); // 2..min(M, 8)
}

/** One run of our side of stress_reorder: what runStress measured, and the increments each buffer should have. */
export interface OurStressRun {
  ops: number;
  ms: number;
  deadlocked: boolean;
  error?: string;
  backoffs: number;
  /** Increments made per buffer (index < M). */
  expected: number[];
}

/**
 * Our side of stress_reorder for tasks firstTask … firstTask+T-1 (each task's seed depends on its number
 * only, so tasks split over processes do the same work as in one process): each task locks a random subset
 * of the first M buffers with DmabufSync, `count` times, and increments a counter in each.
 */
export async function stressOurTasks(firstTask: number, T: number, M: number, count: number, bufs: DmaBuf[], seed: number, stallMs = STALL_MS): Promise<OurStressRun> {
  const expected = new Array<number>(M).fill(0);
  let backoffs = 0;
  const r = await runStress(
    T,
    async (task, signal, done) => {
      const t = firstTask + task;
      const rand = prng(seed * 1000 + t);
      const s = DmabufSync.init({ name: `stress-${t}` });
      try {
        for (let i = 0; i < count; i++) {
          const order = randomSubset(rand, M, subsetSize(rand, M));
          s.putAll();
          for (const idx of order) s.get(bufs[idx] as DmaBuf, 'rw');
          await s.lock({ signal });
          try {
            for (const idx of order) {
              const u32 = new Uint32Array(s.map(bufs[idx] as DmaBuf).buffer, 0, 1);
              u32[0] = (u32[0] as number) + 1;
              expected[idx] = (expected[idx] as number) + 1;
            }
          } finally {
            await s.unlock();
          }
          done();
        }
      } finally {
        backoffs += s.stats.backoffs;
        if (s.state === 'idle') s.fini();
      }
    },
    () => undefined,
    stallMs,
  );
  return { ...r, backoffs, expected };
}

export async function stressOurs(T: number, M: number, count: number, bufs: DmaBuf[], counters: Uint32Array[], seed: number): Promise<StressResult> {
  for (let i = 0; i < M; i++) (counters[i] as Uint32Array)[0] = 0;
  const { expected, ...r } = await stressOurTasks(0, T, M, count, bufs, seed);
  let lost = 0;
  for (let i = 0; i < M; i++) lost += (expected[i] as number) - ((counters[i] as Uint32Array)[0] as number);
  return { ...r, opsPerSec: (r.ops / r.ms) * 1000, lost };
}

export async function stressMutex(
  T: number,
  M: number,
  count: number,
  bufs: DmaBuf[],
  counters: Uint32Array[],
  seed: number,
  sorted: boolean,
): Promise<StressResult> {
  for (let i = 0; i < M; i++) (counters[i] as Uint32Array)[0] = 0;
  const expected = new Array<number>(M).fill(0);
  const mutexes = Array.from({ length: M }, () => new Mutex());
  const r = await runStress(
    T,
    async (_t, signal, done) => {
      const rand = prng(seed * 1000 + _t);
      for (let i = 0; i < count; i++) {
        const order = randomSubset(rand, M, subsetSize(rand, M));
        const lockOrder = sorted ? [...order].sort((a, b) => a - b) : order;
        const releases: Array<() => void> = [];
        try {
          for (const idx of lockOrder) releases.push(await (mutexes[idx] as Mutex).acquire());
          if (signal.aborted) return;
          for (const idx of order) (bufs[idx] as DmaBuf).syncStart('rw');
          for (const idx of order) {
            const u32 = counters[idx] as Uint32Array;
            u32[0] = (u32[0] as number) + 1;
            expected[idx] = (expected[idx] as number) + 1;
          }
          for (const idx of order) (bufs[idx] as DmaBuf).syncEnd('rw');
        } finally {
          for (let k = releases.length - 1; k >= 0; k--) (releases[k] as () => void)();
        }
        done();
      }
    },
    () => {
      for (const m of mutexes) m.cancel(); // reject the stuck acquire()s so the tasks end
    },
  );
  let lost = 0;
  if (!r.deadlocked) for (let i = 0; i < M; i++) lost += (expected[i] as number) - ((counters[i] as Uint32Array)[0] as number);
  return { ...r, opsPerSec: (r.ops / r.ms) * 1000, lost };
}

export async function fig3(): Promise<void> {
  const bufs = allocBufs(64);
  const maps = bufs.map((b) => b.map());
  const counters = maps.map((m) => new Uint32Array(m.buffer, 0, 1));
  // Warm up both paths, then calibrate the count so that each of our runs lasts about 2.5 s.
  await stressOurs(16, 8, Math.max(3, Math.round(40 * SCALE)), bufs, counters, 98);
  await stressMutex(16, 8, Math.max(3, Math.round(40 * SCALE)), bufs, counters, 98, true);
  const pilot = await stressOurs(4, 8, Math.max(3, Math.round(10 * SCALE)), bufs, counters, 99);
  const perOpMs = pilot.ms / Math.max(1, pilot.ops);
  const budgetMs = 2500 * SCALE;
  log(`fig3 pilot: ${perOpMs.toFixed(2)} ms/op`);
  const out: Record<string, unknown> = { pilotMsPerOp: perOpMs };
  for (const M of [8, 64]) {
    for (const T of [4, 16, 64]) {
      const count = Math.max(2, Math.round(budgetMs / perOpMs / T));
      const seed = M * 100 + T;
      const ours = await stressOurs(T, M, count, bufs, counters, seed);
      const sorted = await stressMutex(T, M, count, bufs, counters, seed, true);
      const unsorted = await stressMutex(T, M, count, bufs, counters, seed, false);
      const ratio = ours.opsPerSec / sorted.opsPerSec;
      out[`T${T}_M${M}`] = { count, ours, sortedAsyncMutex: sorted, unsortedAsyncMutex: unsorted, ratio };
      log(`fig3 T=${T} M=${M}: ours ${ours.opsPerSec.toFixed(0)}/s, sorted ${sorted.opsPerSec.toFixed(0)}/s, unsorted ${unsorted.deadlocked ? 'DEADLOCK' : 'ok'}`);
      const notes: string[] = [];
      notes.push(ours.deadlocked ? 'ours STALLED' : ours.error ? `ours error: ${ours.error}` : `ours no deadlock, ${ours.backoffs} backoffs`);
      notes.push(ours.lost === 0 && sorted.lost === 0 ? 'counters ok' : `LOST UPDATES ours=${ours.lost} sorted=${sorted.lost}`);
      notes.push(
        unsorted.deadlocked
          ? `unsorted async-mutex deadlocked after ${unsorted.ops}/${T * count} ops`
          : `unsorted async-mutex finished (${unsorted.ops} ops, no deadlock this run)`,
      );
      rows.push({
        figure: '3',
        what: `stress_reorder T=${T} M=${M} (${count} ops/task)`,
        ours: `${ours.opsPerSec.toFixed(0)} ops/s`,
        baseline: `${sorted.opsPerSec.toFixed(0)} ops/s (sorted async-mutex)`,
        ratio,
        target: '>= 1.0x',
        verdict: ours.deadlocked || ours.lost !== 0 || ours.error ? 'MISS' : verdict(ratio, 'ge', 1.0),
        note: notes.join('; '),
      });
    }
  }
  for (const m of maps) m.release();
  closeAll(bufs);
  results.fig3 = out;
}

// ---------------------------------------------------------------------------------------------------------
// Figure 4: wake latency, vgem fence signalled (from a worker) → DmabufSync lock() resolves, vs C poll().
// The target: <= 1.5x C poll, or, where Node itself cannot go below a floor, ours within 1.2x of
// that floor measured in the same run. The floor is a uv_poll-woken JS callback on the same kind of fence
// (SyncFile.wait() alone: fence signalled → libuv poll → promise → JS runs), the least any fence wake in
// Node can cost. The worker postMessage wake is printed for reference only: it is a different wake-up
// (uv_async plus message deserialisation and an event dispatch), no lower bound for a fence wake.
function signalWorker(): Worker {
  return new Worker(path.join(__dirname, 'signal-worker.js'));
}

const WAKE_WARM = 100;

/**
 * Attaches a write fence to `bo`, calls `start()` (a wait that the fence blocks), lets the worker signal the
 * fence after `delayMs`, and returns the ns from the signal (the worker's clock, read just before the ioctl)
 * to the wait resolving.
 */
async function fenceWake(worker: Worker, dev: VgemDevice, bo: VgemBuffer, delayMs: number, start: () => Promise<void>): Promise<number> {
  const fence = bo.attachFence('write');
  const p = start();
  const reply = once(worker, 'message');
  worker.postMessage({ fd: dev.fd, id: fence.id, delayMs });
  await p;
  const tWake = nowNs();
  const [msg] = (await reply) as [{ t?: string; error?: string }];
  if (msg.error) throw new Error(`signal worker: ${msg.error}`);
  return Number(tWake - BigInt(msg.t as string));
}

/** Figure 4: fence → lock() wake latency vs C poll(), with the SyncFile.wait() floor and Node's postMessage wake, interleaved per rep. */
export async function fig4(): Promise<void> {
  const REPS = 31;
  const dev = VgemDevice.open();
  const bo = dev.createBuffer(PAGE);
  const worker = signalWorker();
  const s = DmabufSync.init({ name: 'fig4' });
  s.get(bo.dmaBuf, 'read');
  const lat: number[] = [];
  const sfLat: number[] = [];
  const pingLat: number[] = [];
  try {
    // Warm-up: every wake path must be JIT-compiled alike (cold, it runs interpreted under TCG). The three
    // are measured in turn in every rep, so that a change in the machine's load hits them alike.
    for (let i = -WAKE_WARM; i < REPS; i++) {
      const delayMs = i < 0 ? 1 : 5;
      const ours = await fenceWake(worker, dev, bo, delayMs, () => s.lock({ timeoutMs: 15_000 }));
      await s.unlock();
      let sf: SyncFile | undefined;
      const floor = await fenceWake(worker, dev, bo, delayMs, () => {
        sf = bo.dmaBuf.exportSyncFile('read');
        return sf.wait({ timeoutMs: 15_000 });
      });
      sf?.close();
      const pong = once(worker, 'message');
      worker.postMessage({ ping: true, delayMs });
      const [pm] = (await pong) as [{ t: string }];
      const tPong = nowNs();
      if (i >= 0) {
        lat.push(ours);
        sfLat.push(floor);
        pingLat.push(Number(tPong - BigInt(pm.t)));
      }
    }
  } finally {
    if (s.state === 'locked') await s.unlock();
    s.fini();
    await worker.terminate();
    bo.close();
    dev.close();
  }
  const c = rawBaseline<{ medianNs: number; samplesNs: number[] }>(['wake', String(REPS), '5']);
  const ours = median(lat);
  const ratio = ours / c.medianNs;
  const floor = median(sfLat);
  const pingMed = median(pingLat);
  const toFloor = ours / floor;
  const vsC = verdict(ratio, 'le', 1.5);
  const vsFloor = verdict(toFloor, 'le', 1.2);
  results.fig4 = {
    reps: REPS,
    oursMedianNs: ours,
    oursSamplesNs: lat,
    cMedianNs: c.medianNs,
    cSamplesNs: c.samplesNs,
    ratio,
    syncFileWaitMedianNs: floor,
    syncFileWaitSamplesNs: sfLat,
    ratioToFloor: toFloor,
    nodePostMessageMedianNs: pingMed,
    nodePostMessageSamplesNs: pingLat,
    stats: s.stats,
  };
  rows.push({
    figure: '4',
    what: `wake latency fence→lock() resolves (median of ${REPS})`,
    ours: fmtNs(ours),
    baseline: `${fmtNs(c.medianNs)} (C poll)`,
    ratio,
    target: '<= 1.5x C or <= 1.2x floor',
    verdict: vsC === 'PASS' ? 'PASS' : vsFloor,
    note: `floor ${fmtNs(floor)} (SyncFile.wait() alone), ours ${toFloor.toFixed(2)}x it` + (vsC === 'PASS' ? '' : `: ${vsFloor === 'PASS' ? 'within' : 'over'} 1.2x of the floor`),
  });
  rows.push({ figure: '4', what: '  floor: SyncFile.wait() alone (same fence)', ours: fmtNs(floor), baseline: `${fmtNs(c.medianNs)} (C poll)`, ratio: floor / c.medianNs, target: '(info)', verdict: '' });
  rows.push({ figure: '4', what: "  Node's worker postMessage wake (not a floor)", ours: fmtNs(pingMed), baseline: `${fmtNs(c.medianNs)} (C poll)`, ratio: pingMed / c.medianNs, target: '(info)', verdict: '' });
}

// ---------------------------------------------------------------------------------------------------------
// Figure 5: event-loop delay p99 while 1000 tasks wait on locks (held by holders) and fences (vgem). The
// target is "p99 < 5 ms in every run": the measurement runs FIG5_RUNS times and the worst run decides.
const FIG5_WAITERS = 1000;
/** Holders release, and the worker signals fences, one every this many ms. */
const FIG5_INTERVAL_MS = 10;
/**
 * Warm-up runs of figure 5, not counted. In the TCG VM the runs of a process kept getting faster until about
 * the fourth (2026-12-07, 6 sessions of 12 runs: p99 16-74, 10-46, 5-11 ms, then 4-8 ms): V8 optimises
 * the lock path over the first few thousand locks, and the target is the library's steady state.
 */
const FIG5_WARMUP_RUNS = 3;
/** Runs of figure 5 (fewer with DMABUF_BENCH_SCALE < 1). */
const FIG5_RUNS = Math.max(1, Math.round(5 * Math.min(1, SCALE)));

/** What one run of figure 5 measured. */
interface Fig5Run {
  setupMs: number;
  totalMs: number;
  done: number;
  failed: number;
  firstError?: string;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Delay samples taken in the measured part (about one per loop turn, at most one per ms): p99 is about the (samples/100)th largest. */
  samples: number;
  meanMs: number;
  fdsBeforeWaiters: number;
  fdsWhileWaiting: number;
  /** The process's CPU time (user + system) in the measured part, ms: less at the mercy of the host's load than the delays. */
  cpuMs: number;
}

/** Options of one run of figure 5. */
export interface Fig5Options {
  /** Called around the measured part (a profiler's start and stop). */
  measured?: { start(): void; stop(): void };
  /**
   * The fence-signalling worker, already running (see startFig5Worker()); one is started, and waited for,
   * before the measured part and terminated after it when this is absent.
   */
  worker?: Worker;
}

/**
 * Starts the signal worker and waits until it answers a message, so that neither its thread's start nor its
 * module loading falls into a measured part.
 */
export async function startFig5Worker(): Promise<Worker> {
  const worker = signalWorker();
  const answered = once(worker, 'message');
  worker.postMessage({ ping: true, delayMs: 0 });
  await answered;
  return worker;
}

/**
 * One run of figure 5: 50 holders lock 50 buffers and 50 vgem fences are attached, 1000 lock() calls wait on
 * them (half on the locks, half on the fences); the holders release and a worker (started before the
 * measured part) signals the fences every 10 ms while the event-loop delay is recorded.
 */
export async function fig5Once(opts: Fig5Options = {}): Promise<Fig5Run> {
  const { measured } = opts;
  const worker = opts.worker ?? (await startFig5Worker());
  const NBUF = 50;
  const bufs = allocBufs(NBUF);
  const dev = VgemDevice.open();
  const bos: VgemBuffer[] = Array.from({ length: NBUF }, () => dev.createBuffer(PAGE));
  const fences = bos.map((b) => b.attachFence('write'));
  const holders = bufs.map((b, i) => {
    const h = DmabufSync.init({ name: `holder-${i}`, maxHoldMs: 60_000 });
    h.get(b, 'rw');
    return h;
  });
  for (const h of holders) await h.lock();
  const fd0 = openFds();
  const tSetup = nowMs();
  let done = 0;
  let failed = 0;
  let firstError: string | undefined;
  const waits: Array<Promise<void>> = [];
  const syncs: DmabufSync[] = [];
  for (let i = 0; i < FIG5_WAITERS; i++) {
    const s = DmabufSync.init({ name: `waiter-${i}` });
    const onLock = i % 2 === 0;
    s.get(onLock ? (bufs[(i >> 1) % NBUF] as DmaBuf) : (bos[(i >> 1) % NBUF] as VgemBuffer).dmaBuf, 'read');
    syncs.push(s);
    waits.push(
      s
        .lock({ timeoutMs: 120_000 })
        .then(async () => {
          await s.unlock();
          done++;
        })
        .catch((err: unknown) => {
          failed++;
          firstError ??= (err as Error).message;
        }),
    );
  }
  await sleep(50);
  const setupMs = nowMs() - tSetup;
  const fdsWaiting = openFds();
  // Measured from here: 1000 lock() calls pending; releases and fence signals arrive over time.
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  measured?.start();
  const t0 = nowMs();
  const cpu0 = process.cpuUsage();
  const signalled = once(worker, 'message');
  worker.postMessage({ fd: dev.fd, ids: fences.map((f) => f.id), intervalMs: FIG5_INTERVAL_MS });
  for (const holder of holders) {
    await sleep(FIG5_INTERVAL_MS);
    await holder.unlock();
  }
  await signalled;
  await Promise.all(waits);
  const totalMs = nowMs() - t0;
  const cpu = process.cpuUsage(cpu0);
  measured?.stop();
  h.disable();
  if (opts.worker === undefined) await worker.terminate();
  for (const s of syncs) s.fini();
  for (const holder of holders) holder.fini();
  for (const b of bos) b.close();
  dev.close();
  closeAll(bufs);
  return {
    setupMs,
    totalMs,
    done,
    failed,
    firstError,
    p50Ms: h.percentile(50) / 1e6,
    p90Ms: h.percentile(90) / 1e6,
    p99Ms: h.percentile(99) / 1e6,
    samples: h.count,
    maxMs: h.max / 1e6,
    meanMs: h.mean / 1e6,
    fdsBeforeWaiters: fd0,
    fdsWhileWaiting: fdsWaiting,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

/** Figure 5: event-loop delay p99 with 1000 waiters, min/median/max over FIG5_RUNS runs; PASS if every run's is < 5 ms. */
export async function fig5(): Promise<void> {
  // Idle event-loop delay in the same run, for reference.
  const idle = monitorEventLoopDelay({ resolution: 1 });
  idle.enable();
  await sleep(1000 * SCALE);
  idle.disable();
  const idleP99 = idle.percentile(99) / 1e6;
  // One signal worker for every run, running before the first; and FIG5_WARMUP_RUNS warm-up runs, not
  // counted, so that what is measured is the library at steady state, not V8 compiling it.
  const worker = await startFig5Worker();
  const runs: Fig5Run[] = [];
  const warmup: Fig5Run[] = [];
  try {
    for (let r = 0; r < FIG5_WARMUP_RUNS; r++) {
      warmup.push(await fig5Once({ worker }));
      log(`fig5 warm-up ${r + 1}/${FIG5_WARMUP_RUNS} (not counted): p99 ${(warmup[r] as Fig5Run).p99Ms.toFixed(2)} ms`);
    }
    for (let r = 0; r < FIG5_RUNS; r++) {
      runs.push(await fig5Once({ worker }));
      log(`fig5 run ${r + 1}/${FIG5_RUNS}: p99 ${(runs[r] as Fig5Run).p99Ms.toFixed(2)} ms`);
    }
  } finally {
    await worker.terminate();
  }
  const p99s = runs.map((r) => r.p99Ms);
  const p99Min = Math.min(...p99s);
  const p99Max = Math.max(...p99s);
  const p99Median = median(p99s);
  // A waiter that failed in a warm-up run fails the figure too: the warm-up is not measured, but it is run.
  const failed = [...warmup, ...runs].reduce((n, r) => n + r.failed, 0);
  const firstError = [...warmup, ...runs].find((r) => r.firstError !== undefined)?.firstError;
  const done = runs.reduce((n, r) => n + r.done, 0);
  results.fig5 = {
    waiters: FIG5_WAITERS,
    lockWaiters: FIG5_WAITERS / 2,
    fenceWaiters: FIG5_WAITERS / 2,
    releaseIntervalMs: FIG5_INTERVAL_MS,
    idleP99Ms: idleP99,
    p99MinMs: p99Min,
    p99MedianMs: p99Median,
    p99MaxMs: p99Max,
    warmup,
    runs,
  };
  const worstMax = Math.max(...runs.map((r) => r.maxMs));
  rows.push({
    figure: '5',
    what: `event-loop delay p99, ${FIG5_WAITERS} waiters (locks+fences), min/median/max of ${FIG5_RUNS}`,
    ours: `${p99Min.toFixed(2)} / ${p99Median.toFixed(2)} / ${p99Max.toFixed(2)} ms`,
    baseline: `${idleP99.toFixed(2)} ms (idle loop)`,
    ratio: null,
    target: '< 5 ms every run',
    verdict: failed > 0 ? 'MISS' : verdict(p99Max, 'lt', 5),
    note:
      `after ${FIG5_WARMUP_RUNS} warm-up runs (p99 ${warmup.map((r) => r.p99Ms.toFixed(1)).join(', ')} ms, not counted), ${done}/${FIG5_WAITERS * FIG5_RUNS} done, median ${median(runs.map((r) => r.totalMs)).toFixed(0)} ms a run after ` +
      `${median(runs.map((r) => r.setupMs)).toFixed(0)} ms setup, median p90 ${median(runs.map((r) => r.p90Ms)).toFixed(2)} ms of ` +
      `${median(runs.map((r) => r.samples))} samples a run, max delay ${worstMax.toFixed(1)} ms, ` +
      `CPU ${median(runs.map((r) => r.cpuMs)).toFixed(0)} ms a run, ${median(runs.map((r) => r.fdsWhileWaiting - r.fdsBeforeWaiters))} fds opened by the waiters` +
      (failed ? `, ${failed} failed: ${firstError}` : ''),
  });
}

// ---------------------------------------------------------------------------------------------------------
// Figure 6: memory per registered buffer and per sync object; fds per buffer.
function mem(): number {
  global.gc?.();
  global.gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

export async function fig6(): Promise<void> {
  const N = 1000;
  if (!global.gc) log('fig6: run node with --expose-gc for stable numbers');
  const fdsStart = openFds();
  const bufs = allocBufs(N);
  // Baseline: the caller's own DmaBuf objects (one dup'd fd each).
  const before0 = mem();
  const fdsB0 = openFds();
  const extra = bufs.map((b) => DmaBuf.fromFd(b.fd));
  const perDmaBuf = (mem() - before0) / N;
  const fdsPerDmaBuf = (openFds() - fdsB0) / N;
  closeAll(extra);

  const m0 = mem();
  const syncs = Array.from({ length: N }, (_, i) => DmabufSync.init({ name: `mem-${i}` }));
  const m1 = mem();
  const fds1 = openFds();
  syncs.forEach((s, i) => s.get(bufs[i] as DmaBuf, 'rw'));
  const m2 = mem();
  const fds2 = openFds();
  // Locked: no fd or mapping is kept per buffer while held (sync_files are closed after the check).
  for (const s of syncs) await s.lock();
  const fdsLocked = openFds();
  const m3 = mem();
  for (const s of syncs) await s.unlock();
  // Memory kept per finished lock+unlock (should be 0: a finished lock needs nothing).
  const s0 = syncs[0] as DmabufSync;
  const LOCKS = 2000;
  const r0 = mem();
  for (let i = 0; i < LOCKS; i++) {
    await s0.lock();
    await s0.unlock();
  }
  const retainedPerLock = (mem() - r0) / LOCKS;
  for (const s of syncs) s.fini();
  // Registrations stay idle (reusable) after fini() until the caller closes its buffers (or 1 s passes).
  const fdsAfter = openFds();
  closeAll(bufs);
  const fdsLeaked = openFds() - fdsStart;
  const perSync = (m1 - m0) / N;
  const perBuffer = (m2 - m1) / N;
  const fdsPerBuffer = (fds2 - fds1) / N;
  results.fig6 = {
    n: N,
    bytesPerSync: perSync,
    bytesPerRegisteredBuffer: perBuffer,
    bytesPerLockedBuffer: (m3 - m2) / N,
    bytesPerPlainDmaBuf: perDmaBuf,
    fdsPerRegisteredBuffer: fdsPerBuffer,
    fdsPerLockedBuffer: (fdsLocked - fds1) / N,
    fdsPerPlainDmaBuf: fdsPerDmaBuf,
    fdsIdleAfterFini: fdsAfter - fds1,
    fdsLeakedAfterClose: fdsLeaked,
    retainedBytesPerFinishedLock: retainedPerLock,
  };
  rows.push({
    figure: '6',
    what: 'bytes retained per finished lock+unlock',
    ours: `${retainedPerLock.toFixed(0)} B`,
    baseline: '0 B expected',
    ratio: null,
    target: '(info)',
    verdict: retainedPerLock < 16 ? '' : 'MISS',
    note: retainedPerLock < 16 ? undefined : 'kept until the watchdog timer fires (maxHoldMs)',
  });
  rows.push({ figure: '6', what: 'bytes per sync object (empty)', ours: `${perSync.toFixed(0)} B`, baseline: '', ratio: null, target: '(info)', verdict: '' });
  rows.push({
    figure: '6',
    what: 'bytes per registered buffer (get)',
    ours: `${perBuffer.toFixed(0)} B`,
    baseline: `${perDmaBuf.toFixed(0)} B (a DmaBuf.fromFd)`,
    ratio: perBuffer / perDmaBuf,
    target: '(info)',
    verdict: '',
  });
  rows.push({
    figure: '6',
    what: 'fds per registered buffer (idle / locked)',
    ours: `${fdsPerBuffer.toFixed(2)} / ${((fdsLocked - fds1) / N).toFixed(2)}`,
    baseline: `${fdsPerDmaBuf.toFixed(2)} (a DmaBuf.fromFd)`,
    ratio: null,
    target: '(info)',
    verdict: fdsLeaked === 0 ? '' : 'MISS',
    note:
      `${fdsAfter - fds1} kept idle after fini(), ` +
      (fdsLeaked === 0 ? 'none left once the buffers are closed' : `${fdsLeaked} fds leaked after the buffers were closed`),
  });
}

// ---------------------------------------------------------------------------------------------------------
// Figure 7: growth, cost per lock as buffers per sync go 1→64 and tasks 1→64 (uncontended).
const SIZES = [1, 2, 4, 8, 16, 32, 64];

function linearFit(xs: number[], ys: number[]): { slope: number; intercept: number; r2: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = (xs[i] as number) - mx;
    const dy = (ys[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, r2: (sxy * sxy) / (sxx * syy) };
}

export async function fig7(): Promise<void> {
  const bufs = allocBufs(64);
  const byBuffers: Array<{ buffers: number; nsPerOp: number; cNsPerOp: number }> = [];
  for (const n of SIZES) {
    const s = DmabufSync.init({ name: `growth-${n}` });
    for (const b of bufs.slice(0, n)) s.get(b, 'rw');
    const lockUnlock = async (): Promise<void> => {
      await s.lock();
      await s.unlock();
    };
    const ir = await interleaved(
      3,
      async () => (await timeLoop(lockUnlock, 350, 70)).nsPerOp,
      () => rawBaseline<{ nsPerOp: number }>(['lock', String(n), String(250 * SCALE), 'rw']).nsPerOp,
    );
    s.fini();
    const r = { nsPerOp: ir.a };
    const c = { nsPerOp: ir.b };
    byBuffers.push({ buffers: n, nsPerOp: r.nsPerOp, cNsPerOp: c.nsPerOp });
    rows.push({
      figure: '7',
      what: `buffers per sync = ${n}`,
      ours: `${fmtNs(r.nsPerOp)} (${fmtNs(r.nsPerOp / n)}/buf)`,
      baseline: `${fmtNs(c.nsPerOp)} (C)`,
      ratio: ir.ratio,
      target: 'linear',
      verdict: '',
    });
  }
  const byTasks: Array<{ tasks: number; nsPerLock: number; ops: number }> = [];
  for (const T of SIZES) {
    const syncs = Array.from({ length: T }, (_, t) => {
      const s = DmabufSync.init({ name: `task-${t}` });
      s.get(bufs[t] as DmaBuf, 'rw');
      return s;
    });
    let ops = 0;
    // An uncontended lock() resolves through microtasks only: a timer would never fire, so check the clock.
    const loop = async (s: DmabufSync, until: number): Promise<void> => {
      while (nowMs() < until) {
        await s.lock();
        await s.unlock();
        ops++;
      }
    };
    const warmUntil = nowMs() + 200 * SCALE;
    await Promise.all(syncs.map((s) => loop(s, warmUntil)));
    // Three short rounds, median: one GC or watchdog sweep must not make the point.
    const perRound: number[] = [];
    let total = 0;
    for (let round = 0; round < 3; round++) {
      ops = 0;
      const t0 = nowNs();
      const until = nowMs() + 350 * SCALE;
      await Promise.all(syncs.map((s) => loop(s, until)));
      perRound.push(Number(nowNs() - t0) / ops);
      total += ops;
    }
    for (const s of syncs) s.fini();
    byTasks.push({ tasks: T, nsPerLock: median(perRound), ops: total });
  }
  const base1 = (byTasks[0] as { nsPerLock: number }).nsPerLock;
  for (const p of byTasks) {
    rows.push({
      figure: '7',
      what: `tasks = ${p.tasks} (1 own buffer each)`,
      ours: `${fmtNs(p.nsPerLock)}/lock`,
      baseline: `${fmtNs(base1)} (1 task)`,
      ratio: p.nsPerLock / base1,
      target: 'flat',
      verdict: '',
    });
  }
  closeAll(bufs);
  const fit = linearFit(byBuffers.map((p) => p.buffers), byBuffers.map((p) => p.nsPerOp));
  const cFit = linearFit(byBuffers.map((p) => p.buffers), byBuffers.map((p) => p.cNsPerOp));
  const ratios = byTasks.map((p) => p.nsPerLock / base1);
  const spread = Math.max(...ratios) / Math.min(...ratios);
  results.fig7 = { byBuffers, byTasks, fit, cFit, taskSpread: spread };
  rows.push({
    figure: '7',
    what: 'fit: cost = a + b*buffers',
    ours: `b=${fmtNs(fit.slope)}/buf, a=${fmtNs(fit.intercept)}, R²=${fit.r2.toFixed(3)}`,
    baseline: `C: b=${fmtNs(cFit.slope)}/buf, a=${fmtNs(cFit.intercept)}`,
    ratio: fit.slope / cFit.slope,
    target: 'linear',
    verdict: fit.r2 >= 0.98 ? 'PASS' : 'MISS',
  });
  rows.push({
    figure: '7',
    what: 'tasks 1→64: max/min cost per lock',
    ours: `${spread.toFixed(2)}x`,
    baseline: '',
    ratio: null,
    target: 'flat (<= 1.5x)',
    verdict: verdict(spread, 'le', 1.5),
  });
}

// ---------------------------------------------------------------------------------------------------------
// Figure 8: a KMS display through the swap chain vs C issuing the same ioctls (bench/raw-baseline.c flip):
// frames/s with out-fences not awaited (the app draws one row, acquire waits for the display), and the
// median present→out-fence latency. Only one process can be DRM master: ours closes the card before C runs.
export async function fig8(): Promise<void> {
  let probe: KmsDisplay;
  try {
    probe = KmsDisplay.open();
  } catch (err) {
    rows.push({ figure: '8', what: 'display: swap-chain frames/s vs C', ours: '', baseline: '', ratio: null, target: '', verdict: 'SKIP', note: (err as Error).message.slice(0, 80) });
    return;
  }
  const driver = `${probe.driver} ${probe.width}x${probe.height}`;
  probe.close();
  const frames = Math.max(20, Math.round(200 * SCALE));
  const ours = async (): Promise<{ fps: number; latencyNs: number }> => {
    const display = KmsDisplay.open();
    const chain = SwapChain.create(display);
    try {
      const pass = async (awaitFlip: boolean): Promise<{ fps: number; latencies: number[] }> => {
        const latencies: number[] = [];
        let t0 = nowNs();
        for (let n = -2; n < frames; n++) {
          const f = await chain.acquire({ timeoutMs: 10_000 });
          f.pixels().fill(n & 0xffffff, 0, f.width);
          const tp = nowNs();
          const out = await chain.present(f);
          if (awaitFlip) {
            await out.wait({ timeoutMs: 10_000 });
            if (n >= 0) latencies.push(Number(nowNs() - tp));
          }
          out.close();
          if (n === -1) t0 = nowNs();
        }
        return { fps: frames / (Number(nowNs() - t0) / 1e9), latencies };
      };
      const { fps } = await pass(false);
      const { latencies } = await pass(true);
      return { fps, latencyNs: median(latencies) };
    } finally {
      chain.close();
      display.close();
    }
  };
  const c = (): { fps: number; latencyNs: number } => {
    const r = rawBaseline<{ framesPerS: number; medianLatencyNs: number }>(['flip', String(frames)]);
    return { fps: r.framesPerS, latencyNs: r.medianLatencyNs };
  };
  await ours(); // warm-up (JIT)
  await fig8Floor(frames);
  const rounds: Array<{ ours: { fps: number; latencyNs: number }; floor: { fps: number; latencyNs: number }; c: { fps: number; latencyNs: number } }> = [];
  for (let r = 0; r < 3; r++) rounds.push({ ours: await ours(), floor: await fig8Floor(frames), c: c() });
  const fpsOurs = median(rounds.map((r) => r.ours.fps));
  const fpsC = median(rounds.map((r) => r.c.fps));
  const fpsFloor = median(rounds.map((r) => r.floor.fps));
  const fpsRatio = median(rounds.map((r) => r.c.fps / r.ours.fps));
  const fpsFloorRatio = median(rounds.map((r) => r.floor.fps / r.ours.fps));
  const latOurs = median(rounds.map((r) => r.ours.latencyNs));
  const latC = median(rounds.map((r) => r.c.latencyNs));
  const latFloor = median(rounds.map((r) => r.floor.latencyNs));
  const latRatio = median(rounds.map((r) => r.ours.latencyNs / r.c.latencyNs));
  const latFloorRatio = median(rounds.map((r) => r.ours.latencyNs / r.floor.latencyNs));
  results.fig8 = { driver, frames, rounds, fpsOurs, fpsC, fpsFloor, fpsRatio, fpsFloorRatio, latOursNs: latOurs, latCNs: latC, latFloorNs: latFloor, latRatio, latFloorRatio };
  // Pass at >= 0.5x C's frames/s, or where Node itself cannot, within 1.3x of the addon floor beside it.
  const fpsVerdict = 1 / fpsRatio >= 0.5 ? 'PASS' : fpsFloorRatio <= 1.3 ? 'PASS (vs floor)' : 'MISS';
  rows.push({ figure: '8', what: `display (${driver}): swap-chain frames/s vs C (C/ours)`, ours: `${fpsOurs.toFixed(0)} fps`, baseline: `${fpsC.toFixed(0)} fps`, ratio: fpsRatio, target: '<= 2x C or <= 1.3x floor', verdict: fpsVerdict, note: `floor/ours ${fpsFloorRatio.toFixed(2)}x` });
  rows.push({ figure: '8', what: '  floor: the same ioctls via the addon, awaits only (frames/s, floor/ours)', ours: `${fpsFloor.toFixed(0)} fps`, baseline: `${fpsC.toFixed(0)} fps (C)`, ratio: fpsFloorRatio, target: '<= 1.3x', verdict: verdict(fpsFloorRatio, 'le', 1.3) });
  rows.push({ figure: '8', what: `display (${driver}): present→out-fence latency vs C`, ours: fmtNs(latOurs), baseline: fmtNs(latC), ratio: latRatio, target: '<= 2x C or <= 1.3x floor', verdict: latRatio <= 2 ? 'PASS' : latFloorRatio <= 1.3 ? 'PASS (vs floor)' : 'MISS', note: `ours/floor ${latFloorRatio.toFixed(2)}x` });
  rows.push({ figure: '8', what: '  floor: present→out-fence latency, the same ioctls via the addon', ours: fmtNs(latFloor), baseline: `${fmtNs(latC)} (C)`, ratio: latFloorRatio, target: '<= 1.3x', verdict: verdict(latFloorRatio, 'le', 1.3) });
}

/** Resolves once `fd` is readable: the one await a Node app cannot avoid when a fence is pending (uv_poll). */
function fdReadable(fd: number, events: number): Promise<void> | undefined {
  if (native.pollReady(fd, events)) return undefined;
  return new Promise((resolve, reject) => {
    const w = native.waitFd(fd, events, (err) => {
      w.cancel();
      if (err) reject(err);
      else resolve();
    });
  });
}

/**
 * Figure 8's floor: bench/raw-baseline.c's flip loop (the same ioctls, in the same order, on two dumb
 * buffers) through the addon, with nothing of the library but the setup: per frame a poll() of the back
 * buffer's fences (and, when pending, EXPORT_SYNC_FILE + a uv_poll wait + close), SYNC START, one row
 * written, SYNC END, a poll() for writers, a poll() (or uv_poll wait) of the previous out-fence, the atomic
 * commit with its arrays prepared once, IMPORT_SYNC_FILE into the replaced buffer. The awaits are the ones a
 * Node app cannot avoid: one per API call of the frame (acquire, present) and one per fence still pending.
 */
async function fig8Floor(frames: number): Promise<{ fps: number; latencyNs: number }> {
  const display = KmsDisplay.open();
  const c = native.constants;
  const bufs = [display.createBuffer(), display.createBuffer()];
  const views = bufs.map((b) => b.dmaBuf.map());
  try {
    // The first frame (the modeset) through the library; then raw commits on its card.
    (await display.present(bufs[1]!)).close();
    const fd = display.fd;
    const pipe = findPipeline(fd, display.path);
    const p = pipe.props;
    const objs = Uint32Array.of(pipe.crtcId, pipe.planeId);
    const counts = Uint32Array.of(1, 10);
    const props = Uint32Array.of(p.crtc.OUT_FENCE_PTR, p.plane.FB_ID, p.plane.CRTC_ID, p.plane.SRC_X, p.plane.SRC_Y, p.plane.SRC_W, p.plane.SRC_H,
      p.plane.CRTC_X, p.plane.CRTC_Y, p.plane.CRTC_W, p.plane.CRTC_H);
    const values = Float64Array.of(0, 0, pipe.crtcId, 0, 0, display.width * 65536, display.height * 65536, 0, 0, display.width, display.height);
    const px = views.map((v) => new Uint32Array(v.buffer));
    const fds = bufs.map((b) => b.dmaBuf.fd);
    const one = new Int32Array(1);
    const evOut = Uint32Array.of(c.POLLOUT);
    const evIn = Uint32Array.of(c.POLLIN);
    const waitFences = async (dmaBuf: number, events: Uint32Array, flags: number): Promise<void> => {
      one[0] = dmaBuf;
      if (native.firstUnready(one, events) < 0) return;
      const sf = native.exportSyncFile(dmaBuf, flags);
      try {
        await fdReadable(sf, c.POLLIN);
      } finally {
        native.close(sf);
      }
    };
    const pass = async (awaitFlip: boolean): Promise<{ fps: number; latencies: number[] }> => {
      const latencies: number[] = [];
      let last = -1;
      let t0 = nowNs();
      for (let n = -2; n < frames; n++) {
        const b = (n + 2) & 1;
        const dmaBuf = fds[b]!;
        // acquire(): an async call, fences, cache bracket, one row drawn
        await (async () => {
          await waitFences(dmaBuf, evOut, c.DMA_BUF_SYNC_WRITE);
          native.dmaBufSync(dmaBuf, c.DMA_BUF_SYNC_START | c.DMA_BUF_SYNC_WRITE);
        })();
        px[b]!.fill(n & 0xffffff, 0, display.width);
        // present(): an async call
        const tp = nowNs();
        const out = await (async () => {
          native.dmaBufSync(dmaBuf, c.DMA_BUF_SYNC_END | c.DMA_BUF_SYNC_WRITE);
          await waitFences(dmaBuf, evIn, c.DMA_BUF_SYNC_READ);
          if (last >= 0) {
            await fdReadable(last, c.POLLIN);
            native.close(last);
          }
          values[1] = bufs[b]!.fbId;
          const o = native.kmsAtomicCommit(fd, objs, counts, props, values, c.DRM_MODE_ATOMIC_NONBLOCK, 0);
          native.importSyncFile(fds[b ^ 1]!, o, c.DMA_BUF_SYNC_READ);
          return o;
        })();
        if (awaitFlip) {
          await fdReadable(out, c.POLLIN);
          if (n >= 0) latencies.push(Number(nowNs() - tp));
        }
        last = out;
        if (n === -1) t0 = nowNs();
      }
      const fps = frames / (Number(nowNs() - t0) / 1e9);
      if (last >= 0) {
        await fdReadable(last, c.POLLIN);
        native.close(last);
      }
      return { fps, latencies };
    };
    const { fps } = await pass(false);
    const { latencies } = await pass(true);
    return { fps, latencyNs: median(latencies) };
  } finally {
    for (const v of views) v.release();
    for (const b of bufs) b.close();
    display.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
export const FIGURES: Array<[string, string, boolean, () => Promise<void>]> = [
  ['1', 'uncontended lock+unlock vs C', true, fig1],
  ['2', 'elided read lock vs async-mutex', false, fig2],
  ['3', 'stress_reorder contention', true, fig3],
  ['4', 'fence wake latency vs C', true, fig4],
  ['5', 'event-loop delay with 1000 waiters', true, fig5],
  ['6', 'memory and fds', true, fig6],
  ['7', 'growth in buffers and tasks', true, fig7],
  ['8', 'KMS display through the swap chain vs C', true, fig8],
];

