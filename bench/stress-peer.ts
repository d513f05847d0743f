/**
 * A child process of figure 3p: runs its share of stress_reorder's tasks on the dma-bufs it inherited
 * (fds 3 … 3+n-1, n = argv[2]). Reads one job per line on stdin, answers one result per line on stdout;
 * exits when stdin closes.
 *
 * Job: { firstTask, tasks, M, count, seed, stallMs } (see stressOurTasks). Result: that run (ops, ms,
 * deadlocked, error, backoffs, expected per buffer) plus startMs, the monotonic time it started (ms, the
 * same clock in every process), or { error } if the job threw.
 */
import * as readline from 'node:readline';
import { DmaBuf } from '../lib';
import { stressOurTasks } from './figures';
import { nowMs } from './util';

/** One share of a stress_reorder run. */
export interface StressShare {
  firstTask: number;
  tasks: number;
  M: number;
  count: number;
  seed: number;
  stallMs: number;
}

/** Runs one share and returns its result line. */
async function runShare(share: StressShare, bufs: DmaBuf[]): Promise<string> {
  try {
    const startMs = nowMs();
    const run = await stressOurTasks(share.firstTask, share.tasks, share.M, share.count, bufs, share.seed, share.stallMs);
    return JSON.stringify({ ...run, startMs });
  } catch (err) {
    return JSON.stringify({ error: String((err as Error).message) });
  }
}

async function main(): Promise<void> {
  const bufs = Array.from({ length: Number(process.argv[2]) }, (_, i) => DmaBuf.fromFd(3 + i));
  for await (const line of readline.createInterface({ input: process.stdin })) {
    process.stdout.write(`${await runShare(JSON.parse(line) as StressShare, bufs)}\n`);
  }
  for (const b of bufs) b.close();
}

main().then(() => process.exit(0)).catch((err: unknown) => {
  process.stderr.write(`stress-peer ${process.pid}: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
