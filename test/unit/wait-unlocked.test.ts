/**
 * WwMutex.waitUnlocked: learn that a lock was released, in this thread or another process, without taking
 * it (the 2013 proposal's poll() on a dma-buf). A watcher is never granted, never delays a lock request,
 * and leaves nothing queued when it times out or is aborted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { WwClass } from '../../lib/ww/ww-class';
import { WwMutex, queryLocks } from '../../lib/ww/ww-mutex';
import { lockStore, type TableLockStore } from '../../lib/ww/lock-store';
import { checkTable } from '../../lib/ww/recovery';
import { M_NWAITERS } from '../../lib/ww/layout';

jest.setTimeout(60_000);

const HELPER = path.join(__dirname, 'proc-helper.js');
const DOMAIN = 'wait-unlocked';
const cls = new WwClass('wound-wait', 'watch', { domain: DOMAIN });
const store = lockStore(DOMAIN) as TableLockStore;
let nextKey = 0x7000_0000n;

const children: ChildProcess[] = [];
afterEach(async () => {
  // Killed and closed: their pipes must not outlive the test file (fd-guard).
  await Promise.all(
    children.splice(0).map((c) => {
      const closed = new Promise((r) => c.once('close', r));
      c.kill('SIGKILL');
      return closed;
    }),
  );
});

/** Starts proc-helper with `job`; resolves with the child once it printed `ready`, and a promise of `later`. */
function startChild(job: Record<string, unknown>, ready: string, later: string): Promise<{ child: ChildProcess; said: Promise<number> }> {
  const child = spawn(process.execPath, [HELPER, JSON.stringify({ domain: DOMAIN, ...job })], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
  children.push(child);
  let out = '';
  let onLater: (at: number) => void = () => {};
  const said = new Promise<number>((resolve) => (onLater = resolve));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(ready)) resolve({ child, said });
      if (out.includes(later)) onLater(Date.now());
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code} before "${ready}" (said ${out})`)));
  });
}

function keyState(key: bigint): { holders: number; waiters: number } | undefined {
  const l = queryLocks(DOMAIN).locks.find((x) => x.key === key);
  return l && { holders: l.holders.length, waiters: l.waiters.length };
}

test('resolves at once when unlocked; after the unlock when held; a read watch ignores readers', async () => {
  const m = new WwMutex(cls, nextKey++);
  await m.waitUnlocked('write');
  const ctx = cls.acquireContext({ name: 'reader' });
  await m.lock(ctx, 'read');
  await m.waitUnlocked('read'); // readers do not block a read watch
  let resolved = false;
  const watch = m.waitUnlocked('write').then(() => (resolved = true));
  await new Promise((r) => setTimeout(r, 50));
  expect(resolved).toBe(false);
  // The watcher is not a waiter: another reader still joins at once.
  const other = cls.acquireContext({ name: 'reader2' });
  expect(m.tryLock('read', other)).toBe(true);
  m.unlock(other);
  other.fini();
  m.unlock(ctx);
  await watch;
  expect(resolved).toBe(true);
  // It did not take the lock.
  expect(m.tryLock('write')).toBe(true);
  m.unlock();
  ctx.fini();
  expect(keyState(m.key)).toBeUndefined();
  expect(checkTable(store.t)).toEqual([]);
  m.dispose();
});

test('a watcher queued first does not delay a writer that waits behind a holder', async () => {
  const m = new WwMutex(cls, nextKey++);
  const a = cls.acquireContext({ name: 'a' });
  await m.lock(a, 'write');
  const watch = m.waitUnlocked('write');
  const b = cls.acquireContext({ name: 'b' });
  const bLocked = m.lock(b, 'write');
  m.unlock(a);
  await bLocked; // granted although the watcher came first
  await watch; // resolved too: a was released (b may hold it now)
  m.unlock(b);
  a.fini();
  b.fini();
  expect(checkTable(store.t)).toEqual([]);
  m.dispose();
});

test('timeout and abort reject and leave no watch record behind', async () => {
  const m = new WwMutex(cls, nextKey++);
  const ctx = cls.acquireContext({ name: 'holder' });
  await m.lock(ctx, 'write');
  await expect(m.waitUnlocked('write', { deadline: Date.now() + 100 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  const ac = new AbortController();
  const p = m.waitUnlocked('read', { signal: ac.signal });
  setTimeout(() => ac.abort(), 30);
  await expect(p).rejects.toMatchObject({ name: 'AbortError' });
  await expect(m.waitUnlocked('write', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
  await expect(m.waitUnlocked('sideways' as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  // Only the holder is left: no waiter record of either watch (query() hides watchers; the count does not).
  const t = store.t;
  expect(t.i32[t.mutexOff((m as unknown as { slot: number }).slot) + M_NWAITERS]).toBe(0);
  expect(keyState(m.key)).toEqual({ holders: 1, waiters: 0 });
  m.unlock(ctx);
  ctx.fini();
  expect(checkTable(store.t)).toEqual([]);
  m.dispose();
});

test('another process releasing the lock wakes the watcher here', async () => {
  const key = nextKey++;
  const { said } = await startChild({ job: 'hold', key: String(key), mode: 'write', releaseAfterMs: 300 }, 'held', 'released');
  const m = new WwMutex(cls, key);
  expect(m.tryLock('write')).toBe(false);
  await m.waitUnlocked('write');
  const at = Date.now();
  // Resolved by the release (not by the child's death: it keeps running), around when it said so.
  expect(children[0]!.exitCode).toBeNull();
  expect(Math.abs(at - (await said))).toBeLessThan(5000);
  expect(m.tryLock('write')).toBe(true);
  m.unlock();
  m.dispose();
});
