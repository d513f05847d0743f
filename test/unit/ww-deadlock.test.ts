/**
 * Lock core deadlock avoidance: the kernel's test_abba, test_cycle and stress tests
 * (kernel/locking/test-ww_mutex.c), for both classes; plus wound / die wake-ups of a waiting context.
 */
import { WwClass } from '../../lib/ww/ww-class';
import { WwMutex, queryLocks } from '../../lib/ww/ww-mutex';
import { Completion, KINDS, codeOf, runStress, tick, type StressTask } from './ww-helpers';

jest.setTimeout(20000);

describe.each(KINDS)('%s', (kind) => {
  const cls = new WwClass(kind);

  // kernel test_abba: two tasks lock A,B and B,A. Without resolve at least one must see EDEADLK; with
  // resolve (unlock, lockSlow, relock) both must complete.
  describe.each([
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ])('test_abba trylock=%s resolve=%s', (trylock, resolve) => {
    test.each(['write', 'read-write'] as const)('%s', async (modes) => {
      // 'read-write': each task holds its first lock for read and wants the other's for write (still a cycle).
      const first = modes === 'write' ? 'write' : 'read';
      const a = new WwMutex(cls), b = new WwMutex(cls);
      const aReady = new Completion(), bReady = new Completion();
      const task = async (mine: WwMutex, theirs: WwMutex, myReady: Completion, theirReady: Completion): Promise<string | 0> => {
        const ctx = cls.acquireContext();
        if (trylock) expect(mine.tryLock(first, ctx)).toBe(true);
        else await mine.lock(ctx, first);
        myReady.complete();
        await theirReady.wait();
        let err = await codeOf(theirs.lock(ctx));
        if (resolve && err === 'EDEADLK') {
          mine.unlock(ctx);
          await theirs.lockSlow(ctx);
          err = await codeOf(mine.lock(ctx, first));
          if (err === 0) mine.unlock(ctx);
          theirs.unlock(ctx);
        } else {
          if (err === 0) theirs.unlock(ctx);
          mine.unlock(ctx);
        }
        ctx.fini();
        return err;
      };
      const [ea, eb] = await Promise.all([task(a, b, aReady, bReady), task(b, a, bReady, aReady)]);
      if (resolve) {
        expect([ea, eb]).toEqual([0, 0]);
      } else {
        expect(ea === 'EDEADLK' || eb === 'EDEADLK').toBe(true);
      }
      expect(a.isLocked() || b.isLocked()).toBe(false);
    });
  });

  // kernel test_cycle: n tasks, each holds its own lock and wants the next one's.
  test.each([2, 3, 4, 5, 8, 16])('test_cycle %i tasks', async (n) => {
    const locks = Array.from({ length: n }, () => new WwMutex(cls));
    const bSignal = Array.from({ length: n }, () => new Completion());
    const work = async (i: number): Promise<string | 0> => {
      const ctx = cls.acquireContext({ name: `cycle${i}` });
      const aMutex = locks[i]!, bMutex = locks[(i + 1) % n]!;
      await aMutex.lock(ctx);
      bSignal[(i + n - 1) % n]!.complete(); // my a_mutex is the previous task's b_mutex
      await bSignal[i]!.wait();
      let err = await codeOf(bMutex.lock(ctx));
      let erra: string | 0 = 0;
      if (err === 'EDEADLK') {
        err = 0;
        aMutex.unlock(ctx);
        await bMutex.lockSlow(ctx);
        erra = await codeOf(aMutex.lock(ctx));
      }
      if (!err) bMutex.unlock(ctx);
      if (!erra) aMutex.unlock(ctx);
      ctx.fini();
      return err || erra;
    };
    const results = await Promise.all(locks.map((_, i) => work(i)));
    expect(results).toEqual(locks.map(() => 0));
    expect(locks.some((l) => l.isLocked())).toBe(false);
  });

  // kernel stress(): several tasks over shared locks, a non-atomic counter per lock proving no lost update.
  const stress = async (nlocks: number, tasks: StressTask[], ms: number): Promise<{ backoffs: number }> => {
    const locks = Array.from({ length: nlocks }, () => new WwMutex(cls));
    const counters = new Int32Array(nlocks);
    const done = new Int32Array(nlocks);
    const until = Date.now() + ms;
    const stats = { backoffs: 0 };
    const loops = await runStress(cls, locks, counters, done, until, tasks, stats);
    expect(Array.from(counters)).toEqual(Array.from(done));
    expect(loops.every((l) => l > 0)).toBe(true);
    expect(locks.some((l) => l.isLocked())).toBe(false);
    expect(queryLocks().locks.filter((l) => locks.some((m) => m.key === l.key))).toEqual([]);
    locks.forEach((l) => l.dispose());
    return stats;
  };

  test('stress inorder: 16 locks, 4 tasks', () => stress(16, ['inorder', 'inorder', 'inorder', 'inorder'], 400));
  test('stress reorder: 16 locks, 4 tasks', () => stress(16, ['reorder', 'reorder', 'reorder', 'reorder'], 400));
  test('stress one-over-many: 6 tasks, 2 locks, ctx-less', () => stress(2, ['one', 'one', 'one', 'one', 'one', 'one'], 300));
  test('stress all: 64 locks, inorder + reorder + one + read/write mixed', () =>
    stress(64, ['inorder', 'reorder', 'one', 'mixed', 'inorder', 'reorder', 'one', 'mixed'], 500));
  test('stress read/write mixed: 8 locks, 6 tasks', () => stress(8, ['mixed', 'mixed', 'mixed', 'mixed', 'mixed', 'mixed'], 400));
  test('stress ordered: 8 locks, 8 ordered tasks never back off', async () => {
    const ordered = Array.from({ length: 8 }, (): StressTask => 'ordered');
    expect(await stress(8, ordered, 400)).toEqual({ backoffs: 0 });
  });
  test('stress ordered mixed with unordered tasks (any order, in order, read/write): no deadlock, exact counters', async () => {
    // stress() checks that every task made progress and no update was lost. Ordered contexts are the younger
    // side in mixed use: they may back off.
    await stress(8, ['ordered', 'reorder', 'ordered', 'inorder', 'ordered', 'mixed', 'ordered', 'reorder'], 500);
  });

  test('a context that must back off while already waiting is woken and gets EDEADLK', async () => {
    // young holds y and waits for z (held by a third, younger context); then old wants y.
    // wound-wait: old wounds young, which is woken and dies. wait-die: young waits for a younger
    // holder, old queues behind young on y, then old's arrival at z... covered below by the die case.
    const y = new WwMutex(cls), z = new WwMutex(cls);
    const old = cls.acquireContext({ name: 'old' });
    const young = cls.acquireContext({ name: 'young' });
    const youngest = cls.acquireContext({ name: 'youngest' });
    await y.lock(young);
    await z.lock(youngest);
    const pYoung = codeOf(z.lock(young)); // waits: the holder is younger (queued synchronously)
    if (kind === 'wound-wait') {
      const pOld = y.lock(old);
      expect(await pYoung).toBe('EDEADLK');
      expect(young.wounded).toBe(true);
      y.unlock(young);
      expect(young.wounded).toBe(false); // cleared once it holds nothing
      await pOld;
      y.unlock(old);
    } else {
      // wait-die (__ww_mutex_die): an older context queued ahead kills a younger waiter that holds locks.
      const other = new WwMutex(cls);
      await other.lock(old);
      const pOld = codeOf(z.lock(old)); // old waits for youngest, queued ahead of young
      expect(await pYoung).toBe('EDEADLK');
      y.unlock(young);
      z.unlock(youngest);
      expect(await pOld).toBe(0);
      z.unlock(old);
      other.unlock(old);
      await tick();
    }
    if (z.isHeldBy(youngest)) z.unlock(youngest);
    for (const c of [old, young, youngest]) c.fini();
    expect(y.isLocked() || z.isLocked()).toBe(false);
  });

});

