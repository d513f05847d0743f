/**
 * Figure 9: hand-off latency, from a release in one peer to the waiting lock() resolving in the other, for
 * two async tasks of one thread, two worker_threads of one process and two processes, with DmabufSync and
 * with the bare WwMutex; against the C floor of the same hand-off between two processes (a futex ping-pong
 * on a MAP_SHARED word, bench/raw-baseline.c futex) measured in the same run. bench/handoff-peer.ts is
 * one peer. Figure 9a (fig9a, below): issue 18's independent probe, one thread, against async-mutex doing
 * the same kernel calls.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Mutex } from 'async-mutex';
import { DmaBuf, DmabufSync } from '../lib';
import { bracketFlags, startWhenReady, syncEach } from '../lib/kernel/cache-bracket';
import { pollEvents } from '../lib/kernel/implicit-fences';
import { ROUNDS, WARM_MS, allocBufs, results, rows } from './figures';
import { handOffPeer, type HandOffJob, type HandOffLock, type HandOffSide } from './handoff-peer';
import { SCALE, fmtNs, interleaved, median, nowNs, percentile, rawBaseline, sleep, timeLoop, verdict } from './util';

/** Where the two peers run. */
type Placement = 'async tasks, 1 thread' | 'worker_threads, 1 process' | 'processes';

const PLACEMENTS: Placement[] = ['async tasks, 1 thread', 'worker_threads, 1 process', 'processes'];
const LOCKS: HandOffLock[] = ['DmabufSync', 'WwMutex'];
/** Hand-offs sampled per pair of peers, and before them the JIT's warm-up (not sampled). */
const HANDOFFS = Math.max(40, Math.round(200 * SCALE));
const WARM_HANDOFFS = 60;
/** Lock+unlock cycles of each peer before the ping-pong: the JIT must not sample cold code. */
const WARM_LOCKS = Math.max(200, Math.round(2000 * SCALE));
/** The holder keeps the lock this long after the peer queued, so the peer is asleep (C: the same, in µs). */
const SETTLE_MS = 1;

const PEER_SCRIPT = path.join(__dirname, 'handoff-peer.js');

/** Runs both peers in this thread. */
function peersInThread(jobs: HandOffJob[], buf: DmaBuf): Promise<HandOffSide[]> {
  return Promise.all(jobs.map((job) => handOffPeer(job, buf)));
}

/** Runs each peer in a worker_thread of this process. */
function peersInWorkers(jobs: HandOffJob[], buf: DmaBuf): Promise<HandOffSide[]> {
  return Promise.all(
    jobs.map(async (job) => {
      const worker = new Worker(PEER_SCRIPT, { workerData: { handOff: job, fd: buf.fd } });
      try {
        const [side] = (await once(worker, 'message')) as [HandOffSide];
        return side;
      } finally {
        await worker.terminate();
      }
    }),
  );
}

