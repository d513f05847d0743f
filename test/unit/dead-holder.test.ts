/**
 * A dead holder never wedges anyone: real processes SIGKILLed while holding, waiting, or inside the lock
 * table's critical section; a worker terminated while holding; a full participant table.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as dc from 'node:diagnostics_channel';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { WwClass } from '../../lib/ww/ww-class';
import { CHANNEL_OWNER_DIED, WwMutex, queryLocks, takeOwnerDied } from '../../lib/ww/ww-mutex';
import { lockStore, type TableLockStore } from '../../lib/ww/lock-store';
import { checkTable, reapDead, rebuildTable } from '../../lib/ww/recovery';
import { CF_PARKED, C_FLAGS, C_NEXT_FREE, C_PART, H_FREE_CTX, M_KEY, M_REFS, M_STATE, P_PID, SLOT_USED } from '../../lib/ww/layout';

jest.setTimeout(60_000);

const HELPER = path.join(__dirname, 'proc-helper.js');
const DOMAIN = 'dead-holder';
const cls = new WwClass('wound-wait', 'dead', { domain: DOMAIN });
// Attached before fd-guard's snapshot (a store's fd lives as long as the thread).
const store = lockStore(DOMAIN) as TableLockStore;
let nextKey = 0x6000_0000n;

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

/** Starts proc-helper with `job`; resolves once it printed `ready`. */
function startChild(job: Record<string, unknown>, ready: string, env: NodeJS.ProcessEnv = process.env): Promise<ChildProcess> {
  const child = spawn(process.execPath, [HELPER, JSON.stringify({ domain: DOMAIN, ...job })], { stdio: ['ignore', 'pipe', 'inherit'], env });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(ready)) resolve(child);
      else if (out.includes('\n') && !out.startsWith(ready)) reject(new Error(`child said ${out}`));
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code} before "${ready}" (said ${out})`)));
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Reaps what dead participants left and checks every invariant of the table. */
function consistent(): string[] {
  const t = store.t;
  t.lock();
  reapDead(t, store.waker);
  t.unlock();
  return checkTable(t);
}

test.each(['write', 'read'] as const)('SIGKILL of a %s holder: a waiter gets the lock within 1 s; ownerDied only for a writer', async (mode) => {
  const key = nextKey++;
  const child = await startChild({ job: 'hold', key: String(key), mode }, 'held');
  const m = new WwMutex(cls, key);
  const ctx = cls.acquireContext({ name: 'next' });
  const published: unknown[] = [];
  const onMsg = (msg: unknown): void => void published.push(msg);
  dc.subscribe(CHANNEL_OWNER_DIED, onMsg);
  try {
    expect(m.tryLock('write', ctx)).toBe(false);
    const pending = m.lock(ctx, 'write');
    await new Promise((r) => setTimeout(r, 100));
    const killedAt = Date.now();
    await kill(child);
    await pending;
    expect(Date.now() - killedAt).toBeLessThan(1000);
    expect(takeOwnerDied(ctx)).toEqual(mode === 'write' ? [key] : []);
    expect(published).toEqual(mode === 'write' ? [expect.objectContaining({ key, ctxName: 'next' })] : []);
    m.unlock(ctx);
    // Told once: the next locker is not told again.
    await m.lock(ctx, 'write');
    expect(takeOwnerDied(ctx)).toEqual([]);
    m.unlock(ctx);
  } finally {
    dc.unsubscribe(CHANNEL_OWNER_DIED, onMsg);
    ctx.fini();
    m.dispose();
  }
  expect(consistent()).toEqual([]);
});

test('SIGKILL of a waiter queued ahead: the next lock proceeds within 1 s, its record is gone', async () => {
  const key = nextKey++;
  const m = new WwMutex(cls, key);
  await m.lock(null, 'write');
  const child = await startChild({ job: 'wait', key: String(key) }, 'waiting');
  await new Promise((r) => setTimeout(r, 100));
  expect(queryLocks(DOMAIN).locks.find((l) => l.key === key)?.waiters).toEqual([expect.objectContaining({ pid: child.pid })]);
  await kill(child);
  m.unlock();
  const t0 = Date.now();
  await m.lock(null, 'write'); // the dead waiter is ahead in the queue until someone reaps it
  expect(Date.now() - t0).toBeLessThan(1000);
  expect(queryLocks(DOMAIN).locks.find((l) => l.key === key)?.waiters).toEqual([]);
  m.unlock();
  m.dispose();
  expect(consistent()).toEqual([]);
});

test('SIGKILL inside the critical section at many points (widened by the test hook): others proceed, the table stays consistent', async () => {
  const keys = Array.from({ length: 4 }, () => nextKey++);
  const env = { ...process.env, DMABUF_SYNC_TEST_CS_SPIN_US: '300' };
  const locks = keys.map((k) => new WwMutex(cls, k));
  let kills = 0;
  for (let round = 0; round < 8; round++) {
    const kids = await Promise.all([0, 1].map(() => startChild({ job: 'stress', keys: keys.map(String) }, 'started', env)));
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 150));
    // Kill one, then (in half the rounds) the other one shortly after: it may be the one repairing.
    await kill(kids[0]!);
    kills++;
    if (round % 2 === 1) {
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
      await kill(kids[1]!);
      kills++;
    }
    // This process locks everything within a second, whatever state the dead left.
    const ctx = cls.acquireContext({ name: `round${round}` });
    const t0 = Date.now();
    let contended: WwMutex | undefined;
    for (;;) {
      const held: WwMutex[] = [];
      let failed: WwMutex | undefined;
      try {
        if (contended) {
          failed = contended;
          await contended.lockSlow(ctx, 'write', { deadline: Date.now() + 5000 });
          held.push(contended);
        }
        for (const m of locks) {
          if (m === contended) continue;
          failed = m;
          await m.lock(ctx, 'write', { deadline: Date.now() + 5000 });
          held.push(m);
        }
        break;
      } catch (err) {
        for (const m of held) m.unlock(ctx);
        if ((err as { code?: string }).code !== 'EDEADLK') throw err;
        contended = failed;
      }
    }
    expect(Date.now() - t0).toBeLessThan(round % 2 === 1 ? 1500 : 5000);
    for (const m of locks) m.unlock(ctx);
    ctx.fini();
    for (const c of kids) if (c.exitCode === null && c.signalCode === null) await kill(c);
    expect(consistent()).toEqual([]);
  }
  expect(kills).toBe(12);
  locks.forEach((m) => m.dispose());
}, 240_000);

test('a worker terminated while holding a write lock: the waiter proceeds and is told ownerDied', async () => {
  const key = nextKey++;
  const worker = new Worker(HELPER, { env: process.env, workerData: { job: 'hold', domain: DOMAIN, key: String(key), mode: 'write' } });
  await new Promise<void>((resolve) => worker.once('message', () => resolve()));
  const m = new WwMutex(cls, key);
  const ctx = cls.acquireContext({ name: 'after-worker' });
  expect(m.tryLock('write', ctx)).toBe(false);
  const pending = m.lock(ctx, 'write');
  await worker.terminate();
  const t0 = Date.now();
  await pending;
  expect(Date.now() - t0).toBeLessThan(1000);
  expect(takeOwnerDied(ctx)).toEqual([key]);
  m.unlock(ctx);
  ctx.fini();
  m.dispose();
  expect(consistent()).toEqual([]);
});

test('a full participant table is ENOSPC; slots are reclaimed after deaths', async () => {
  const env = { ...process.env, DMABUF_SYNC_CAPACITY: 'participants=2' };
  const a = await startChild({ job: 'attach', domain: 'tiny' }, 'attached', env);
  await startChild({ job: 'attach', domain: 'tiny' }, 'attached', env);
  await startChild({ job: 'attach', domain: 'tiny' }, 'ENOSPC', env);
  await kill(a);
  await startChild({ job: 'attach', domain: 'tiny' }, 'attached', env);
});

const root = process.geteuid?.() === 0;
(root ? test : test.skip)('a process of another uid cannot open the store (EACCES)', async () => {
  const child = spawn(
    process.execPath,
    ['-e', `const { lockStore } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'lib', 'ww', 'lock-store'))});` +
      `try { lockStore(${JSON.stringify(DOMAIN)}); console.log('opened'); } catch (e) { console.log(e.code); }`],
    { stdio: ['ignore', 'pipe', 'inherit'], env: process.env, uid: 4242, gid: 4242 },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.once('exit', r));
  expect(out.trim()).toBe('EACCES');
});

test("a dead process's WwMutex objects do not keep their mutex slot: its reference is reaped with it", async () => {
  const key = nextKey++;
  const slotOf = (): number => {
    const t = store.t;
    for (let m = 0; m < t.nMutex; m++) {
      const off = t.mutexOff(m);
      if (t.i32[off + M_STATE] === SLOT_USED && t.i64[(off + M_KEY) >> 1] === key) return m;
    }
    return -1;
  };
  // The child locks and unlocks at once, then idles keeping its WwMutex object (a reference, no hold).
  const child = await startChild({ job: 'hold', key: String(key), mode: 'write', releaseAfterMs: 0 }, 'held');
  for (let i = 0; i < 200 && queryLocks(DOMAIN).locks.some((l) => l.key === key); i++) await new Promise((r) => setTimeout(r, 10));
  expect(queryLocks(DOMAIN).locks.some((l) => l.key === key)).toBe(false);
  const m = slotOf();
  expect(m).toBeGreaterThanOrEqual(0);
  expect(store.t.i32[store.t.mutexOff(m) + M_REFS]).toBe(1);
  await kill(child);
  expect(consistent()).toEqual([]);
  expect(slotOf()).toBe(-1);
});

test("a dead process's parked context slots go back to the free list", async () => {
  const t = store.t;
  const freeContexts = (): number => {
    let n = 0;
    t.lock();
    for (let p = t.i32[H_FREE_CTX] as number; p !== 0; p = t.i32[t.ctxOff(p - 1) + C_NEXT_FREE] as number) n++;
    t.unlock();
    return n;
  };
  const parkedBy = (pid: number): number => {
    let n = 0;
    for (let c = 0; c < t.nCtx; c++) {
      const off = t.ctxOff(c);
      if (t.i32[off + C_FLAGS] === CF_PARKED && t.i32[t.partOff(t.i32[off + C_PART] as number) + P_PID] === pid) n++;
    }
    return n;
  };
  const before = freeContexts();
  const child = await startChild({ job: 'park' }, 'parked');
  const parked = parkedBy(child.pid as number);
  expect(parked).toBeGreaterThan(0);
  // 12 opened at once, some kept by the child, the rest given back.
  expect(freeContexts()).toBe(before - parked);
  await kill(child);
  expect(consistent()).toEqual([]);
  expect(parkedBy(child.pid as number)).toBe(0);
  expect(freeContexts()).toBe(before);
});

test('a rebuild after a dead owner keeps the wait queue order: ctx-less waiters between contexts keep their place', async () => {
  const m = new WwMutex(cls, nextKey++);
  const waiter = new WwMutex(cls, m.key); // the ctx-less waiter's own object (ctx-less holds are per object)
  await m.lock(null); // a ctx-less writer holds: nobody is wounded, everybody queues
  const older = cls.acquireContext({ name: 'older' });
  const younger = cls.acquireContext({ name: 'younger' });
  const ctl = new AbortController();
  const order: string[] = [];
  const lockAs = (what: string, mm: WwMutex, ctx: typeof older | null): Promise<void> =>
    mm.lock(ctx, 'write', { signal: ctl.signal }).then(() => void order.push(what), () => {});
  const queue = (): string[] =>
    queryLocks(DOMAIN).locks.find((l) => l.key === m.key)!.waiters.map((w) => w.ctxName || 'ctx-less');
  const pOlder = lockAs('older', m, older);
  await new Promise((r) => setImmediate(r));
  const pCtxless = lockAs('ctx-less', waiter, null);
  await new Promise((r) => setImmediate(r));
  const pYounger = lockAs('younger', m, younger);
  await new Promise((r) => setImmediate(r));
  try {
    // acquire's placement: the younger context arrived after the ctx-less request and queues behind it.
    expect(queue()).toEqual(['older', 'ctx-less', 'younger']);
    const t = store.t;
    t.lock();
    try {
      rebuildTable(t);
    } finally {
      t.unlock();
    }
    expect(checkTable(t)).toEqual([]);
    expect(queue()).toEqual(['older', 'ctx-less', 'younger']);
    // And they are granted in that order.
    m.unlock();
    await pOlder;
    m.unlock(older);
    await pCtxless;
    waiter.unlock();
    await pYounger;
    m.unlock(younger);
    expect(order).toEqual(['older', 'ctx-less', 'younger']);
  } finally {
    // Whatever failed: nothing left queued or held.
    ctl.abort();
    await Promise.all([pOlder, pCtxless, pYounger]);
    for (const [mm, ctx] of [[m, older], [m, younger]] as const) if (mm.isHeldBy(ctx)) mm.unlock(ctx);
    for (const mm of [m, waiter]) {
      try {
        for (;;) mm.unlock();
      } catch {
        // none left
      }
    }
    older.fini();
    younger.fini();
    waiter.dispose();
    m.dispose();
  }
});
