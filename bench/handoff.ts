/**
 * Figure 9: hand-off latency, from a release in one peer to the waiting lock() resolving in the other, for
 * two async tasks of one thread, two worker_threads of one process and two processes, with DmabufSync and
 * with the bare WwMutex; against the C floor of the same hand-off between two processes (a futex ping-pong
 * on a MAP_SHARED word, bench/raw-baseline.c futex) measured in the same run. bench/handoff-peer.ts is
 * one peer.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DmaBuf } from '../lib';
import { allocBufs, results, rows } from './figures';
import { handOffPeer, type HandOffJob, type HandOffLock, type HandOffSide } from './handoff-peer';
import { SCALE, fmtNs, percentile, rawBaseline } from './util';

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
