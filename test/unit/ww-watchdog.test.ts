/**
 * Lock core watchdog: holds older than the context's maxHoldMs are forced off (force hook with the hold
 * tags, onForced in the holder's thread, ETIMEDOUT on the holder's later unlock/lock).
 */
import * as dc from 'node:diagnostics_channel';
import { WwClass } from '../../lib/ww/ww-class';
import { CHANNEL_FORCED_UNLOCK, WwMutex, forceRelease, queryLocks, setForceHook } from '../../lib/ww/ww-mutex';
import { KINDS, codeOf, thrownCode } from './ww-helpers';
import { watchedCount } from '../../lib/ww/ww-watchdog';

afterEach(() => {
  setForceHook(undefined);
  jest.useRealTimers();
});

describe.each(KINDS)('%s', (kind) => {
  const cls = new WwClass(kind);

  test('fake timers: a forgotten hold is forced at its deadline by the holder thread', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    const hook: Array<[bigint[], number]> = [];
    setForceHook((tags, ctxId) => hook.push([tags, ctxId]));
    const published: unknown[] = [];
    const onMsg = (msg: unknown): void => void published.push(msg);
    dc.subscribe(CHANNEL_FORCED_UNLOCK, onMsg);
    const a = new WwMutex(cls), b = new WwMutex(cls);
    const ctx = cls.acquireContext({ name: 'forgetful', maxHoldMs: 1000 });
    const forcedCalls: unknown[] = [];
    ctx.onForced((c) => forcedCalls.push(c));
    await a.lock(ctx, 'write');
    jest.advanceTimersByTime(400);
    await b.lock(ctx, 'read');
    a.setHoldTag(ctx, 11n);
    b.setHoldTag(ctx, 22n);
    jest.advanceTimersByTime(590);
    expect(ctx.forced).toBe(false);
    expect(forcedCalls).toEqual([]);
    jest.advanceTimersByTime(20); // past a's deadline (b's is later, but ALL holds go)
    dc.unsubscribe(CHANNEL_FORCED_UNLOCK, onMsg);
    expect(ctx.forced).toBe(true);
    expect(forcedCalls).toEqual([ctx]);
    expect(hook).toEqual([[expect.arrayContaining([11n, 22n]), ctx.id]]);
    expect(published).toEqual([expect.objectContaining({ ctxId: ctx.id, ctxName: 'forgetful', keys: expect.arrayContaining([a.key, b.key]) })]);
    expect(a.isLocked() || b.isLocked()).toBe(false);
    expect(ctx.acquired).toBe(0);
    expect(thrownCode(() => a.unlock(ctx))).toBe('ETIMEDOUT');
    expect(thrownCode(() => b.unlock(ctx))).toBe('ETIMEDOUT');
    expect(await codeOf(a.lock(ctx))).toBe('ETIMEDOUT');
    expect(thrownCode(() => a.tryLock('write', ctx))).toBe('ETIMEDOUT');
    expect(forcedCalls.length).toBe(1); // once
    ctx.fini();
    expect(thrownCode(() => a.unlock(ctx))).toBe('EBADF');
  });

  test('finished contexts are not kept by the watchdog (no growth per lock)', async () => {
    const cls = new WwClass(kind);
    const m = new WwMutex(cls);
    const before = watchedCount();
    for (let i = 0; i < 200; i++) {
      const ctx = cls.acquireContext({ name: 'loop', maxHoldMs: 60_000 });
      await m.lock(ctx);
      m.unlock(ctx);
      ctx.fini();
    }
    expect(watchedCount()).toBe(before);
    m.dispose();
  });

  test('fake timers: released in time, nothing is forced; no maxHoldMs, never forced', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
    let hooked = 0;
    setForceHook(() => hooked++);
    const m = new WwMutex(cls);
    const ctx = cls.acquireContext({ maxHoldMs: 100 });
    await m.lock(ctx);
    jest.advanceTimersByTime(99);
    m.unlock(ctx);
    await m.lock(ctx); // a new hold: a new deadline
    jest.advanceTimersByTime(99);
    expect(forceRelease(ctx.id)).toBe(false); // not expired yet: a supervisor cannot force it
    expect(ctx.forced).toBe(false);
    m.unlock(ctx);
    jest.advanceTimersByTime(1000);
    expect(ctx.forced).toBe(false);
    const free = cls.acquireContext();
    await m.lock(free);
    jest.advanceTimersByTime(1e7);
    expect(free.forced).toBe(false);
    expect(m.isLocked()).toBe(true);
    m.unlock(free);
    expect(hooked).toBe(0);
    ctx.fini();
    free.fini();
  });

  test('real timers: maxHoldMs 50, a waiter gets the lock, the holder unlock throws ETIMEDOUT, onForced runs', async () => {
    const tags: bigint[] = [];
    setForceHook((t) => tags.push(...t));
    const m = new WwMutex(cls);
    const holder = cls.acquireContext({ name: 'slow', maxHoldMs: 50 });
    let forced = 0;
    holder.onForced(() => forced++);
    await m.lock(holder, 'write');
    m.setHoldTag(holder, 7n);
    const waiter = cls.acquireContext({ name: 'waiter' });
    const t0 = Date.now();
    await m.lock(waiter, 'write');
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(45);
    expect(waited).toBeLessThan(1500); // generous: the suite runs workers in parallel on small machines
    expect(forced).toBe(1);
    expect(tags).toEqual([7n]);
    expect(holder.forced).toBe(true);
    expect(thrownCode(() => m.unlock(holder))).toBe('ETIMEDOUT');
    expect(m.unlockIfHeld(holder)).toBe(false); // the cleanup of a forced context: quiet, and takes nothing from the waiter
    const holders = queryLocks().locks.find((l) => l.key === m.key)!.holders;
    expect(holders.map((h) => h.ctxName)).toEqual(['waiter']);
    m.unlock(waiter);
    holder.fini();
    waiter.fini();
    expect(m.isLocked()).toBe(false);
  });

  test('a forced context waiting for another lock is woken with ETIMEDOUT', async () => {
    const a = new WwMutex(cls), b = new WwMutex(cls);
    const ctx = cls.acquireContext({ maxHoldMs: 40 }); // older: waits for b under both classes
    const other = cls.acquireContext();
    await b.lock(other);
    await a.lock(ctx);
    const t0 = Date.now();
    expect(await codeOf(b.lock(ctx))).toBe('ETIMEDOUT'); // a's deadline passes while waiting for b
    expect(Date.now() - t0).toBeLessThan(400);
    expect(a.isLocked()).toBe(false);
    expect(queryLocks().locks.find((l) => l.key === b.key)!.waiters).toEqual([]);
    b.unlock(other);
    other.fini();
    ctx.fini();
  });
});
