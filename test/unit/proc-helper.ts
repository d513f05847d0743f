/**
 * Child process (or worker_thread) for the cross-process lock-core tests. argv[2] is a JSON job:
 * - { job: 'hold', domain, key, mode, releaseAfterMs? }: locks `key` with a context, prints "held" (and, after
 *   releaseAfterMs, unlocks and prints "released"), then idles until killed.
 * - { job: 'wait', domain, key }: queues a write lock() for `key`, prints "waiting", idles until killed.
 * - { job: 'attach', domain }: attaches to the store, prints "attached" or the error code, idles.
 * - { job: 'park', domain }: opens 12 acquire contexts at once and fini()s them (the thread keeps some slots
 *   for its next contexts), prints "parked", idles until killed.
 * - { job: 'stress', domain, keys, kind }: locks random subsets in random orders forever (to be killed).
 * - { job: 'cycles', domain, keys, kind }: prints "ready", then for each line N read on stdin runs N lock/unlock
 *   cycles over `keys` (test/helpers/lock-cycles.ts) and prints "done <lock() calls that waited so far>
 *   <heapUsed> <external>" (bytes, process.memoryUsage()), after a garbage collection when run with
 *   --expose-gc. Exits when stdin ends.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { WwClass } from '../../lib/ww/ww-class';
import { WwMutex } from '../../lib/ww/ww-mutex';
import { lockStore } from '../../lib/ww/lock-store';
import * as dc from 'node:diagnostics_channel';
import * as readline from 'node:readline';
import { CHANNEL_CONTENDED } from '../../lib/ww/ww-mutex';
import { lockCycles } from '../helpers/lock-cycles';

interface Job {
  job: 'hold' | 'wait' | 'attach' | 'stress' | 'cycles' | 'park';
  domain: string;
  key?: string;
  keys?: string[];
  mode?: 'read' | 'write';
  kind?: 'wound-wait' | 'wait-die';
  /** 'hold': unlock after this many ms (and print "released"), then idle. */
  releaseAfterMs?: number;
}

const say = (msg: string): void => {
  if (isMainThread) process.stdout.write(msg + '\n');
  else parentPort!.postMessage(msg);
};

const idle = (): void => void setInterval(() => {}, 1 << 30);

async function stress(cls: WwClass, locks: WwMutex[]): Promise<never> {
  for (let i = 0; ; i++) {
    const ctx = cls.acquireContext({ name: `stress${i}` });
    const order = locks.filter(() => Math.random() < 0.6).sort(() => Math.random() - 0.5);
    // The mutex that made the last attempt back off: taken first, on the slow path, at the next attempt.
    let slow: WwMutex | undefined;
    for (;;) {
      const held: WwMutex[] = [];
      let trying: WwMutex | undefined;
      try {
        if (slow) {
          trying = slow;
          await slow.lockSlow(ctx, 'write');
          held.push(slow);
        }
        for (const m of order) {
          if (m === slow) continue;
          trying = m;
          await m.lock(ctx, Math.random() < 0.3 ? 'read' : 'write');
          held.push(m);
        }
        break;
      } catch (err) {
        for (const m of held) m.unlock(ctx);
        if ((err as { code?: string }).code !== 'EDEADLK') throw err;
        slow = trying;
      }
    }
    await new Promise((r) => setImmediate(r));
    for (const m of order) m.unlock(ctx);
    ctx.fini();
  }
}

/** The 'cycles' job: runs the cycles the parent asks for, one stdin line at a time. */
async function cycles(cls: WwClass, locks: WwMutex[]): Promise<void> {
  let waited = 0;
  dc.subscribe(CHANNEL_CONTENDED, () => void waited++);
  say('ready');
  for await (const line of readline.createInterface({ input: process.stdin })) {
    await lockCycles(cls, locks, Number(line));
    (globalThis as { gc?: () => void }).gc?.();
    const mem = process.memoryUsage();
    say(`done ${waited} ${mem.heapUsed} ${mem.external}`);
  }
}

async function main(): Promise<void> {
  const job = (isMainThread ? JSON.parse(process.argv[2] as string) : workerData) as Job;
  const cls = new WwClass(job.kind ?? 'wound-wait', 'proc-helper', { domain: job.domain });
  if (job.job === 'attach') {
    try {
      lockStore(job.domain);
      say('attached');
    } catch (err) {
      say(String((err as { code?: string }).code));
    }
    idle();
    return;
  }
  if (job.job === 'park') {
    const ctxs = Array.from({ length: 12 }, (_, i) => cls.acquireContext({ name: `park${i}` }));
    for (const ctx of ctxs) ctx.fini();
    say('parked');
    idle();
    return;
  }
  if (job.job === 'stress') {
    say('started');
    await stress(cls, (job.keys ?? []).map((k) => new WwMutex(cls, BigInt(k))));
    return;
  }
  if (job.job === 'cycles') {
    await cycles(cls, (job.keys ?? []).map((k) => new WwMutex(cls, BigInt(k))));
    return;
  }
  const m = new WwMutex(cls, BigInt(job.key as string));
  const ctx = cls.acquireContext({ name: `${job.job}-${process.pid}` });
  if (job.job === 'hold') {
    await m.lock(ctx, job.mode ?? 'write');
    say('held');
    if (job.releaseAfterMs !== undefined) {
      setTimeout(() => {
        m.unlock(ctx);
        say('released');
      }, job.releaseAfterMs);
    }
  } else {
    void m.lock(ctx, 'write');
    say('waiting');
  }
  idle();
}

main().catch((err: unknown) => {
  process.stderr.write(`proc-helper: ${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
