/**
 * Hand-offs at release (lib/ww/ww-rules.ts handOff, docs/design.md "Direct hand-offs", "Cohort hand-offs"):
 * a release whose queue head is this thread's waiter grants it at once (forced before it ran: ETIMEDOUT);
 * a release whose queue head is another process's waiter passes the mutex to the releasing thread's own
 * waiter, at most 8 times in a row; then the head gets it. The passed-over waiter stays queued and visible; a waiter aborted after it
 * was passed the lock, before it ran, gives the lock on, holding nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { WwClass } from '../../lib/ww/ww-class';
import { WwMutex, queryLocks } from '../../lib/ww/ww-mutex';
import { F_WW, GRANTED, WAITING, TableLockStore, lockStore } from '../../lib/ww/lock-store';
import { KIND_WOUND_WAIT } from '../../lib/ww/layout';
import { HANDED, WOKEN } from '../../lib/ww/waking';
import { checkTable } from '../../lib/ww/recovery';

jest.setTimeout(60_000);

const HELPER = path.join(__dirname, 'proc-helper.js');
const DOMAIN = 'cohort';
const cls = new WwClass('wound-wait', 'cohort', { domain: DOMAIN });
// Attached before fd-guard's snapshot (a store's fd lives as long as the thread).
const store = lockStore(DOMAIN) as TableLockStore;
// A second participant of the same table in this thread (its own open of the file, its own doorbell).
const storeB = new TableLockStore(DOMAIN);
let nextKey = 0x7100_0000n;
const COHORT_BOUND = 8;

const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  }
});

/** A child process that queues a write lock() of `key` (and keeps it once granted); resolves once queued. */
async function remoteWaiter(key: bigint): Promise<ChildProcess> {
  const child = spawn(process.execPath, [HELPER, JSON.stringify({ domain: DOMAIN, job: 'wait', key: String(key) })], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: process.env, // jest's process.env: the per-file store directory
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => (d.toString().includes('waiting') ? resolve() : undefined));
    child.once('exit', (code) => reject(new Error(`waiter exited with ${code}`)));
  });
  return child;
}

/** Holders' and waiters' pids and names of `key`. */
function state(key: bigint): { holders: string[]; waiters: string[] } {
  const lock = queryLocks(DOMAIN).locks.find((l) => l.key === key);
  const who = (x: { pid: number; ctxName: string }): string => (x.pid === process.pid ? x.ctxName : 'remote');
  return { holders: (lock?.holders ?? []).map(who), waiters: (lock?.waiters ?? []).map(who) };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error(`timed out waiting until ${what}`);
}

test("a release hands the lock to this thread's head waiter at once; its lock() resolves without a re-check", async () => {
  const key = nextKey++;
  const m = new WwMutex(cls, key);
  const ctx = cls.acquireContext({ name: 'holder' });
  await m.lock(ctx, 'write');
  const next = cls.acquireContext({ name: 'next' });
  const granted = m.lock(next, 'write');
  m.unlock(ctx); // hands it to 'next', whose lock() has not run yet
  expect(state(key)).toEqual({ holders: ['next'], waiters: [] });
  await granted;
  expect(m.isHeldBy(next)).toBe(true);
  m.unlock(next);
  ctx.fini();
  next.fini();
  expect(checkTable(store.t)).toEqual([]);
  m.dispose();
});

test('a waiter forced off after a release handed it the lock, before it ran, rejects ETIMEDOUT and holds nothing', async () => {
  const key = nextKey++;
  const m = new WwMutex(cls, key);
  const ctx = cls.acquireContext({ name: 'holder' });
  await m.lock(ctx, 'write');
  const waiter = cls.acquireContext({ name: 'forced', maxHoldMs: 60_000 });
  const pending = m.lock(waiter, 'write');
  m.unlock(ctx); // hands it to 'forced'
  expect(state(key).holders).toEqual(['forced']);
  expect(store.forceIfExpired(waiter.id, Infinity)).not.toBeNull();
  await expect(pending).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  expect(waiter.acquired).toBe(0);
  expect(state(key)).toEqual({ holders: [], waiters: [] });
  expect(m.tryLock('write', ctx)).toBe(true);
  m.unlock(ctx);
  ctx.fini();
  waiter.fini();
  expect(checkTable(store.t)).toEqual([]);
  m.dispose();
});

test(`a release passes to this thread's waiter over another process's head, ${COHORT_BOUND} times in a row, then the head gets it`, async () => {
  const key = nextKey++;
  const m = new WwMutex(cls, key);
  let ctx = cls.acquireContext({ name: 'local-0' });
  await m.lock(ctx, 'write');
  const child = await remoteWaiter(key);
  expect(state(key)).toEqual({ holders: ['local-0'], waiters: ['remote'] });
  for (let i = 1; i <= COHORT_BOUND; i++) {
    const next = cls.acquireContext({ name: `local-${i}` });
    const granted = m.lock(next, 'write');
    expect(state(key).waiters).toEqual(['remote', `local-${i}`]);
    m.unlock(ctx);
    ctx.fini();
    await granted;
    expect(state(key)).toEqual({ holders: [`local-${i}`], waiters: ['remote'] });
    ctx = next;
  }
  const last = cls.acquireContext({ name: 'local-last' });
  let settled = false;
  const granted = m.lock(last, 'write').then(() => void (settled = true));
  m.unlock(ctx);
  ctx.fini();
  await until('the other process holds it', () => state(key).holders[0] === 'remote');
  expect(settled).toBe(false);
  expect(state(key).waiters).toEqual(['local-last']);
  child.kill('SIGKILL');
  await granted; // the dead holder is reaped
  m.unlock(last);
  last.fini();
  expect(checkTable(store.t)).toEqual([]);
  m.dispose();
});