// An older context takes a lock that a younger waiter (holding another lock) waits for: it joins the
// younger readers that hold it, ahead of the younger writer in the queue. The two classes differ here, so
// each states its own outcome (no early return for the other).
describe.each(KINDS)('%s: a waiter that would now wait for an older holder', (kind) => {
  test(kind === 'wait-die' ? 'is woken to die (EDEADLK)' : 'keeps waiting and gets the lock once the older one leaves', async () => {
    const cls = new WwClass(kind);
    const m = new WwMutex(cls), held = new WwMutex(cls);
    const old = cls.acquireContext({ name: 'old' });
    const mid = cls.acquireContext({ name: 'mid' });
    const young = cls.acquireContext({ name: 'young' });
    await m.lock(young, 'read');
    await held.lock(mid);
    let settled = false;
    const pMid = codeOf(m.lock(mid, 'write')).finally(() => (settled = true)); // waits: the holder is younger
    await tick();
    expect(settled).toBe(false);
    // An older context joins the readers (it queues ahead of mid, so nothing is ahead of it): mid would now
    // wait for an older holder.
    expect(m.tryLock('read', old)).toBe(true);
    m.unlock(young);
    if (kind === 'wait-die') {
      expect(await pMid).toBe('EDEADLK');
      expect(queryLocks().locks.find((l) => l.key === m.key)!.waiters).toEqual([]);
      m.unlock(old);
    } else {
      // wound-wait: a younger context may wait for an older one; trylock wounds nobody.
      await tick();
      expect(settled).toBe(false);
      expect(mid.wounded).toBe(false);
      m.unlock(old);
      expect(await pMid).toBe(0);
      m.unlock(mid);
    }
    held.unlock(mid);
    for (const c of [old, mid, young]) c.fini();
    expect(m.isLocked() || held.isLocked()).toBe(false);
  });
});
