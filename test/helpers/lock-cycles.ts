/**
 * Lock/unlock cycles for the cross-process no-growth test (test/unit/cross-process-cycles.test.ts), run the
 * same way by the test process and by its child (test/unit/proc-helper.ts, job 'cycles'): every path that
 * allocates something in the store or in the process is taken at each round (a context and its slot, hold
 * and wait records, a back-off with lockSlow, a ctx-less hold through a WwMutex object opened and disposed for
 * it as the sync layer does per buffer, a wake-up through the other process's doorbell).
 */
import type { WwClass } from '../../lib/ww/ww-class';
import { WwMutex } from '../../lib/ww/ww-mutex';

const yieldTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * One transaction of a fresh context over every mutex of `locks`, in a random order and random modes:
 * on EDEADLK it releases everything, takes the contended mutex with lockSlow and retries the rest. Holds
 * the locks for one event-loop turn, then releases them and ends the context.
 */
async function transaction(cls: WwClass, locks: WwMutex[]): Promise<void> {
  const ctx = cls.acquireContext({ name: 'cycle' });
  const order = [...locks].sort(() => Math.random() - 0.5);
  const modeOf = new Map(order.map((m) => [m, Math.random() < 0.5 ? 'read' as const : 'write' as const]));
  let slow: WwMutex | undefined;
  for (;;) {
    const held: WwMutex[] = [];
    let trying: WwMutex | undefined;
    try {
      if (slow !== undefined) {
        trying = slow;
        await slow.lockSlow(ctx, modeOf.get(slow));
        held.push(slow);
      }
      for (const m of order) {
        if (m === slow) continue;
        trying = m;
        await m.lock(ctx, modeOf.get(m));
        held.push(m);
      }
      break;
    } catch (err) {
      for (const m of held) m.unlock(ctx);
      if ((err as { code?: string }).code !== 'EDEADLK') throw err;
      slow = trying;
    }
  }
  await yieldTurn();
  for (const m of order) m.unlock(ctx);
  ctx.fini();
}

/**
 * Runs `n` cycles over `locks`: three context transactions, then one ctx-less write hold through a new
 * WwMutex object of one of the keys (disposed after), and so on.
 */
export async function lockCycles(cls: WwClass, locks: WwMutex[], n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    if (i % 4 === 3) {
      const m = new WwMutex(cls, (locks[i % locks.length] as WwMutex).key);
      await m.lock(null, 'write');
      await yieldTurn();
      m.unlock();
      m.dispose();
    } else {
      await transaction(cls, locks);
    }
  }
}