test('a waiter aborted after a release passed it the lock, before it ran, holds nothing and the lock goes on', async () => {
  const key = nextKey++;
  const m = new WwMutex(cls, key);
  const ctx = cls.acquireContext({ name: 'holder' });
  await m.lock(ctx, 'write');
  await remoteWaiter(key);
  const waiter = cls.acquireContext({ name: 'aborted' });
  const ac = new AbortController();
  const pending = m.lock(waiter, 'write', { signal: ac.signal });
  m.unlock(ctx); // passes it to 'aborted', whose lock() has not run yet
  expect(state(key).holders).toEqual(['aborted']);
  ac.abort();
  await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  expect(waiter.acquired).toBe(0);
  await until('the other process holds it', () => state(key).holders[0] === 'remote');
  ctx.fini();
  waiter.fini();
  expect(checkTable(store.t)).toEqual([]);
  m.dispose();
});

/** Runs `body` and returns what it did to the table lock and the doorbells, in order ('ring' notes if the lock was held). */
function trace(body: () => void): string[] {
  const t = store.t;
  const waker = store.waker;
  const events: string[] = [];
  const lock = t.lock.bind(t);
  const unlock = t.unlock.bind(t);
  const ring = waker.ring.bind(waker);
  t.lock = () => {
    lock();
    events.push('lock');
  };
  t.unlock = () => {
    events.push('unlock');
    unlock();
  };
  waker.ring = (part: number) => {
    events.push(t.isLockedByMe() ? 'ring inside the lock' : 'ring');
    ring(part);
  };
  try {
    body();
  } finally {
    delete (t as Partial<typeof t>).lock;
    delete (t as Partial<typeof t>).unlock;
    delete (waker as Partial<typeof waker>).ring;
  }
  return events;
}

test("a release rings another process's head before it takes the table lock, and again only after leaving it; with a waiter of its own thread queued, not before", async () => {
  const key = nextKey++;
  const m = new WwMutex(cls, key);
  const ctx = cls.acquireContext({ name: 'holder' });
  await m.lock(ctx, 'write');
  await remoteWaiter(key);
  // Nobody of this thread waits: the head's wake-up starts before the release's own work; its kick's ring
  // (the one it cannot miss) comes after the table lock is left.
  expect(trace(() => m.unlock(ctx))).toEqual(['ring', 'lock', 'unlock', 'ring']);
  await until('the other process holds it', () => state(key).holders[0] === 'remote');
  // Now the other process holds it and this thread queues behind: its release is not ours to trace. Take
  // it back through a cohort case instead: a holder here, the other process queued, a waiter of ours too.
  const key2 = nextKey++;
  const m2 = new WwMutex(cls, key2);
  const first = cls.acquireContext({ name: 'first' });
  await m2.lock(first, 'write');
  await remoteWaiter(key2);
  const second = cls.acquireContext({ name: 'second' });
  const granted = m2.lock(second, 'write');
  // The release may pass the lock to 'second' (a cohort pass): no ring ahead of it, and none inside the lock.
  const events = trace(() => m2.unlock(first));
  expect(events[0]).toBe('lock');
  expect(events).not.toContain('ring inside the lock');
  await granted;
  expect(state(key2).holders).toEqual(['second']);
  m2.unlock(second);
  for (const c of [ctx, first, second]) c.fini();
  await until('the other process holds it', () => state(key2).holders[0] === 'remote');
  m.dispose();
  m2.dispose();
});

test("a release hands the lock to another participant's head; its waiter learns it from the kick, without a re-check under the table lock", async () => {
  for (const lockFree of [true, false]) {
    const key = nextKey++;
    const mA = store.openMutex(key, KIND_WOUND_WAIT);
    const mB = storeB.openMutex(key, KIND_WOUND_WAIT);
    const cA = store.openContext(KIND_WOUND_WAIT, 'a', 0, false);
    const cB = storeB.openContext(KIND_WOUND_WAIT, 'b', 0, false);
    expect(store.acquire(mA, cA, true, F_WW)).toBe(GRANTED);
    expect(storeB.acquire(mB, cB, true, F_WW)).toBe(WAITING);
    const w = storeB.lastRecord;
    let polls = 0;
    const poll = storeB.poll.bind(storeB);
    storeB.poll = (...args) => {
      polls++;
      return poll(...args);
    };
    try {
      // Without its mutex and context, the waiter cannot tell a hand-off from a kick: it re-checks.
      const woken = lockFree ? storeB.wait(w, 10_000, undefined, mB, cB) : storeB.wait(w, 10_000);
      expect(store.release(mA, cA, -1)).toBe(GRANTED);
      expect(storeB.holds(mB, cB)).toBe(true); // granted by the release itself
      expect(await woken).toBe(lockFree ? HANDED : WOKEN);
      if (!lockFree) expect(storeB.poll(w, mB, cB, true, F_WW)).toBe(GRANTED);
      expect(polls).toBe(lockFree ? 0 : 1);
    } finally {
      delete (storeB as Partial<TableLockStore>).poll;
    }
    expect(storeB.release(mB, cB, -1)).toBe(GRANTED);
    expect(store.closeContext(cA) && storeB.closeContext(cB)).toBe(true);
    store.closeMutex(mA);
    storeB.closeMutex(mB);
    // (Not checkTable: the processes of the tests before may have been killed holding locks, not reaped yet.)
    expect(queryLocks(DOMAIN).locks.find((l) => l.key === key)).toBeUndefined();
  }
});
