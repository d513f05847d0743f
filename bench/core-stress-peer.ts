/**
 * A child process of figure 3pc (bench/core-stress-processes.ts): runs its share of the lock-core
 * stress_reorder's tasks (bench/core-figures.ts stressCore) on 64 WwMutexes keyed from argv[4] (the same
 * keys in every process), incrementing the counters in the shared file argv[2] (argv[3] bytes, mapped
 * MAP_SHARED with native.storeAttach: one 32-bit counter per mutex). Reads one share per line on stdin,
 * answers one result per line on stdout; exits when stdin closes.
 *
 * Share: { firstTask, tasks, M, count, seed, stallMs }. Result: the run (ops, ms, deadlocked, error,
 * backoffs, expected: the increments it made per counter) plus startMs, the monotonic time it started (ms,
 * CLOCK_MONOTONIC: one clock in every process), or { error } if the share threw.
 */
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { WwClass } from '../lib';
import { native } from '../lib/kernel/native';
import { keyedMutexes, planOps, stressCore } from './core-figures';
import { nowMs } from './util';

/** One share of a run: tasks firstTask … firstTask+tasks-1 of stress_reorder on the first M mutexes. */
export interface CoreStressShare {
  firstTask: number;
  tasks: number;
  M: number;
  count: number;
  seed: number;
  stallMs: number;
}

/** Mutexes (and counters) of figure 3pc. */
export const CORE_STRESS_MUTEXES = 64;

async function main(): Promise<void> {
  const [file, size, base] = process.argv.slice(2) as [string, string, string];
  const counters = new Int32Array(native.storeAttach(fs.openSync(file, 'r+'), Number(size)), 0, CORE_STRESS_MUTEXES);
  const cls = new WwClass('wound-wait', 'fig3pc');
  const mutexes = keyedMutexes(cls, CORE_STRESS_MUTEXES, BigInt(base));
  for await (const line of readline.createInterface({ input: process.stdin })) {
    let answer: string;
    try {
      const share = JSON.parse(line) as CoreStressShare;
      const plan = planOps(share.tasks, share.M, share.count, share.seed, share.firstTask);
      const startMs = nowMs();
      const { lost: _lost, opsPerSec: _opsPerSec, ...run } = await stressCore(cls, mutexes, share.M, plan, counters, share.stallMs);
      answer = JSON.stringify({ ...run, startMs });
    } catch (err) {
      answer = JSON.stringify({ error: String((err as Error).message) });
    }
    process.stdout.write(`${answer}\n`);
  }
  for (const m of mutexes) m.dispose();
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`core-stress-peer ${process.pid}: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
