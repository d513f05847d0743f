/**
 * Lock core, single thread: the kernel's test_mutex and test_aa (kernel/locking/test-ww_mutex.c) for both
 * classes and modes, read sharing, writer exclusion and fairness, deadline / abort clean-up, wrong uses.
 */
import { WwClass } from '../../lib/ww/ww-class';
import { WwMutex, queryLocks } from '../../lib/ww/ww-mutex';
import { TableLockStore, lockStore } from '../../lib/ww/lock-store';
import { setTimeout as realDelay } from 'node:timers/promises';
import { Completion, KINDS, codeOf, sleep, thrownCode, tick } from './ww-helpers';

function waitersOf(m: WwMutex): number {
  return queryLocks().locks.find((l) => l.key === m.key)?.waiters.length ?? 0;
}

describe.each(KINDS)('%s', (kind) => {
  const cls = new WwClass(kind, `test-${kind}`);

  // kernel __test_mutex: flags SPIN / TRY / CTX; the second task must not get the lock while we hold it.
  describe.each([0, 1, 2, 3, 4, 5, 6, 7])('test_mutex flags=%i', (flags) => {
    const SPIN = 1, TRY = 2, CTX = 4;
    test('mutual exclusion', async () => {
      const mtx = new WwMutex(cls);
      const ready = new Completion(), go = new Completion(), done = new Completion();
      const work = (async () => {
        ready.complete();
        await go.wait();
        if (flags & TRY) {
          while (!mtx.tryLock()) await tick();
        } else {
          await mtx.lock(null);
        }
        done.complete();
        mtx.unlock();
      })();
      const ctx = flags & CTX ? cls.acquireContext() : null;
      await ready.wait();
      await mtx.lock(ctx);
      go.complete();
      let failed = false;
      if (flags & SPIN) {
        const until = Date.now() + 30;
        while (Date.now() < until) {
          if (done.completed) failed = true;
          await tick();
        }
      } else {
        failed = await Promise.race([done.wait().then(() => true), sleep(30).then(() => false)]);
      }
      mtx.unlock(ctx);
      ctx?.fini();
      await work;
      expect(failed).toBe(false);
      expect(done.completed).toBe(true);
      expect(mtx.isLocked()).toBe(false);
      mtx.dispose();
    });
  });

  // kernel test_aa: recursion is reported, never deadlocks.
  describe.each([false, true])('test_aa trylock=%s', (trylock) => {
    test.each(['write', 'read'] as const)('mode %s', async (mode) => {
      const mutex = new WwMutex(cls);
      const ctx = cls.acquireContext();
      if (trylock) expect(mutex.tryLock(mode, ctx)).toBe(true);
      else await mutex.lock(ctx, mode);
      expect(mutex.isLocked()).toBe(true);
      expect(ctx.acquired).toBe(1);
      expect(mutex.tryLock('write', null)).toBe(false);
      expect(mutex.tryLock('write', ctx)).toBe(false);
      expect(mutex.tryLock('read', ctx)).toBe(false);
      expect(await codeOf(mutex.lock(ctx, 'write'))).toBe('EALREADY');
      expect(await codeOf(mutex.lock(ctx, 'read'))).toBe('EALREADY');
      expect(ctx.acquired).toBe(1);
      mutex.unlock(ctx);
      expect(ctx.acquired).toBe(0);
      expect(mutex.isLocked()).toBe(false);
      ctx.fini();
    });
  });

  test('readers share (elision): two contexts and a ctx-less reader hold at once', async () => {
    const m = new WwMutex(cls);
    const a = cls.acquireContext({ name: 'ra' }), b = cls.acquireContext({ name: 'rb' });
    await m.lock(a, 'read');
    await m.lock(b, 'read');
    expect(m.tryLock('read')).toBe(true);
    const holders = queryLocks().locks.find((l) => l.key === m.key)!.holders;
    expect(holders.map((h) => h.mode)).toEqual(['read', 'read', 'read']);
    expect(holders.map((h) => h.ctxName).sort()).toEqual(['', 'ra', 'rb']);
    expect(m.tryLock('write')).toBe(false);
    m.unlock();
    m.unlock(a);
    m.unlock(b);
    expect(m.isLocked()).toBe(false);
    a.fini();
    b.fini();
  });

  test('a writer excludes readers and readers exclude a writer', async () => {
    const m = new WwMutex(cls);
    const w = cls.acquireContext({ name: 'w' });
    await m.lock(w, 'write');
    expect(m.tryLock('read')).toBe(false);
    const r = cls.acquireContext({ name: 'r' });
    let readerIn = false;
    const pr = m.lock(r, 'read').then(() => (readerIn = true));
    await tick(); // the grant is decided synchronously: only an unlock can let it in
    expect(readerIn).toBe(false);
    m.unlock(w);
    await pr;
    expect(readerIn).toBe(true);
    let writerIn = false;
    const pw = m.lock(w, 'write').then(() => (writerIn = true));
    await tick();
    expect(writerIn).toBe(false);
    m.unlock(r);
    await pw;
    m.unlock(w);
    w.fini();
    r.fini();
  });

  test('writer fairness: younger and ctx-less readers queue behind a waiting writer', async () => {
    const m = new WwMutex(cls);
    const old = cls.acquireContext({ name: 'old-reader' }); // older than the writer: may still join
    const r0 = cls.acquireContext({ name: 'r0' });
    await m.lock(r0, 'read');
    const w = cls.acquireContext({ name: 'writer' });
    const events: string[] = [];
    const pw = m.lock(w, 'write').then(() => events.push('writer'));
    await tick();
    // A stream of younger readers (no locks held, so they wait rather than die) and ctx-less ones.
    const readers = Array.from({ length: 20 }, (_, i) => cls.acquireContext({ name: `young${i}` }));
    const pr = readers.map((ctx, i) => m.lock(ctx, 'read').then(() => events.push(`r${i}`)));
    const pn = m.lock(null, 'read').then(() => events.push('ctxless'));
    expect(m.tryLock('read')).toBe(false);
    await m.lock(old, 'read'); // bounded bypass: only contexts older than every waiting writer
    await tick();
    expect(events).toEqual([]); // no reader admitted past the waiting writer
    m.unlock(old);
    m.unlock(r0);
    await pw;
    expect(events).toEqual(['writer']);
    m.unlock(w);
    await Promise.all([...pr, pn]);
    expect(events.length).toBe(22);
    // All readers were admitted together once the writer left.
    const snap = queryLocks().locks.find((l) => l.key === m.key)!;
    expect(snap.holders.length).toBe(21);
    readers.forEach((ctx) => m.unlock(ctx));
    m.unlock();
    for (const c of [old, r0, w, ...readers]) c.fini();
    expect(m.isLocked()).toBe(false);
  });

  test('a younger reader holding locks backs off behind a waiting writer (wait-die) or waits (wound-wait)', async () => {
    const m = new WwMutex(cls), other = new WwMutex(cls);
    const r0 = cls.acquireContext();
    await m.lock(r0, 'read');
    const w = cls.acquireContext({ name: 'writer' });
    const pw = m.lock(w, 'write');
    await tick();
    const young = cls.acquireContext({ name: 'young' });
    await other.lock(young);
    const py = codeOf(m.lock(young, 'read'));
    await tick();
    m.unlock(r0);
    await pw;
    m.unlock(w);
    const code = await py;
    if (kind === 'wait-die') expect(code).toBe('EDEADLK');
    else expect(code).toBe(0);
    if (code === 0) m.unlock(young);
    other.unlock(young);
    for (const c of [r0, w, young]) c.fini();
  });

  test('deadline (fake clock): a wall-clock jump does not end it; pending 1 ms before it, ETIMEDOUT at it, nothing held, no waiter left behind', async () => {
    const m = new WwMutex(cls);
    const holder = cls.acquireContext({ name: 'holder' });
    await m.lock(holder, 'write');
    // The clock is fake, so "before" and "at" the deadline are exact; the waiter's Atomics.waitAsync
    // naps are real (at most the time to the deadline, then 1 ms), so real delays let it re-check.
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    try {
      for (const mode of ['read', 'write'] as const) {
        const ctx = cls.acquireContext({ name: 'late' });
        const deadline = Date.now() + 30;
        let code: string | 0 | undefined;
        const p = codeOf(m.lock(ctx, mode, { deadline })).then((c) => (code = c));
        // A board without an RTC setting its clock: the deadline counts on the monotonic clock.
        jest.setSystemTime(Date.now() + 3_600_000);
        jest.advanceTimersByTime(29);
        await realDelay(80); // the waiter woke and re-checked several times
        expect(code).toBeUndefined();
        expect(waitersOf(m)).toBe(1);
        jest.advanceTimersByTime(1);
        await p;
        expect(code).toBe('ETIMEDOUT');
        expect(ctx.acquired).toBe(0);
        expect(waitersOf(m)).toBe(0);
        ctx.fini();
      }
    } finally {
      jest.useRealTimers();
    }
    for (const mode of ['read', 'write'] as const) {
      const ctx = cls.acquireContext({ name: 'late' });
      expect(await codeOf(m.lock(ctx, mode, { deadline: Date.now() + 30 }))).toBe('ETIMEDOUT');
      expect(ctx.acquired).toBe(0);
      expect(waitersOf(m)).toBe(0);
      ctx.fini();
      expect(await codeOf(m.lock(null, mode, { deadline: Date.now() + 5 }))).toBe('ETIMEDOUT');
      expect(waitersOf(m)).toBe(0);
    }
    m.unlock(holder);
    holder.fini();
    expect(m.isLocked()).toBe(false);
    expect(queryLocks().locks.find((l) => l.key === m.key)).toBeUndefined();
  });

  test('many waiters of one thread: a release wakes all 40 queued readers (in batches), then a writer behind them', async () => {
    const m = new WwMutex(cls);
    const holder = cls.acquireContext();
    await m.lock(holder, 'write');
    const got: number[] = [];
    const ctxs = Array.from({ length: 40 }, () => cls.acquireContext());
    const readers = ctxs.map((ctx, i) =>
      m.lock(ctx, 'read').then(async () => {
        got.push(i);
        await tick();
        m.unlock(ctx);
        ctx.fini();
      }),
    );
    const writer = cls.acquireContext();
    const writes = m.lock(writer, 'write').then(() => got.push(-1));
    while (waitersOf(m) < 41) await tick();
    m.unlock(holder);
    holder.fini();
    await Promise.all([...readers, writes]);
    expect([...got].slice(0, 40).sort((a, b) => a - b)).toEqual(ctxs.map((_, i) => i));
    expect(got[40]).toBe(-1);
    m.unlock(writer);
    writer.fini();
    expect(m.isLocked()).toBe(false);
    expect(waitersOf(m)).toBe(0);
    m.dispose();
  });

  test('waiters with different deadlines each time out, the earliest-bounded first; a later one still gets the lock', async () => {
    const m = new WwMutex(cls);
    const holder = cls.acquireContext();
    await m.lock(holder, 'write');
    const order: number[] = [];
    // Deadlines out of order, so the nap ends do not come in the order the waiters slept.
    const bounds = [60, 20, 100, 40, 80];
    const timed = bounds.map((ms, i) =>
      codeOf(m.lock(null, 'read', { deadline: Date.now() + ms })).then((code) => {
        order.push(i);
        return code;
      }),
    );
    const last = cls.acquireContext();
    const lasting = m.lock(last, 'read');
    expect(await Promise.all(timed)).toEqual(bounds.map(() => 'ETIMEDOUT'));
    expect(order[0]).toBe(1);
    expect(order[order.length - 1]).toBe(2);
    expect(waitersOf(m)).toBe(1);
    m.unlock(holder);
    holder.fini();
    await lasting;
    m.unlock(last);
    last.fini();
    expect(m.isLocked()).toBe(false);
    m.dispose();
  });

  test('AbortSignal: AbortError at once, nothing held, no waiter left behind', async () => {
    const m = new WwMutex(cls);
    const holder = cls.acquireContext();
    await m.lock(holder, 'write');
    const ctx = cls.acquireContext();
    const ac = new AbortController();
    const p = m.lock(ctx, 'read', { signal: ac.signal });
    expect(waitersOf(m)).toBe(1); // queued synchronously
    const t0 = Date.now();
    ac.abort(new Error('stop'));
    const err = await p.then(() => null, (e: unknown) => e as Error & { code: string; cause: unknown });
    expect(Date.now() - t0).toBeLessThan(200); // woken by the abort, not by the 500 ms safety poll
    expect(err?.name).toBe('AbortError');
    expect(err?.code).toBe('ABORT_ERR');
    expect((err?.cause as Error).message).toBe('stop');
    expect(waitersOf(m)).toBe(0);
    expect(ctx.acquired).toBe(0);
    // Already aborted: rejects without touching the lock, even when it is free.
    m.unlock(holder);
    expect(await codeOf(m.lock(ctx, 'write', { signal: ac.signal }))).toBe('ABORT_ERR');
    expect(m.isLocked()).toBe(false);
    expect(queryLocks().locks.find((l) => l.key === m.key)).toBeUndefined();
    ctx.fini();
    holder.fini();
  });

  test('wrong uses: EPERM, EINVAL, EBUSY, EBADF after fini/dispose', async () => {
    const m = new WwMutex(cls), n = new WwMutex(cls);
    const ctx = cls.acquireContext({ name: 'misuse' });
    expect(thrownCode(() => m.unlock(ctx))).toBe('EPERM');
    expect(thrownCode(() => m.unlock())).toBe('EPERM');
    await m.lock(ctx);
    expect(thrownCode(() => m.unlock())).toBe('EPERM'); // a ctx hold is not a ctx-less one
    expect(await codeOf(n.lockSlow(ctx))).toBe('EINVAL'); // lockSlow while holding
    expect(thrownCode(() => ctx.fini())).toBe('EBUSY');
    // One lock() at a time per context.
    const other = cls.acquireContext();
    await n.lock(other);
    const pending = n.lock(ctx, 'write', { deadline: Date.now() + 50 });
    expect(await codeOf(m.lock(ctx))).toBe('EINVAL');
    expect(await codeOf(pending)).toMatch(/ETIMEDOUT|EDEADLK/);
    n.unlock(other);
    other.fini();
    m.unlock(ctx);
    expect(thrownCode(() => m.unlock(ctx))).toBe('EPERM'); // twice
    ctx.done();
    expect(await codeOf(m.lock(ctx))).toBe('EPERM');
    expect(thrownCode(() => m.tryLock('write', ctx))).toBe('EPERM');
    ctx.fini();
    ctx.fini(); // idempotent
    expect(await codeOf(m.lock(ctx))).toBe('EBADF'); // use after fini: EBADF, like every destroyed object
    expect(thrownCode(() => m.unlock(ctx))).toBe('EBADF');
    await expect(n.lock(null, 'exclusive' as never)).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    // lockSlow() with something that is not a context fails like lock() does.
    await expect(n.lockSlow({} as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"ctx"') });
    await expect(n.lock({} as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"ctx"') });
    // Another class kind on the same key, or a context of the other kind.
    const otherKind = new WwClass(kind === 'wait-die' ? 'wound-wait' : 'wait-die');
    expect(thrownCode(() => new WwMutex(otherKind, m.key))).toBe('EINVAL');
    const foreign = otherKind.acquireContext();
    expect(await codeOf(m.lock(foreign))).toBe('EINVAL');
    foreign.fini();
    // dispose with a ctx-less hold.
    expect(m.tryLock()).toBe(true);
    expect(thrownCode(() => m.dispose())).toBe('EBUSY');
    m.unlock();
    m.dispose();
    m.dispose();
    expect(await codeOf(m.lock(null))).toBe('EBADF');
    expect(thrownCode(() => m.tryLock())).toBe('EBADF');
    expect(thrownCode(() => m.unlock())).toBe('EBADF');
    n.dispose();
  });

  test('unlockIfHeld: releases only its own hold, says so, and is quiet about the rest', async () => {
    const m = new WwMutex(cls);
    const mine = cls.acquireContext({ name: 'mine' }), theirs = cls.acquireContext({ name: 'theirs' });
    expect(m.unlockIfHeld(mine)).toBe(false); // nobody holds it
    await m.lock(theirs, 'read');
    expect(m.unlockIfHeld(mine)).toBe(false); // held, not by mine: theirs keeps it
    expect(m.isHeldBy(theirs)).toBe(true);
    await m.lock(mine, 'read');
    expect(m.unlockIfHeld(mine)).toBe(true);
    expect(m.isHeldBy(mine)).toBe(false);
    expect(m.isHeldBy(theirs)).toBe(true);
    expect(m.unlockIfHeld(mine)).toBe(false); // twice: no error
    m.unlock(theirs);
    // A waiter queued behind mine's hold gets the lock from unlockIfHeld as from unlock().
    await m.lock(mine);
    const got = m.lock(theirs);
    expect(m.unlockIfHeld(mine)).toBe(true);
    await got;
    expect(m.isHeldBy(theirs)).toBe(true);
    m.unlock(theirs);
    mine.fini();
    expect(m.unlockIfHeld(mine)).toBe(false); // fini()ed
    expect(thrownCode(() => m.unlockIfHeld({} as never))).toBe('ERR_INVALID_ARG_TYPE');
    theirs.fini();
    m.dispose();
    expect(thrownCode(() => m.unlockIfHeld(theirs))).toBe('EBADF');
  });

  // A ctx-less hold belongs to the object it was taken through: disposing an object whose ctx-less lock() is
  // still pending would let that lock be granted to an object that can no longer unlock it (EBADF), while
  // every other object gets EPERM: the mutex would stay held until the process exits.
  test('dispose() while a ctx-less lock() through the object is pending: EBUSY, then it settles and disposes', async () => {
    const holder = new WwMutex(cls);
    const waiter = new WwMutex(cls, holder.key);
    await holder.lock(null);
    const pending = waiter.lock(null);
    try {
      expect(thrownCode(() => waiter.dispose())).toBe('EBUSY');
    } finally {
      holder.unlock();
    }
    await pending;
    expect(thrownCode(() => waiter.dispose())).toBe('EBUSY'); // now it holds it
    waiter.unlock();
    waiter.dispose();
    // A pending lock() that times out leaves nothing to wait for either.
    await holder.lock(null);
    const other = new WwMutex(cls, holder.key);
    const timedOut = other.lock(null, 'write', { deadline: Date.now() + 20 });
    expect(thrownCode(() => other.dispose())).toBe('EBUSY');
    expect(await codeOf(timedOut)).toBe('ETIMEDOUT');
    other.dispose();
    holder.unlock();
    expect(queryLocks().locks.find((l) => l.key === holder.key)).toBeUndefined();
    holder.dispose();
  });

  test('same key = same lock; fresh keys are unique and negative', async () => {
    const a = new WwMutex(cls, 123456789n);
    const b = new WwMutex(cls, 123456789n);
    const c = new WwMutex(cls);
    expect(c.key < 0n).toBe(true);
    expect(new WwMutex(cls).key).not.toBe(c.key);
    await a.lock(null);
    expect(b.isLocked()).toBe(true);
    expect(b.tryLock()).toBe(false);
    a.unlock();
    expect(b.tryLock()).toBe(true);
    b.unlock();
    a.dispose();
    b.dispose();
  });

  test('context names by turns (more than the encoded-name cache holds): each holder shows its own name, a long one cut on a character boundary', () => {
    const m = new WwMutex(cls);
    const holderName = (): string | undefined => queryLocks().locks.find((l) => l.key === m.key)?.holders[0]?.ctxName;
    // 47 ASCII bytes then a 2-byte 'é': 49 bytes, stored as the 47 before it (48 would split the 'é').
    const long = `${'x'.repeat(47)}é-tail`;
    const names = ['a', 'b', long, 'ü', ...Array.from({ length: 300 }, (_, i) => `n${i}`), 'a', long];
    for (let round = 0; round < 2; round++) {
      for (const name of names) {
        const ctx = cls.acquireContext({ name });
        expect(m.tryLock('write', ctx)).toBe(true);
        expect(holderName()).toBe(name === long ? 'x'.repeat(47) : name);
        m.unlock(ctx);
        ctx.fini();
      }
    }
    m.dispose();
  });

  test('stamps are monotonic, and a context keeps its stamp across an EDEADLK retry (so it ages)', async () => {
    const a = new WwMutex(cls), b = new WwMutex(cls);
    const old = cls.acquireContext({ name: 'old' });
    const young = cls.acquireContext({ name: 'young' });
    expect(young.stamp).toBeGreaterThan(old.stamp);
    expect(cls.acquireContext().name).toBe('');
    const youngStamp = young.stamp;
    await a.lock(old);
    await b.lock(young);
    // ABBA: young wants a (held by old), old wants b (held by young). wait-die: young dies at once;
    // wound-wait: young waits, old wounds it, and its wait ends with EDEADLK. Either way young backs off.
    const pYoung = codeOf(a.lock(young));
    const pOld = b.lock(old);
    expect(await pYoung).toBe('EDEADLK');
    b.unlock(young); // back off: release everything
    await pOld;
    const slow = a.lockSlow(young); // the retry: sleep on the contended lock, holding nothing
    const newer = cls.acquireContext({ name: 'newer' });
    b.unlock(old);
    a.unlock(old);
    old.fini();
    await slow;
    expect(await codeOf(b.lock(young))).toBe(0);
    // Same stamp after the retry: older than every context created since, so it wins against them.
    expect(young.stamp).toBe(youngStamp);
    expect(newer.stamp).toBeGreaterThan(young.stamp);
    a.unlock(young);
    b.unlock(young);
    young.fini();
    newer.fini();
  });
});

test('a table left locked by a dead thread is reported (EOWNERDEAD), not a forever spin', () => {
  const m = new WwMutex(new WwClass('wound-wait'));
  const state = (lockStore() as TableLockStore).t;
  state.wedgeForTest(); // as a worker terminate()d inside a critical section would leave it
  try {
    const t0 = Date.now();
    expect(() => m.tryLock()).toThrow(expect.objectContaining({ code: 'EOWNERDEAD' }));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
  } finally {
    state.unlock();
  }
  expect(m.tryLock()).toBe(true);
  m.unlock();
  m.dispose();
});