/** Runs each peer in a child process that inherits the buffer as fd 3. */
function peersInProcesses(jobs: HandOffJob[], buf: DmaBuf): Promise<HandOffSide[]> {
  return Promise.all(
    jobs.map(
      (job) =>
        new Promise<HandOffSide>((resolve, reject) => {
          const child = spawn(process.execPath, [PEER_SCRIPT, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit', buf.fd] });
          let out = '';
          child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          child.once('error', reject);
          child.once('exit', (code, signal) => {
            if (code === 0) resolve(JSON.parse(out) as HandOffSide);
            else reject(new Error(`hand-off peer process exited with ${code ?? signal}`));
          });
        }),
    ),
  );
}

/** Plays one ping-pong on a fresh buffer; returns both peers' samples (ns) and re-takes. */
async function handOffSamples(lock: HandOffLock, placement: Placement): Promise<HandOffSide> {
  const [buf] = allocBufs(1) as [DmaBuf];
  const jobs = [0, 1].map((side) => ({ side, lock, total: WARM_HANDOFFS + HANDOFFS, warmLocks: WARM_LOCKS, warm: WARM_HANDOFFS, settleMs: SETTLE_MS }));
  try {
    const run = placement === 'processes' ? peersInProcesses : placement === 'worker_threads, 1 process' ? peersInWorkers : peersInThread;
    const sides = await run(jobs, buf);
    return { samples: sides.flatMap((side) => side.samples), retaken: sides.reduce((sum, side) => sum + side.retaken, 0) };
  } finally {
    buf.close();
  }
}

/** p50 and p99 of a sample list. */
function tail(samples: number[]): { p50: number; p99: number } {
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

export async function fig9(): Promise<void> {
  const c = rawBaseline<{ p50Ns: number; p99Ns: number; minNs: number; maxNs: number; handoffs: number }>(['futex', String(HANDOFFS), String(SETTLE_MS * 1000)]);
  const out: Record<string, unknown> = { handoffs: HANDOFFS, warmLocks: WARM_LOCKS, warmHandoffs: WARM_HANDOFFS, settleMs: SETTLE_MS, cFutex: c };
  for (const lock of LOCKS) {
    const p50s = new Map<Placement, number>();
    for (const placement of PLACEMENTS) {
      const { samples, retaken } = await handOffSamples(lock, placement);
      const t = tail(samples);
      p50s.set(placement, t.p50);
      out[`${lock} ${placement}`] = { ...t, n: samples.length, retaken, samplesNs: samples };
      rows.push({
        figure: '9',
        what: `hand-off release→lock() resolves, ${lock}, ${placement}`,
        ours: `p50 ${fmtNs(t.p50)}, p99 ${fmtNs(t.p99)}`,
        baseline: `p50 ${fmtNs(c.p50Ns)} (C futex, 2 processes)`,
        ratio: t.p50 / c.p50Ns,
        target: '(info)',
        verdict: '',
        note: `p99 ${(t.p99 / c.p99Ns).toFixed(2)}x C p99 ${fmtNs(c.p99Ns)}; ${samples.length} hand-offs` + (retaken > 0 ? `; ${retaken} times the releaser re-took the lock from a queued waiter` : ''),
      });
    }
    const procs = p50s.get('processes') as number;
    const threads = p50s.get('worker_threads, 1 process') as number;
    rows.push({
      figure: '9',
      what: `  ${lock}: processes vs worker_threads (p50)`,
      ours: fmtNs(procs),
      baseline: `${fmtNs(threads)} (worker_threads)`,
      ratio: procs / threads,
      target: '(info)',
      verdict: '',
    });
  }
  results.fig9 = out;
}

// ---------------------------------------------------------------------------------------------------------
// Figure 9a: the independent probe of issue 18, against async-mutex doing the same kernel calls, one thread.
// (a) hand-off: release in one async task → the other task's waiting lock() resolves (≤ 2x);
// (b) uncontended lock + map() + unlock of one buffer (≤ 1.5x).
// The baseline is what a user of async-mutex writes: one Mutex per buffer, and under it the same addon calls
// DmabufSync makes for a lock and an unlock of that buffer (lib/kernel/cache-bracket.ts: startWhenReady =
// poll() for conflicting fences + DMA_BUF_IOCTL_SYNC START in one call; syncEach = SYNC END).

/** One buffer locked in turns: acquire() resolves once the lock is held and the CPU bracket is open. */
interface ProbeLock {
  acquire(): Promise<void>;
  /** The buffer's first word, through the view the user has while locked. */
  words(): BigInt64Array;
  release(): Promise<void> | void;
  close(): void;
}

/** DmabufSync on the buffer: lock(), map() (a lent view), unlock(). */
function probeSync(buf: DmaBuf, name: string): ProbeLock {
  const sync = DmabufSync.init({ name });
  sync.get(buf, 'rw');
  return {
    acquire: () => sync.lock(),
    words: () => new BigInt64Array(sync.map(buf).buffer, 0, 1),
    release: () => sync.unlock(),
    close: () => sync.fini(),
  };
}

/**
 * async-mutex: one Mutex per buffer (shared by the peers, as a per-buffer map of mutexes would be), under it
 * the addon calls DmabufSync makes, and a view mapped once for the buffer's life: a user of async-mutex
 * keeps an mmap; DmabufSync's map() lends a kept mapping too (no mmap per lock), so neither pays a mmap.
 */
function probeMutex(buf: DmaBuf, mutex: Mutex): ProbeLock {
  const fds = Int32Array.of(buf.fd);
  const events = Uint32Array.of(pollEvents('rw'));
  const start = Uint32Array.of(bracketFlags('rw', false));
  const end = Uint32Array.of(bracketFlags('rw', true));
  const mapping = buf.map();
  const view = new BigInt64Array(mapping.buffer, 0, 1);
  let unlockMutex: (() => void) | undefined;
  return {
    acquire: async () => {
      unlockMutex = await mutex.acquire();
      // No fence is ever attached here: the poll finds none pending, as in DmabufSync's lock().
      if (startWhenReady(fds, events, fds, start) >= 0) throw new Error('probe: unexpected device fence');
    },
    words: () => view,
    release: () => {
      syncEach(fds, end);
      (unlockMutex as () => void)();
    },
    close: () => mapping.release(),
  };
}

/**
 * One ping-pong between two async tasks of this thread over `locks` (one per task): the holder waits until
 * the other task is queued and `SETTLE_MS` more, stamps the release time and releases; the other task's
 * acquire() resolving ends one sample. Both lock kinds use the same queued flag, so the harness is the same.
 */
async function probeHandOff(locks: [ProbeLock, ProbeLock], total: number, warm: number): Promise<number[]> {
  const queued = [false, false];
  let releaser = -1;
  let tRelease = 0n;
  let done = 0;
  const samples: number[] = [];
  const side = async (me: number): Promise<void> => {
    const lock = locks[me] as ProbeLock;
    for (;;) {
      queued[me] = true;
      await lock.acquire();
      const acquired = nowNs();
      queued[me] = false;
      lock.words()[0] = BigInt(done);
      if (releaser !== -1 && releaser !== me && done > warm) samples.push(Number(acquired - tRelease));
      if (done >= total) {
        await lock.release();
        return;
      }
      // The other task is queued (it started before us, or queues within the settle time).
      await sleep(SETTLE_MS);
      while (!queued[1 - me]) await sleep(1);
      done++;
      releaser = me;
      tRelease = nowNs();
      await lock.release();
      // Let the waiter run before this side locks again.
      await new Promise(setImmediate);
    }
  };
  await Promise.all([side(0), side(1)]);
  return samples;
}

export async function fig9a(): Promise<void> {
  const [buf] = allocBufs(1) as [DmaBuf];
  const out: Record<string, unknown> = {};
  try {
    // (a) hand-off.
    const mutex = new Mutex();
    const syncs: [ProbeLock, ProbeLock] = [probeSync(buf, 'probe-0'), probeSync(buf, 'probe-1')];
    const mutexes: [ProbeLock, ProbeLock] = [probeMutex(buf, mutex), probeMutex(buf, mutex)];
    try {
      await probeHandOff(syncs, WARM_HANDOFFS, WARM_HANDOFFS);
      await probeHandOff(mutexes, WARM_HANDOFFS, WARM_HANDOFFS);
      const oursAll: number[] = [];
      const baseAll: number[] = [];
      const perRound = Math.max(20, Math.round(HANDOFFS / ROUNDS));
      const r = await interleaved(
        ROUNDS,
        async () => {
          const s = await probeHandOff(syncs, perRound + 2, 1);
          oursAll.push(...s);
          return median(s);
        },
        async () => {
          const s = await probeHandOff(mutexes, perRound + 2, 1);
          baseAll.push(...s);
          return median(s);
        },
      );
      const ours = tail(oursAll);
      const base = tail(baseAll);
      out.handOff = { ours, asyncMutex: base, roundRatios: r.ratios, ratio: r.ratio, n: oursAll.length, nBaseline: baseAll.length };
      rows.push({
        figure: '9a',
        what: 'hand-off release→lock() resolves, 2 async tasks, 1 thread, 1 buffer (p50)',
        ours: `p50 ${fmtNs(ours.p50)}, p99 ${fmtNs(ours.p99)}`,
        baseline: `p50 ${fmtNs(base.p50)}, p99 ${fmtNs(base.p99)} (async-mutex + same addon calls)`,
        ratio: r.ratio,
        target: '<= 2x',
        verdict: verdict(r.ratio, 'le', 2),
        note: `median of ${ROUNDS} interleaved rounds' p50 ratios (${r.ratios.map((x) => x.toFixed(2)).join(', ')}); ${oursAll.length}/${baseAll.length} hand-offs`,
      });
    } finally {
      for (const l of [...syncs, ...mutexes]) l.close();
    }

    // (b) uncontended lock + map() + unlock, one word written through the view.
    const sync = probeSync(buf, 'probe-uncontended');
    const alone = probeMutex(buf, new Mutex());
    let n = 0n;
    const oursOp = async (): Promise<void> => {
      await sync.acquire();
      sync.words()[0] = n++;
      await sync.release();
    };
    const baseOp = async (): Promise<void> => {
      await alone.acquire();
      alone.words()[0] = n++;
      await alone.release();
    };
    try {
      await timeLoop(oursOp, WARM_MS, 0);
      await timeLoop(baseOp, WARM_MS / 2, 0);
      const r = await interleaved(
        ROUNDS,
        async () => (await timeLoop(oursOp, 2000 / ROUNDS, 300 / ROUNDS)).nsPerOp,
        async () => (await timeLoop(baseOp, 2000 / ROUNDS, 300 / ROUNDS)).nsPerOp,
      );
      out.lockMapUnlock = { oursNsPerOp: r.a, asyncMutexNsPerOp: r.b, ratio: r.ratio, roundRatios: r.ratios };
      rows.push({
        figure: '9a',
        what: 'uncontended lock + map() + unlock, 1 buffer',
        ours: fmtNs(r.a),
        baseline: `${fmtNs(r.b)} (async-mutex + same addon calls + kept mmap)`,
        ratio: r.ratio,
        target: '<= 1.5x',
        verdict: verdict(r.ratio, 'le', 1.5),
        note: "baseline maps once for the buffer's life (map() lends a kept mapping: neither side mmaps per lock)",
      });
    } finally {
      sync.close();
      alone.close();
    }
  } finally {
    buf.close();
  }
  results.fig9a = out;
}
