/**
 * Figure 9c: the lock core's hand-off latency, host-native (no dma-buf anywhere): from a release in one
 * peer to the waiting acquire resolving in the other, with figure 9's ping-pong (bench/core-handoff-peer.ts
 * is one peer), for the bare WwMutex (a fresh AcquireContext per hand-off) against what each placement's
 * user would compare it with, measured in the same run in interleaved rounds:
 * - two async tasks of one thread: async-mutex (target <= 1.5x);
 * - two worker_threads of one process: a bare Atomics.notify → Atomics.waitAsync wake of a SharedArrayBuffer
 *   word, no lock logic (target <= 1.2x);
 * - two processes: Node's floor for a cross-process wake, a native thread woken by futex(2) on a MAP_SHARED
 *   word handing a callback to the event loop (native.doorbell + native.futexWake over a temp file mapped by
 *   native.storeAttach), no lock logic (target <= 1.2x); the C futex ping-pong between two processes
 *   (bench/raw-baseline.c futex, as in figure 9) is printed for reference.
 * Issue 17's targets. The ratio is the median of the rounds' p50 ratios; p50 and p99 are of every sample.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { Worker } from 'node:worker_threads';
import { Mutex } from 'async-mutex';
import { keyBase } from './core-figures';
import { SLOT_BYTES, playTurns, type CoreHandOffJob, type CoreHandOffSide, type CoreTurnKind } from './core-handoff-peer';
import { ROUNDS, log, results, rows } from './figures';
import { SCALE, fmtNs, median, percentile, rawBaseline, verdict } from './util';

/** Sampled hand-offs per kind and placement (split over ROUNDS rounds). */
const HANDOFFS = Math.max(60, Math.round(450 * SCALE));
/** Before the rounds, each kind's warm-up job: lock+unlock cycles (for the locks), then unsampled hand-offs. */
const WARM_LOCKS = Math.max(200, Math.round(2000 * SCALE));
const WARM_HANDOFFS = 40;
/** The holder keeps the turn this long after the peer queued, so that the peer is asleep (C: the same, in µs). */
const SETTLE_MS = 1;
/** Slots of shared words (one per ping-pong; slot 0 holds the doorbell words). */
const SLOTS = 256;
const SHARED_BYTES = SLOTS * SLOT_BYTES;

/** A ping-pong that takes longer than this is stuck: the figure fails (ERROR) instead of hanging the run. */
const PING_PONG_TIMEOUT_MS = 120_000;
/** Peer processes get this long to exit once their stdin closes, then are killed (a stuck one never would). */
const EXIT_GRACE_MS = 2000;

const PEER_SCRIPT = path.join(__dirname, 'core-handoff-peer.js');

/** Where the two peers run, what ours is compared with there, and the target. */
interface Placement {
  name: string;
  baseline: CoreTurnKind;
  baselineWhat: string;
  limit: number;
  start(): Promise<PeerPair>;
}

/** Two peers that play jobs (both sides of one ping-pong at once). */
interface PeerPair {
  play(job: Omit<CoreHandOffJob, 'side' | 'slot'>): Promise<CoreHandOffSide[]>;
  close(): Promise<void>;
}

/** Both peers in this thread, as two async tasks; the async-mutex baseline's Mutex is theirs to share. */
async function peersInThread(): Promise<PeerPair> {
  const buffer = new SharedArrayBuffer(SHARED_BYTES);
  const mutex = new Mutex();
  let slot = 0;
  return {
    play: (job) => {
      const s = nextSlot(++slot);
      return Promise.all([0, 1].map((side) => playTurns({ ...job, side, slot: s }, buffer, mutex)));
    },
    close: () => Promise.resolve(),
  };
}

function nextSlot(n: number): number {
  if (n >= SLOTS) throw new Error(`figure 9c: more than ${SLOTS - 1} ping-pongs on one pair of peers`);
  return n;
}

