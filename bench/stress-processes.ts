/**
 * Figure 3p: figure 3 (stress_reorder, T tasks × M buffers, a counter in each buffer) with its T tasks split
 * over 4 processes that share the buffers (inherited fds, bench/stress-peer.ts). The tasks, their seeds and
 * their work are the same as in one process. Its baseline is our own figure 3 in one process, measured in
 * the same run: async-mutex cannot cross processes, so nothing else does this job. Sorted async-mutex in
 * one process is printed beside it for reference. Exact counters and 0 stalls are checked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { DmaBuf } from '../lib';
import { allocBufs, log, results, rows, stressMutex, stressOurs, type OurStressRun, type StressResult } from './figures';
import type { StressShare } from './stress-peer';
import { SCALE, fmtNs } from './util';

const PROCESSES = 4;
const BUFFERS = 64;
/** A process that completes no op for this long is stalled (generous: 4 processes share 2 emulated cores). */
const PROCESS_STALL_MS = 10_000;
const PEER_SCRIPT = path.join(__dirname, 'stress-peer.js');

/** A child process running stress shares, one at a time. */
interface StressPeer {
  run(share: StressShare): Promise<OurStressRun & { startMs: number }>;
  close(): Promise<void>;
}

/** Starts a stress-peer process that inherits `bufs` as fds 3, 4, … */
function startPeer(bufs: DmaBuf[]): StressPeer {
  const child: ChildProcess = spawn(process.execPath, [PEER_SCRIPT, String(bufs.length)], {
    stdio: ['pipe', 'pipe', 'inherit', ...bufs.map((b) => b.fd)],
  });
  const lines = readline.createInterface({ input: child.stdout! });
  const exited = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`stress peer ${child.pid} exited with ${code ?? signal}`);
  });
  exited.catch(() => undefined); // observed by run() while a share is pending
  return {
    async run(share) {
      const reply = once(lines, 'line') as Promise<[string]>;
      child.stdin!.write(`${JSON.stringify(share)}\n`);
      const [line] = await Promise.race([reply, exited]);
      const result = JSON.parse(line) as OurStressRun & { startMs: number };
      if (result.ops === undefined) throw new Error(`stress peer ${child.pid}: ${result.error}`);
      return result;
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = once(child, 'exit');
      child.stdin!.end();
      await gone;
    },
  };
}

/**
 * Runs stress_reorder with T tasks on M buffers split evenly over `peers`, all started at once; checks the
 * counters in `counters` against the increments the peers made.
 */
async function stressSplit(peers: StressPeer[], T: number, M: number, count: number, counters: Uint32Array[], seed: number): Promise<StressResult & { perProcess: number[] }> {
  for (let i = 0; i < M; i++) (counters[i] as Uint32Array)[0] = 0;
  const share = T / peers.length;
  const runs = await Promise.all(
    peers.map((peer, p) => peer.run({ firstTask: p * share, tasks: share, M, count, seed, stallMs: PROCESS_STALL_MS })),
  );
  const start = Math.min(...runs.map((r) => r.startMs));
  const ms = Math.max(...runs.map((r) => r.startMs + r.ms)) - start;
  const ops = runs.reduce((sum, r) => sum + r.ops, 0);
  let lost = 0;
  for (let i = 0; i < M; i++) lost += runs.reduce((sum, r) => sum + (r.expected[i] as number), 0) - ((counters[i] as Uint32Array)[0] as number);
  return {
    ops,
    ms,
    opsPerSec: (ops / ms) * 1000,
    deadlocked: runs.some((r) => r.deadlocked),
    lost,
    backoffs: runs.reduce((sum, r) => sum + r.backoffs, 0),
    error: runs.find((r) => r.error !== undefined)?.error,
    perProcess: runs.map((r) => r.ops),
  };
}

/** The note of a row: stalls, errors, counters, backoffs. */
function stressNote(split: StressResult, one: StressResult, sorted: StressResult): string {
  const notes: string[] = [];
  notes.push(split.deadlocked ? `STALLED (a process made no progress for ${fmtNs(PROCESS_STALL_MS * 1e6)})` : split.error ? `error: ${split.error}` : `no deadlock, ${split.backoffs} backoffs`);
  notes.push(split.lost === 0 && one.lost === 0 ? 'counters exact' : `LOST UPDATES 4 processes=${split.lost} 1 process=${one.lost}`);
  notes.push(`sorted async-mutex, 1 process: ${sorted.opsPerSec.toFixed(0)} ops/s (${(split.opsPerSec / sorted.opsPerSec).toFixed(2)}x)`);
  return notes.join('; ');
}

export async function fig3Processes(): Promise<void> {
  const bufs = allocBufs(BUFFERS);
  const maps = bufs.map((b) => b.map());
  const counters = maps.map((m) => new Uint32Array(m.buffer, 0, 1));
  const peers = Array.from({ length: PROCESSES }, () => startPeer(bufs));
  try {
    // Warm up every path (the peers' JIT too), then calibrate the count as figure 3 does (~2.5 s per run).
    const warmCount = Math.max(3, Math.round(40 * SCALE));
    await stressOurs(16, 8, warmCount, bufs, counters, 98);
    await stressMutex(16, 8, warmCount, bufs, counters, 98, true);
    await stressSplit(peers, 16, 8, warmCount, counters, 98);
    const pilot = await stressOurs(4, 8, Math.max(3, Math.round(10 * SCALE)), bufs, counters, 99);
    const perOpMs = pilot.ms / Math.max(1, pilot.ops);
    const out: Record<string, unknown> = { processes: PROCESSES, pilotMsPerOp: perOpMs };
    for (const M of [8, 64]) {
      for (const T of [4, 16, 64]) {
        const count = Math.max(2, Math.round((2500 * SCALE) / perOpMs / T));
        const seed = M * 100 + T;
        const one = await stressOurs(T, M, count, bufs, counters, seed);
        const sorted = await stressMutex(T, M, count, bufs, counters, seed, true);
        const split = await stressSplit(peers, T, M, count, counters, seed);
        const ratio = split.opsPerSec / one.opsPerSec;
        out[`T${T}_M${M}`] = { count, fourProcesses: split, oneProcess: one, sortedAsyncMutexOneProcess: sorted, ratio };
        log(`fig3p T=${T} M=${M}: 4 processes ${split.opsPerSec.toFixed(0)}/s (per process ${split.perProcess.join('/')} ops), 1 process ${one.opsPerSec.toFixed(0)}/s`);
        rows.push({
          figure: '3p',
          what: `stress_reorder T=${T} M=${M}, tasks over ${PROCESSES} processes (${count} ops/task)`,
          ours: `${split.opsPerSec.toFixed(0)} ops/s`,
          baseline: `${one.opsPerSec.toFixed(0)} ops/s (ours, 1 process)`,
          ratio,
          target: '(info)',
          verdict: split.deadlocked || split.lost !== 0 || split.error ? 'MISS' : '',
          note: stressNote(split, one, sorted),
        });
      }
    }
    results.fig3p = out;
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    for (const m of maps) m.release();
    for (const b of bufs) b.close();
  }
}
