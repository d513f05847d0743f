/**
 * Lock core across worker_threads: the shared table is one lock space for the whole process.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { WwClass } from '../../lib/ww/ww-class';
import { WwMutex, queryLocks, setForceHook } from '../../lib/ww/ww-mutex';
import { KINDS, stressReorder } from './ww-helpers';

jest.setTimeout(30000);

const HELPER = path.join(__dirname, 'ww-worker-helper.js');

function run(worker: Worker): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    worker.once('message', (msg: Record<string, unknown>) => (msg.error ? reject(new Error(String(msg.error))) : resolve(msg)));
    worker.once('error', reject);
  });
}

/**
 * Lets a worker end by itself (its job is done once it sent its last message); terminate() only as a last
 * resort, since a thread killed inside the shared table's critical section would leave it locked.
 */
function stop(worker: Worker): Promise<unknown> {
  if (worker.threadId < 0) return Promise.resolve(); // already exited
  return new Promise((resolve) => {
    const timer = setTimeout(() => void worker.terminate().then(resolve), 10_000);
    worker.once('exit', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
}

let nextKey = 0x7000_0000n;

describe.each(KINDS)('%s', (kind) => {
  const cls = new WwClass(kind);

  test.each([false, true])('reorder stress in 3 workers + main, same keys, no lost update (mixed read/write: %s)', async (mixed) => {
    const nlocks = 8;
    const keys = Array.from({ length: nlocks }, () => nextKey++);
    const sab = new SharedArrayBuffer(nlocks * 4);
    const counters = new Int32Array(sab);
    const workers = Array.from(
      { length: 3 },
      () => new Worker(HELPER, { env: process.env, workerData: { job: 'stress', kind, keys, counters: sab, ms: 1200, mixed } }),
    );
    try {
      const results = workers.map(run);
      const locks = keys.map((k) => new WwMutex(cls, k));
      const mainDone = new Int32Array(nlocks);
      const modeOf = (i: number): 'read' | 'write' => (mixed && i % 3 !== 0 ? 'read' : 'write');
      const mainLoops = await stressReorder(cls, locks, counters, mainDone, Date.now() + 1200, 'main', modeOf);
      const out = await Promise.all(results);
      const expected = Array.from(mainDone);
      for (const r of out) {
        expect(r.loops as number).toBeGreaterThan(0);
        (r.done as number[]).forEach((d, i) => (expected[i]! += d));
      }
      expect(mainLoops).toBeGreaterThan(0);
      expect(Array.from(counters)).toEqual(expected);
      expect(expected.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(locks.some((l) => l.isLocked())).toBe(false);
      locks.forEach((l) => l.dispose());
    } finally {
      await Promise.all(workers.map(stop));
    }
  });

  test("query() from main shows a worker's hold with its threadId; the lock is shared", async () => {
    const key = nextKey++;
    const worker = new Worker(HELPER, { env: process.env, workerData: { job: 'hold', kind, keys: [key] } });
    try {
      expect(await run(worker)).toEqual({ held: true });
      const m = new WwMutex(cls, key);
      const entry = queryLocks().locks.find((l) => l.key === key);
      expect(entry?.holders).toEqual([
        expect.objectContaining({ ctxName: 'worker-hold', mode: 'read', threadId: worker.threadId, pid: process.pid }),
      ]);
      expect(m.isLocked()).toBe(true);
      expect(m.tryLock('write')).toBe(false);
      expect(m.tryLock('read')).toBe(true); // shares the worker's read hold
      m.unlock();
      const ctx = cls.acquireContext();
      const p = m.lock(ctx, 'write');
      await new Promise((r) => setTimeout(r, 10));
      expect(queryLocks().locks.find((l) => l.key === key)?.waiters.length).toBe(1);
      const released = run(worker);
      worker.postMessage('release');
      expect(await released).toEqual({ released: true });
      await p; // woken across threads by the worker's unlock
      m.unlock(ctx);
      ctx.fini();
      m.dispose();
    } finally {
      await stop(worker);
    }
  });

  test('watchdog: a holder thread blocked past maxHoldMs is forced off by the waiting thread', async () => {
    const key = nextKey++;
    const forcedTags: bigint[] = [];
    setForceHook((tags) => forcedTags.push(...tags));
    const worker = new Worker(HELPER, { env: process.env, workerData: { job: 'hold-busy', kind, keys: [key], ms: 100 } });
    try {
      expect(await run(worker)).toEqual({ held: true });
      const m = new WwMutex(cls, key);
      const t0 = Date.now();
      await m.lock(null, 'write'); // the worker is stuck in Atomics.wait: this thread forces it
      expect(Date.now() - t0).toBeLessThan(1500); // the worker stays blocked for 2000 ms
      expect(forcedTags).toEqual([0xabcn]);
      m.unlock();
      const report = await run(worker);
      expect(report).toEqual({ unlockCode: 'ETIMEDOUT', onForced: 1, forced: true, forcedHere: 0 });
      m.dispose();
    } finally {
      setForceHook(undefined);
      await stop(worker);
    }
  });
});