/** Each peer in a worker_thread of this process, sharing a SharedArrayBuffer. */
async function peersInWorkers(): Promise<PeerPair> {
  const buffer = new SharedArrayBuffer(SHARED_BYTES);
  const workers = [0, 1].map(() => new Worker(PEER_SCRIPT, { workerData: { coreHandOff: buffer } }));
  let slot = 0;
  return {
    play: async (job) => {
      const s = nextSlot(++slot);
      const answers = workers.map(async (w, side) => {
        const reply = once(w, 'message') as Promise<[CoreHandOffSide | { error: string }]>;
        w.postMessage({ ...job, side, slot: s });
        const [answer] = await reply;
        if ('error' in answer) throw new Error(`figure 9c worker: ${answer.error}`);
        return answer;
      });
      return Promise.all(answers);
    },
    close: async () => {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}

/** Each peer in a child process, sharing a temp file that each maps MAP_SHARED (native.storeAttach). */
async function peersInProcesses(): Promise<PeerPair> {
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'dmabuf-bench-9c-'));
  const file = path.join(dir, 'words');
  fs.writeFileSync(file, Buffer.alloc(SHARED_BYTES));
  const children: ChildProcess[] = [0, 1].map(() => spawn(process.execPath, [PEER_SCRIPT, file, String(SHARED_BYTES)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const lines = children.map((c) => readline.createInterface({ input: c.stdout! }));
  const exited = children.map((c) =>
    once(c, 'exit').then(([code, signal]) => {
      throw new Error(`figure 9c peer process ${c.pid} exited with ${code ?? signal}`);
    }),
  );
  for (const e of exited) e.catch(() => undefined); // observed by play() while a job is pending
  let slot = 0;
  return {
    play: async (job) => {
      const s = nextSlot(++slot);
      const answers = children.map(async (c, side) => {
        const reply = once(lines[side] as readline.Interface, 'line') as Promise<[string]>;
        c.stdin!.write(`${JSON.stringify({ ...job, side, slot: s })}\n`);
        const [line] = await Promise.race([reply, exited[side] as Promise<never>]);
        const answer = JSON.parse(line) as CoreHandOffSide | { error: string };
        if ('error' in answer) throw new Error(`figure 9c peer process ${c.pid}: ${answer.error}`);
        return answer;
      });
      return Promise.all(answers);
    },
    close: async () => {
      await Promise.all(
        children.map(async (c) => {
          if (c.exitCode !== null || c.signalCode !== null) return;
          const gone = once(c, 'exit');
          c.stdin!.end();
          const kill = setTimeout(() => c.kill('SIGKILL'), EXIT_GRACE_MS);
          await gone;
          clearTimeout(kill);
        }),
      );
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const PLACEMENTS: Placement[] = [
  { name: 'async tasks, 1 thread', baseline: 'async-mutex', baselineWhat: 'async-mutex', limit: 1.5, start: peersInThread },
  { name: 'worker_threads, 1 process', baseline: 'Atomics.waitAsync', baselineWhat: 'Atomics.notify→waitAsync, no lock', limit: 1.2, start: peersInWorkers },
  { name: 'processes', baseline: 'futex doorbell', baselineWhat: 'futex→doorbell thread→loop, no lock', limit: 1.2, start: peersInProcesses },
];

/** p50 and p99 of a sample list. */
function tail(samples: number[]): { p50: number; p99: number } {
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** One ping-pong of `kind` on `pair`: every sample of both sides, and the re-takes. */
async function pingPong(pair: PeerPair, kind: CoreTurnKind, key: bigint, total: number, warm: number, warmLocks: number): Promise<CoreHandOffSide> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`figure 9c: a ${kind} ping-pong did not finish within ${PING_PONG_TIMEOUT_MS / 1000} s (a lost wake-up?)`)), PING_PONG_TIMEOUT_MS);
  });
  const sides = await Promise.race([pair.play({ kind, key: key.toString(), total, warm, warmLocks, settleMs: SETTLE_MS }), timeout]).finally(() => clearTimeout(timer));
  return { samples: sides.flatMap((s) => s.samples), retaken: sides.reduce((sum, s) => sum + s.retaken, 0) };
}

export async function fig9c(): Promise<void> {
  const out: Record<string, unknown> = { handoffs: HANDOFFS, warmLocks: WARM_LOCKS, warmHandoffs: WARM_HANDOFFS, settleMs: SETTLE_MS, rounds: ROUNDS };
  const perRound = Math.ceil(HANDOFFS / ROUNDS);
  let keyN = 0n;
  let oursProcessesP50 = NaN;
  for (const placement of PLACEMENTS) {
    const pair = await placement.start();
    try {
      // A fresh key per placement: nothing left of one placement's lock meets the next.
      const key = keyBase(1) + keyN++;
      await pingPong(pair, 'WwMutex', key, WARM_HANDOFFS, WARM_HANDOFFS, WARM_LOCKS);
      await pingPong(pair, placement.baseline, key, WARM_HANDOFFS, WARM_HANDOFFS, WARM_LOCKS);
      const oursAll: number[] = [];
      const baseAll: number[] = [];
      let retaken = 0;
      const roundRatios: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        // The first two hand-offs of a ping-pong are not sampled (the first acquire has no releaser).
        const ours = await pingPong(pair, 'WwMutex', key, perRound + 2, 2, 0);
        const base = await pingPong(pair, placement.baseline, key, perRound + 2, 2, 0);
        oursAll.push(...ours.samples);
        baseAll.push(...base.samples);
        retaken += ours.retaken + base.retaken;
        roundRatios.push(median(ours.samples) / median(base.samples));
      }
      const ratio = median(roundRatios);
      const ours = tail(oursAll);
      const base = tail(baseAll);
      if (placement.name === 'processes') oursProcessesP50 = ours.p50;
      out[placement.name] = {
        ours: { ...ours, n: oursAll.length, samplesNs: oursAll },
        baseline: { kind: placement.baseline, ...base, n: baseAll.length, samplesNs: baseAll },
        roundRatios,
        ratio,
        retaken,
      };
      log(`fig9c ${placement.name}: WwMutex p50 ${fmtNs(ours.p50)}, ${placement.baseline} p50 ${fmtNs(base.p50)}`);
      rows.push({
        figure: '9c',
        what: `lock-core hand-off release→lock() resolves, WwMutex, ${placement.name} (p50)`,
        ours: `p50 ${fmtNs(ours.p50)}, p99 ${fmtNs(ours.p99)}`,
        baseline: `p50 ${fmtNs(base.p50)}, p99 ${fmtNs(base.p99)} (${placement.baselineWhat})`,
        ratio,
        target: `<= ${placement.limit}x`,
        verdict: verdict(ratio, 'le', placement.limit),
        note:
          `p99 ${(ours.p99 / base.p99).toFixed(2)}x; median of ${ROUNDS} rounds' p50 ratios (${roundRatios.map((x) => x.toFixed(2)).join(', ')}); ` +
          `${oursAll.length}/${baseAll.length} hand-offs` +
          (retaken > 0 ? `; ${retaken} times the releaser re-took the lock from a queued waiter` : ''),
      });
    } finally {
      await pair.close();
    }
  }
  // The C floor between two processes, for reference (figure 9 prints it too).
  try {
    const c = rawBaseline<{ p50Ns: number; p99Ns: number; minNs: number; maxNs: number; handoffs: number }>(['futex', String(HANDOFFS), String(SETTLE_MS * 1000)]);
    out.cFutex = c;
    rows.push({
      figure: '9c',
      what: '  reference: C futex ping-pong, 2 processes (ours: WwMutex, processes)',
      ours: `p50 ${fmtNs(oursProcessesP50)}`,
      baseline: `p50 ${fmtNs(c.p50Ns)}, p99 ${fmtNs(c.p99Ns)} (C futex)`,
      ratio: oursProcessesP50 / c.p50Ns,
      target: '(info)',
      verdict: '',
      note: `${c.handoffs} hand-offs`,
    });
  } catch (err) {
    out.cFutexError = String((err as Error).message);
    rows.push({ figure: '9c', what: '  reference: C futex ping-pong, 2 processes', ours: '', baseline: '', ratio: null, target: '(info)', verdict: 'SKIP', note: (err as Error).message });
  }
  results.fig9c = out;
}
