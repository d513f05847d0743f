/**
 * worker_threads body for ww-workers.test: runs in a worker, locks the same keys as the other threads
 * (WwMutex objects with the same key are the same lock process-wide).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { WwClass } from '../../lib/ww/ww-class';
import { WwMutex, setForceHook } from '../../lib/ww/ww-mutex';
import { stressReorder } from './ww-helpers';

interface Job {
  job: 'stress' | 'hold' | 'hold-busy';
  kind: 'wound-wait' | 'wait-die';
  keys: bigint[];
  counters?: SharedArrayBuffer;
  ms?: number;
  mixed?: boolean;
}

async function main(): Promise<void> {
  const data = workerData as Job;
  const cls = new WwClass(data.kind);
  const locks = data.keys.map((k) => new WwMutex(cls, k));
  const port = parentPort!;
  // Dispose before the last message: the parent may end this thread as soon as it has that message, and a
  // thread ended inside the shared table's critical section would leave the table locked.
  const finish = (msg: Record<string, unknown>): void => {
    locks.forEach((l) => l.dispose());
    port.postMessage(msg);
  };
  if (data.job === 'stress') {
    const counters = new Int32Array(data.counters!);
    const done = new Int32Array(locks.length);
    const modeOf = (i: number): 'read' | 'write' => (data.mixed && i % 3 !== 0 ? 'read' : 'write');
    const loops = await stressReorder(cls, locks, counters, done, Date.now() + data.ms!, 'worker', modeOf);
    finish({ done: Array.from(done), loops });
  } else if (data.job === 'hold') {
    // Hold the first key until told to release: the main thread checks query() sees this thread.
    const ctx = cls.acquireContext({ name: 'worker-hold' });
    await locks[0]!.lock(ctx, 'read');
    port.postMessage({ held: true });
    await new Promise((r) => port.once('message', r));
    locks[0]!.unlock(ctx);
    ctx.fini();
    finish({ released: true });
  } else {
    // Hold with a deadline, then block this thread (synchronously) past it: another thread must force us.
    const forcedHere: number[] = [];
    setForceHook(() => forcedHere.push(1));
    const ctx = cls.acquireContext({ name: 'worker-busy', maxHoldMs: data.ms! });
    let onForced = 0;
    ctx.onForced(() => onForced++);
    await locks[0]!.lock(ctx, 'write');
    locks[0]!.setHoldTag(ctx, 0xabcn);
    port.postMessage({ held: true });
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, data.ms! * 20); // busy: no timers run
    let unlockCode = '';
    try {
      locks[0]!.unlock(ctx);
    } catch (err) {
      unlockCode = (err as { code: string }).code;
    }
    const forced = ctx.forced;
    ctx.fini();
    finish({ unlockCode, onForced, forced, forcedHere: forcedHere.length });
  }
}

main().catch((err: unknown) => {
  parentPort!.postMessage({ error: String((err as Error).stack ?? err) });
});
