/**
 * Model-based property test of the lock core: random interleavings of lock / lockSlow / tryLock / unlock /
 * waitUnlocked / done / fini / abort / dispose and re-open of mutex objects (and locks whose deadline has
 * passed), read and write, by several contexts and ctx-less tasks over several mutexes, for both ww
 * classes, checked after every step against the reference model of test/helpers/lock-model.ts: each
 * request's outcome, each mutex's holders and queue (query()), isLocked / isHeldBy, each context's acquired count and wound; and
 * against the safety rules themselves (never two writers, never a writer with a reader, a consistent table).
 * At the end every waiter is driven to completion: whoever is not waiting releases everything, until no
 * request is left pending; then nothing may be held or queued on the run's mutexes.
 *
 * Deterministic: a fixed fast-check seed (FC_SEED overrides it), printed with the shrunk command list on failure;
 * FC_RUNS sets the number of runs per class (longer explorations).
 *
 * Second part, exhaustive: every table state reachable in a few steps by 3 contexts (unordered, or the last
 * two ordered) and a ctx-less task on 2 mutexes, read and write, for both classes, driven through the rules'
 * own entry points (acquire, poll, cancel, release), with each waiter re-checked when kicked, as its thread
 * would. Each state's verdicts (grant, back-off, wound, queue order) are checked against the model, and the
 * wake-up rule itself: right after every step, forEachReady kicks a waiter exactly when its re-check (poll)
 * would act (grant, back off, wound), so that no wake-up is lost and nobody is woken for nothing (the one
 * exception: a lockSlow waiter, which does not wound, may be kicked for a wound). Steps: lock, lockSlow,
 * tryLock, unlock, abort; states are merged by what the model holds (holders, queues, wounds, cohort counts).
 * It runs once with every actor in one participant, and once with two (e0, e2 and e1, l0: two stores of this
 * thread, each its own participant of the table), where a release passes a mutex to its own participant's
 * waiter over the other's queue head (the cohort hand-off, which the model has too), and the passed-over head
 * re-checks against the new holder (wounds it, waits, or dies). ENUM_DEPTH sets
 * the depth (default 5: 16k–23k states and 120k–160k steps per class and ordering; watchers are left to the
 * random part).
 */
import fc from 'fast-check';
import { AcquireContext } from '../../lib/ww/acquire-context';
import { WwClass } from '../../lib/ww/ww-class';
import { WwMutex } from '../../lib/ww/ww-mutex';
import { lockStore, TableLockStore } from '../../lib/ww/lock-store';
import { checkTable } from '../../lib/ww/recovery';
import { CAPACITY_ENV, CF_WOUNDED, KIND_WAIT_DIE, KIND_WOUND_WAIT, RF_KICK, R_FLAGS } from '../../lib/ww/layout';
import { EALREADY, EDEADLK, F_TRY, F_WW, GRANTED, WAITING, WOULD_BLOCK } from '../../lib/ww/lock-store';
import { forEachReady } from '../../lib/ww/ww-rules';
import { firstWaiter, recHold, recNext, recPart } from '../../lib/ww/ww-view';
import { LockModel, type Cohort, type Hold, type Kind, type Mode, type Outcome, type Waiter } from '../helpers/lock-model';

jest.setTimeout(120_000);

const DOMAIN = 'lock-model';
// A small store of its own (fast checkTable), attached before fd-guard's snapshot.
const savedCapacity = process.env[CAPACITY_ENV];
process.env[CAPACITY_ENV] = '64';
const store = lockStore(DOMAIN) as TableLockStore;
// A second participant of the same table in this thread (its own open of the file, so its own liveness lock),
// for the enumeration of cohort hand-offs between two participants.
const storeB = new TableLockStore(DOMAIN);
if (savedCapacity === undefined) delete process.env[CAPACITY_ENV];
else process.env[CAPACITY_ENV] = savedCapacity;

const KEYS = 3;
const CONTEXTS = 3;
const CTXLESS = 2;
const SEED = Number(process.env.FC_SEED ?? 0x10c4_30de);
const RUNS = Number(process.env.FC_RUNS ?? 150);

const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface CtxSlot {
  ctx: AcquireContext;
  name: string;
  /** Not fini()ed. */
  live: boolean;
  /** done() was called: it may unlock, not lock. */
  done: boolean;
}

interface Request {
  id: number;
  actor: string;
  key: number;
  result: Outcome;
  ctl: AbortController;
}

/** The real side: the lock core's objects, and what each request returned. */
class Real {
  readonly cls: WwClass;
  /** The contexts lock through these (replaced by ReopenCmd). */
  readonly mutexes: WwMutex[];
  /** Each ctx-less task locks through its own WwMutex objects (their ctx-less holds are per object). */
  readonly ctxless: WwMutex[][];
  readonly slots: CtxSlot[];
  readonly requests: Request[] = [];
  private generation = 0;
  /** The last stamp of an unordered [0] and an ordered [1] context. */
  readonly lastStamp = [-Infinity, -Infinity];

  /** `ordered`: how many context slots (the last ones) are ordered. */
  constructor(readonly kind: Kind, readonly ordered: number) {
    this.cls = new WwClass(kind, 'model', { domain: DOMAIN });
    this.mutexes = Array.from({ length: KEYS }, () => new WwMutex(this.cls));
    this.ctxless = Array.from({ length: CTXLESS }, () => this.mutexes.map((m) => new WwMutex(this.cls, m.key)));
    this.slots = Array.from({ length: CONTEXTS }, (_, i) => this.newContext(i));
  }

  newContext(slot: number): CtxSlot {
    const name = `c${slot}.${this.generation++}`;
    const ordered = slot >= CONTEXTS - this.ordered;
    const ctx = this.cls.acquireContext({ name, ordered });
    // A new context is younger than every earlier one of its kind, and an ordered one than every unordered one.
    const k = ordered ? 1 : 0;
    expect(ctx.stamp).toBeGreaterThan(this.lastStamp[k] as number);
    if (ordered) expect(ctx.stamp).toBeGreaterThan(this.lastStamp[0] as number);
    else expect(ctx.stamp).toBeLessThan(2 ** 52);
    this.lastStamp[k] = ctx.stamp;
    return { ctx, name, live: true, done: false };
  }

  /** Tracks a lock()/lockSlow() promise. */
  track(actor: string, key: number, ctl: AbortController, p: Promise<void>): Request {
    const r: Request = { id: this.requests.length, actor, key, result: 'pending', ctl };
    this.requests.push(r);
    p.then(
      () => void (r.result = 'granted'),
      (err: unknown) => void (r.result = ((err as { code?: string }).code ?? String(err)) as Outcome),
    );
    return r;
  }

  pending(): Request[] {
    return this.requests.filter((r) => r.result === 'pending');
  }

  /** Lets every wake-up run: until nothing settles for a few event-loop turns and no timed-out request is left. */
  async settle(model: LockModel): Promise<void> {
    let quiet = 0;
    for (let turn = 0; turn < 2000 && quiet < 3; turn++) {
      const before = this.pending().length;
      await immediate();
      const timingOut = model.pending().filter((w) => w.timingOut).map((w) => w.req);
      if (timingOut.some((id) => (this.requests[id] as Request).result === 'pending')) {
        await sleep(1);
        quiet = 0;
      } else {
        quiet = this.pending().length === before ? quiet + 1 : 0;
      }
    }
  }

  /**
   * Ends the run: releases what is still held, ends the contexts, disposes the mutexes. After a failed run,
   * aborts the waits first and goes on past errors (best effort, so that later runs start clean).
   */
  async dispose(): Promise<void> {
    for (const r of this.pending()) r.ctl.abort();
    for (let i = 0; i < 20 && this.pending().length > 0; i++) await sleep(1);
    const attempt = (fn: () => void): boolean => {
      try {
        fn();
        return true;
      } catch {
        return false;
      }
    };
    for (const s of this.slots) {
      for (const m of this.mutexes) attempt(() => s.live && m.isHeldBy(s.ctx) && m.unlock(s.ctx));
      attempt(() => s.ctx.fini());
    }
    for (const objs of this.ctxless) {
      for (const m of objs) {
        while (attempt(() => m.unlock()));
        attempt(() => m.dispose());
      }
    }
    for (const m of this.mutexes) attempt(() => m.dispose());
  }
}

/** One run's state: the model and the real side. */
interface World {
  model: LockModel;
  real: Real;
}

const ctxlessActor = (i: number): string => `l${i}`;
const nameOf = (actor: string): string => (actor.startsWith('l') ? '' : actor);
const entry = (x: { actor: string; mode: Mode }): string => `${nameOf(x.actor)}:${x.mode}`;

function codeOfThrow(fn: () => unknown): unknown {
  try {
    return fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

/** Fails with a readable diff if `actual` differs from `expected` (compared as JSON first: this runs every step). */
function same(actual: unknown, expected: unknown): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) expect(actual).toEqual(expected);
}

/** Compares the real lock core with the model, and checks the safety rules on the real state alone. */
function compare(w: World, step: string): void {
  const { model, real } = w;
  const where = `after ${step}`;
  // A watcher that may have resolved: whichever it did.
  for (const x of [...model.watchers]) if (x.mayResolve && (real.requests[x.req] as Request).result === 'granted') model.watcherResolved(x.req);
  // Every request's outcome.
  same(
    { where, outcomes: real.requests.map((r) => `#${r.id} ${r.actor} k${r.key}: ${r.result}`) },
    { where, outcomes: real.requests.map((r) => `#${r.id} ${r.actor} k${r.key}: ${model.outcomes.get(r.id)}`) },
  );
  const snap = store.query();
  const live = real.slots.filter((s) => s.live);
  real.mutexes.forEach((m, key) => {
    const lock = snap.locks.find((l) => l.key === m.key);
    const holders = lock?.holders ?? [];
    const waiters = lock?.waiters ?? [];
    // Holders (any order) and queue (in order) as query() reports them; isLocked and isHeldBy.
    same(
      {
        where,
        key,
        holders: holders.map((h) => `${h.ctxName}:${h.mode}`).sort(),
        waiters: waiters.map((h) => `${h.ctxName}:${h.mode}`),
        locked: m.isLocked(),
        heldBy: live.map((s) => `${s.name}:${m.isHeldBy(s.ctx)}`),
      },
      {
        where,
        key,
        holders: (model.holders[key] ?? []).map(entry).sort(),
        waiters: (model.queues[key] ?? []).map(entry),
        locked: (model.holders[key] ?? []).length > 0,
        heldBy: live.map((s) => `${s.name}:${model.holds(s.name, key)}`),
      },
    );
    // The safety rules, on the real state alone: never two writers, never a writer with a reader; contexts
    // queue oldest first.
    const writers = holders.filter((h) => h.mode === 'write').length;
    const stamps = waiters.flatMap((h) => (h.stamp === null ? [] : [h.stamp]));
    same(
      { where, key, writers, writerShares: writers > 0 && holders.length > 1, stamps },
      { where, key, writers: Math.min(writers, 1), writerShares: false, stamps: [...stamps].sort((a, b) => a - b) },
    );
  });
  // Each live context's hold count and wound.
  same(
    { where, contexts: live.map((s) => ({ ctx: s.name, acquired: s.ctx.acquired, wounded: s.ctx.wounded })) },
    { where, contexts: live.map((s) => ({ ctx: s.name, acquired: model.acquired(s.name), wounded: model.wounded.has(s.name) })) },
  );
  same({ where, table: checkTable(store.t) }, { where, table: [] });
}

/** Runs the model's and the real side's settling, then compares. */
async function step(w: World, what: string): Promise<void> {
  await w.real.settle(w.model);
  w.model.timeOut();
  compare(w, what);
}

type Deadline = 'none' | 'past';

/** What the model records of a request by the context in `s`. */
function holdOf(s: CtxSlot, mode: Mode): { actor: string; stamp: number; mode: Mode; ordered: boolean } {
  return { actor: s.name, stamp: s.ctx.stamp, mode, ordered: s.ctx.ordered };
}

/** lock() or lockSlow() by the context in `slot`. */
class LockCmd implements fc.AsyncCommand<LockModel, World> {
  constructor(readonly slot: number, readonly key: number, readonly mode: Mode, readonly slow: boolean, readonly deadline: Deadline) {}
  check(): boolean {
    return true;
  }
  async run(_m: LockModel, w: World): Promise<void> {
    const { model, real } = w;
    const s = real.slots[this.slot] as CtxSlot;
    const m = real.mutexes[this.key] as WwMutex;
    const ctl = new AbortController();
    const opts = { signal: ctl.signal, deadline: this.deadline === 'past' ? Date.now() - 1 : undefined };
    const p = this.slow ? m.lockSlow(s.ctx, this.mode, opts) : m.lock(s.ctx, this.mode, opts);
    const r = real.track(s.name, this.key, ctl, p);
    let expected: Outcome | undefined;
    if (!s.live) expected = 'EBADF';
    else if (this.slow && model.acquired(s.name) > 0) expected = 'EINVAL';
    else if (s.done) expected = 'EPERM';
    else if (model.pendingOf(s.name) !== undefined) expected = 'EINVAL';
    else if (model.outOfOrder(holdOf(s, this.mode), this.key)) expected = 'EINVAL';
    else if (model.holds(s.name, this.key)) expected = 'EALREADY';
    if (expected !== undefined) model.outcomes.set(r.id, expected);
    else model.request(r.id, holdOf(s, this.mode), this.key, !this.slow, this.deadline === 'past');
    await step(w, this.toString());
  }
  toString(): string {
    return `${this.slow ? 'lockSlow' : 'lock'}(c${this.slot}, k${this.key}, ${this.mode}${this.deadline === 'past' ? ', past deadline' : ''})`;
  }
}

/** lock(null) by ctx-less task `actor`, which holds and waits for nothing (else it could deadlock, as any plain mutex). */
class CtxlessLockCmd implements fc.AsyncCommand<LockModel, World> {
  constructor(readonly actor: number, readonly key: number, readonly mode: Mode, readonly deadline: Deadline) {}
  check(model: LockModel): boolean {
    const a = ctxlessActor(this.actor);
    return model.acquired(a) === 0 && model.pendingOf(a) === undefined;
  }
  async run(model: LockModel, w: World): Promise<void> {
    const a = ctxlessActor(this.actor);
    const ctl = new AbortController();
    const opts = { signal: ctl.signal, deadline: this.deadline === 'past' ? Date.now() - 1 : undefined };
    const m = (w.real.ctxless[this.actor] as WwMutex[])[this.key] as WwMutex;
    const r = w.real.track(a, this.key, ctl, m.lock(null, this.mode, opts));
    model.request(r.id, { actor: a, stamp: null, mode: this.mode }, this.key, false, this.deadline === 'past');
    await step(w, this.toString());
  }
  toString(): string {
    return `lock(l${this.actor}, k${this.key}, ${this.mode}${this.deadline === 'past' ? ', past deadline' : ''})`;
  }
}

/** tryLock() by a context (actor < CONTEXTS) or a ctx-less task. */
class TryLockCmd implements fc.AsyncCommand<LockModel, World> {
  constructor(readonly actor: number, readonly key: number, readonly mode: Mode) {}
  check(): boolean {
    return true;
  }
  async run(model: LockModel, w: World): Promise<void> {
    let got: unknown;
    let expected: unknown;
    if (this.actor < CONTEXTS) {
      const s = w.real.slots[this.actor] as CtxSlot;
      got = codeOfThrow(() => (w.real.mutexes[this.key] as WwMutex).tryLock(this.mode, s.ctx));
      if (!s.live) expected = 'EBADF';
      else if (s.done) expected = 'EPERM';
      else if (model.pendingOf(s.name) !== undefined) expected = 'EINVAL';
      else if (model.outOfOrder(holdOf(s, this.mode), this.key)) expected = 'EINVAL';
      else if (model.holds(s.name, this.key)) expected = false;
      else expected = model.tryLock(holdOf(s, this.mode), this.key);
    } else {
      const i = this.actor - CONTEXTS;
      got = codeOfThrow(() => ((w.real.ctxless[i] as WwMutex[])[this.key] as WwMutex).tryLock(this.mode));
      expected = model.tryLock({ actor: ctxlessActor(i), stamp: null, mode: this.mode }, this.key);
    }
    expect({ step: this.toString(), got }).toEqual({ step: this.toString(), got: expected });
    await step(w, this.toString());
  }
  toString(): string {
    return `tryLock(${this.actor < CONTEXTS ? `c${this.actor}` : `l${this.actor - CONTEXTS}`}, k${this.key}, ${this.mode})`;
  }
}

/** unlock() by a context (actor < CONTEXTS: of `key`; all: every mutex it holds, the EDEADLK back-off) or a ctx-less task. */
class UnlockCmd implements fc.AsyncCommand<LockModel, World> {
  constructor(readonly actor: number, readonly key: number, readonly all: boolean) {}
  check(): boolean {
    return true;
  }
  async run(model: LockModel, w: World): Promise<void> {
    const keys = this.all ? [...Array(KEYS).keys()] : [this.key];
    for (const key of keys) {
      let got: unknown;
      let expected: unknown;
      if (this.actor < CONTEXTS) {
        const s = w.real.slots[this.actor] as CtxSlot;
        if (this.all && s.live && !model.holds(s.name, key)) continue;
        got = codeOfThrow(() => (w.real.mutexes[key] as WwMutex).unlock(s.ctx));
        expected = !s.live ? 'EBADF' : model.unlock(s.name, key) ? undefined : 'EPERM';
      } else {
        const i = this.actor - CONTEXTS;
        if (this.all && !model.holds(ctxlessActor(i), key)) continue;
        got = codeOfThrow(() => ((w.real.ctxless[i] as WwMutex[])[key] as WwMutex).unlock());
        expected = model.unlock(ctxlessActor(i), key) ? undefined : 'EPERM';
      }
      expect({ step: this.toString(), key, got }).toEqual({ step: this.toString(), key, got: expected });
    }
    await step(w, this.toString());
  }
  toString(): string {
    const who = this.actor < CONTEXTS ? `c${this.actor}` : `l${this.actor - CONTEXTS}`;
    return this.all ? `unlockAll(${who})` : `unlock(${who}, k${this.key})`;
  }
}

/** fini() of the context in `slot`; a finished context is replaced by a new (younger) one. */
class FiniCmd implements fc.AsyncCommand<LockModel, World> {
  constructor(readonly slot: number) {}
  check(): boolean {
    return true;
  }
  async run(model: LockModel, w: World): Promise<void> {
    const s = w.real.slots[this.slot] as CtxSlot;
    if (!s.live) {
      w.real.slots[this.slot] = w.real.newContext(this.slot);
    } else {
      const got = codeOfThrow(() => s.ctx.fini());
      const busy = model.acquired(s.name) > 0 || model.pendingOf(s.name) !== undefined;
      expect({ step: this.toString(), got }).toEqual({ step: this.toString(), got: busy ? 'EBUSY' : undefined });
      if (!busy) s.live = false;
    }
    await step(w, this.toString());
  }
  toString(): string {
    return `fini-or-new(c${this.slot})`;
  }
}

/** done() of the context in `slot` (the end of its acquire phase: it may unlock, not lock). */
class DoneCmd implements fc.AsyncCommand<LockModel, World> {
  constructor(readonly slot: number) {}
  check(): boolean {
    return true;
  }
  async run(_m: LockModel, w: World): Promise<void> {
    const s = w.real.slots[this.slot] as CtxSlot;
    s.ctx.done();
    s.done = true;
    await step(w, this.toString());
  }
  toString(): string {
    return `done(c${this.slot})`;
  }
}

/**
 * Disposes every WwMutex object of mutex `key` and opens a new one with the same key in its place: the lock
 * state is the store's, so nothing changes, except that an object through which a ctx-less task holds or waits
 * for the mutex refuses (EBUSY: its ctx-less holds are its own) and is kept.
 */
class ReopenCmd implements fc.AsyncCommand<LockModel, World> {
  constructor(readonly key: number) {}
  check(): boolean {
    return true;
  }
  async run(model: LockModel, w: World): Promise<void> {
    const { real } = w;
    const old = real.mutexes[this.key] as WwMutex;
    old.dispose();
    real.mutexes[this.key] = new WwMutex(real.cls, old.key);
    real.ctxless.forEach((objs, i) => {
      const a = ctxlessActor(i);
      const busy = model.holds(a, this.key) || (model.queues[this.key] ?? []).some((x) => x.actor === a);
      const got = codeOfThrow(() => (objs[this.key] as WwMutex).dispose());
      expect({ step: this.toString(), task: a, got }).toEqual({ step: this.toString(), task: a, got: busy ? 'EBUSY' : undefined });
      if (!busy) objs[this.key] = new WwMutex(real.cls, old.key);
    });
    expect((real.mutexes[this.key] as WwMutex).key).toBe(old.key);
    await step(w, this.toString());
  }
  toString(): string {
    return `reopen(k${this.key})`;
  }
}

/** waitUnlocked() of mutex `key` (through the contexts' object), never queued ahead of anybody. */
class WatchCmd implements fc.AsyncCommand<LockModel, World> {
  constructor(readonly key: number, readonly mode: Mode) {}
  check(): boolean {
    return true;
  }
  async run(model: LockModel, w: World): Promise<void> {
    const ctl = new AbortController();
    const r = w.real.track('watch', this.key, ctl, (w.real.mutexes[this.key] as WwMutex).waitUnlocked(this.mode, { signal: ctl.signal }));
    model.watch(r.id, this.key, this.mode);
    await step(w, this.toString());
  }
  toString(): string {
    return `waitUnlocked(k${this.key}, ${this.mode})`;
  }
}

/** Aborts the n-th pending request (modulo their number). */
class AbortCmd implements fc.AsyncCommand<LockModel, World> {
  constructor(readonly n: number) {}
  check(model: LockModel): boolean {
    return model.pending().length > 0;
  }
  async run(model: LockModel, w: World): Promise<void> {
    const pending = model.pending().sort((a, b) => a.req - b.req);
    const target = pending[this.n % pending.length] as (typeof pending)[number];
    (w.real.requests[target.req] as Request).ctl.abort();
    model.abort(target.req);
    await step(w, this.toString());
  }
  toString(): string {
    return `abort(pending #${this.n})`;
  }
}

const key = fc.nat(KEYS - 1);
const mode = fc.constantFrom<Mode>('read', 'write');
const lockCmd = fc.tuple(fc.nat(CONTEXTS - 1), key, mode, fc.boolean(), fc.constantFrom<Deadline>('none', 'none', 'none', 'past'))
  .map(([s, k, md, slow, d]) => new LockCmd(s, k, md, slow, d));
// Plain lock() (the common case) weighs most, so that contexts hold several mutexes and meet each other.
const plainLockCmd = fc.tuple(fc.nat(CONTEXTS - 1), key, mode).map(([s, k, md]) => new LockCmd(s, k, md, false, 'none'));
const commands = fc.commands(
  [
    lockCmd,
    plainLockCmd,
    plainLockCmd,
    plainLockCmd,
    fc.tuple(fc.nat(CTXLESS - 1), key, mode, fc.constantFrom<Deadline>('none', 'none', 'past'))
      .map(([a, k, md, d]) => new CtxlessLockCmd(a, k, md, d)),
    fc.tuple(fc.nat(CONTEXTS + CTXLESS - 1), key, mode).map(([a, k, md]) => new TryLockCmd(a, k, md)),
    fc.tuple(fc.nat(CONTEXTS + CTXLESS - 1), key, fc.boolean()).map(([a, k, all]) => new UnlockCmd(a, k, all)),
    fc.tuple(fc.nat(CONTEXTS + CTXLESS - 1), key, fc.boolean()).map(([a, k, all]) => new UnlockCmd(a, k, all)),
    fc.nat(CONTEXTS - 1).map((s) => new FiniCmd(s)),
    fc.nat(CONTEXTS - 1).map((s) => new DoneCmd(s)),
    key.map((k) => new ReopenCmd(k)),
    fc.tuple(key, mode).map(([k, md]) => new WatchCmd(k, md)),
    fc.nat(7).map((n) => new AbortCmd(n)),
  ],
  { maxCommands: 60, size: 'large' },
);

/**
 * Drives every waiter to completion: whoever is not waiting releases all it holds, until no request is
 * pending. A round that neither releases anything nor settles a request is a deadlock.
 */
async function drain(w: World): Promise<void> {
  const { model, real } = w;
  for (let round = 0; model.pending().length > 0; round++) {
    const before = model.pending().length;
    // Who releases is decided first: a release can grant a waiter in the model at once, in the store later.
    const idle = real.slots.filter((s) => s.live && model.pendingOf(s.name) === undefined);
    const idleTasks = [...Array(CTXLESS).keys()].filter((i) => model.pendingOf(ctxlessActor(i)) === undefined);
    let released = 0;
    for (const s of idle) {
      real.mutexes.forEach((m, key) => {
        if (!model.holds(s.name, key)) return;
        m.unlock(s.ctx);
        model.unlock(s.name, key);
        released++;
      });
    }
    for (const i of idleTasks) {
      const a = ctxlessActor(i);
      (real.ctxless[i] as WwMutex[]).forEach((m, key) => {
        while (model.holds(a, key)) {
          m.unlock();
          model.unlock(a, key);
          released++;
        }
      });
    }
    await step(w, `drain round ${round}`);
    expect({ round, stuck: released === 0 && model.pending().length === before }).toEqual({ round, stuck: false });
  }
  // Nothing waits: release the rest and end every context.
  for (const s of real.slots) {
    real.mutexes.forEach((m, key) => {
      if (s.live && model.holds(s.name, key)) {
        m.unlock(s.ctx);
        model.unlock(s.name, key);
      }
    });
    if (s.live) s.ctx.fini();
    s.live = false;
  }
  real.ctxless.forEach((objs, i) => objs.forEach((m, key) => {
    while (model.holds(ctxlessActor(i), key)) {
      m.unlock();
      model.unlock(ctxlessActor(i), key);
    }
  }));
  await step(w, 'release all');
  const left = store.query().locks.filter((l) => real.mutexes.some((m) => m.key === l.key));
  expect(left).toEqual([]);
}

describe.each([
  ['wound-wait', 0],
  ['wait-die', 0],
  ['wound-wait', 2],
  ['wait-die', 2],
] as const)('%s, %d of 3 contexts ordered', (kind, ordered) => {
  test('random interleavings match the reference model; every waiter ends granted or told', async () => {
    await fc.assert(
      fc.asyncProperty(commands, async (cmds) => {
        const real = new Real(kind, ordered);
        const w: World = { model: new LockModel(kind, real.mutexes.map((m) => m.key)), real };
        try {
          await fc.asyncModelRun(() => ({ model: w.model, real: w }), cmds);
          await drain(w);
        } catch (err) {
          // Clean up as well as possible for the next runs, and report the first failure, not a clean-up error.
          await real.dispose().catch(() => {});
          throw err;
        }
        await real.dispose();
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect(checkTable(store.t)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Exhaustive enumeration of small tables, over the rules' entry points (see the header).

const ENUM_DEPTH = Number(process.env.ENUM_DEPTH ?? 5);
const ENUM_CTX = 3;

/** A request the enumeration made, and how it stands. */
interface EnumReq {
  id: number;
  actor: string;
  /** Context slot, -1 for the ctx-less task. */
  c: number;
  key: number;
  write: boolean;
  /** lock() (F_WW) rather than lockSlow(). */
  ww: boolean;
  /** Its wait record while pending. */
  w: number;
  /** The participant's store it went through. */
  st: TableLockStore;
}

/** One state of the enumeration: the model, the real requests, and the store's words. */
interface EnumNode {
  model: LockModel;
  reqs: EnumReq[];
  /** Ctx-less hold record per key (the ctx-less task releases by record). */
  ctxlessHold: number[];
  words: Uint8Array;
}

function cloneModel(m: LockModel): LockModel {
  const n = new LockModel(m.kind, m.keys);
  m.holders.forEach((hs, i) => (n.holders[i] as Hold[]).push(...hs.map((h) => ({ ...h }))));
  m.queues.forEach((q, i) => (n.queues[i] as Waiter[]).push(...q.map((w) => ({ ...w }))));
  for (const a of m.wounded) n.wounded.add(a);
  for (const [k, v] of m.outcomes) n.outcomes.set(k, v);
  for (const [k, v] of m.lastKey) n.lastKey.set(k, v);
  m.cohorts.forEach((c, i) => Object.assign(n.cohorts[i] as Cohort, c));
  n.cohortPasses = m.cohortPasses;
  return n;
}

/** The state as the model has it, without request ids (two paths to one state are one state). */
function stateKey(m: LockModel): string {
  const hs = m.holders.map((h) => h.map((x) => `${x.actor}:${x.mode}`).sort().join(','));
  const qs = m.queues.map((q) => q.map((x) => `${x.actor}:${x.mode}:${x.ww ? 'ww' : 'slow'}`).join(','));
  // Passes over the current head of each queue (a count over an earlier head no longer matters).
  const cs = m.cohorts.map((c, i) => (c.head !== undefined && c.head === (m.queues[i] as Waiter[])[0]?.req ? c.passes : 0));
  return JSON.stringify([hs, qs, [...m.wounded].sort(), [...m.lastKey].map(([a, k]) => `${a}>${k}`).sort(), cs]);
}

describe.each([
  ['wound-wait', 0, 'one participant'],
  ['wait-die', 0, 'one participant'],
  ['wound-wait', 2, 'one participant'],
  ['wait-die', 2, 'one participant'],
  ['wound-wait', 0, 'two participants'],
  ['wait-die', 0, 'two participants'],
  ['wound-wait', 2, 'two participants'],
  ['wait-die', 2, 'two participants'],
] as const)('enumeration: %s, %d of 3 contexts ordered, %s', (kind, ordered, who) => {
  test(`every state up to depth ${ENUM_DEPTH}: verdicts match the model; forEachReady kicks exactly the waiters whose poll acts`, () => {
    const t = store.t;
    // The participant of e0, e1, e2 and l0. With two, a release can pass a mutex to its own participant's
    // waiter over the other's head (cohort hand-off): e0 and e2 (A) around e1 (B) in stamp order, l0 (B) at the tail.
    const parts = who === 'two participants' ? [0, 1, 0, 1] : [0, 0, 0, 0];
    const storeOf = (i: number): TableLockStore => (parts[i] === 0 ? store : storeB);
    const u8 = new Uint8Array(t.buffer);
    const kindId = kind === 'wait-die' ? KIND_WAIT_DIE : KIND_WOUND_WAIT;
    const mutexes = [store.openMutex(undefined, kindId), store.openMutex(undefined, kindId)];
    const keys = mutexes.map((m) => store.mutexKey(m));
    const ctxs = Array.from({ length: ENUM_CTX }, (_, i) => storeOf(i).openContext(kindId, `e${i}`, 0, i >= ENUM_CTX - ordered));
    const names = ctxs.map((_, i) => `e${i}`);
    const holdOfCtx = (i: number, write: boolean): Hold => ({
      actor: names[i] as string,
      stamp: store.ctxStamp(ctxs[i] as number),
      mode: write ? 'write' : 'read',
      ordered: i >= ENUM_CTX - ordered,
      part: parts[i] as number,
    });
    const start = u8.slice();
    const visited = new Map<string, number>();
    let steps = 0;
    let kickChecks = 0;
    let handed = 0;
    let passes = 0;

    const fail = (path: string[], what: string, got: unknown, want: unknown): void => {
      expect({ path, what, got }).toEqual({ path, what, got: want });
    };

    /** The waiters of mutex slot m in queue order. */
    const waitersOf = (m: number): number[] => {
      const out: number[] = [];
      for (let r = firstWaiter(t, t.mutexOff(m)); r >= 0; r = recNext(t, r)) out.push(r);
      return out;
    };
    const woundedFlags = (): number[] => ctxs.map((c) => store.ctxFlags(c) & CF_WOUNDED);

    /** Polls request q as its thread would after a kick; updates its outcome. Returns poll's code. */
    const pollReq = (q: EnumReq, out: Map<number, Outcome>): number => {
      const code = q.st.poll(q.w, mutexes[q.key] as number, q.c, q.write, q.ww ? F_WW : 0);
      if (code === GRANTED) out.set(q.id, 'granted');
      else if (code === EDEADLK) out.set(q.id, 'EDEADLK');
      else if (code !== WAITING) out.set(q.id, `code ${code}` as Outcome);
      return code;
    };

    /**
     * Right after a step: for every waiter, whether forEachReady kicks it, and whether its poll would act
     * (anything but WAITING, or a wound), each from this same state. A waiter that the step itself kicked
     * (a wound kicks the wounded context where it waits: forEachReady may stop before it) counts as kicked;
     * the step must not kick one that has nothing to do.
     */
    const checkKicks = (n: EnumNode, out: Map<number, Outcome>, path: string[]): void => {
      const here = u8.slice();
      mutexes.forEach((m) => {
        const kicked = new Set<number>();
        forEachReady(t, t.mutexOff(m), (r) => kicked.add(r));
        for (const w of waitersOf(m)) {
          if (((t.i32[t.recOff(w) + R_FLAGS] as number) & RF_KICK) !== 0) kicked.add(w);
          const q = n.reqs.find((x) => x.w === w && out.get(x.id) === 'pending') as EnumReq;
          const before = woundedFlags().join();
          const code = pollReq(q, new Map());
          const acts = code !== WAITING || woundedFlags().join() !== before;
          u8.set(here);
          kickChecks++;
          if (kicked.has(w) !== acts && !(kicked.has(w) && !q.ww)) {
            fail(path, `waiter ${q.actor} k${q.key}: kicked by forEachReady vs poll acts`, kicked.has(w), acts);
          }
        }
      });
    };

    /** Polls every kicked waiter (mutex by mutex, queue order) until none is kicked. */
    const settle = (n: EnumNode, out: Map<number, Outcome>): void => {
      for (let round = 0, again = true; again; round++) {
        if (round > 100) fail([], 'settle rounds', round, '<= 100');
        again = false;
        for (const m of mutexes) {
          for (const w of waitersOf(m)) {
            if (((t.i32[t.recOff(w) + R_FLAGS] as number) & RF_KICK) === 0) continue;
            const q = n.reqs.find((x) => x.w === w && out.get(x.id) === 'pending') as EnumReq;
            if (pollReq(q, out) === GRANTED && q.c < 0) n.ctxlessHold[q.key] = q.st.lastRecord;
            again = true;
          }
        }
        // Requests a release passed the lock to (cohort hand-off): their record is a hold of their own
        // participant, kicked (else their thread never learns it), and their poll grants.
        for (const q of n.reqs) {
          if (out.get(q.id) !== 'pending' || !recHold(t, q.w)) continue;
          const kicked = ((t.i32[t.recOff(q.w) + R_FLAGS] as number) & RF_KICK) !== 0;
          if (!kicked || recPart(t, q.w) !== q.st.t.self) fail([], `handed hold of ${q.actor} k${q.key}: kicked, own participant`, [kicked, recPart(t, q.w)], [true, q.st.t.self]);
          if (pollReq(q, out) !== GRANTED) fail([], `handed hold of ${q.actor} k${q.key}: poll`, out.get(q.id), 'granted');
          if (q.c < 0) n.ctxlessHold[q.key] = q.st.lastRecord;
          handed++;
          again = true;
        }
      }
    };

    /** Compares the real table with the model. */
    const compare = (n: EnumNode, out: Map<number, Outcome>, path: string[]): void => {
      const actorOf = (c: number): string => (c < 0 ? 'l0' : (names[ctxs.indexOf(c)] as string));
      const snap = store.query();
      const real = mutexes.map((_m, key) => {
        const lock = snap.locks.find((l) => l.key === keys[key]);
        return {
          holders: (lock?.holders ?? []).map((h) => `${h.ctxName === '' ? 'l0' : h.ctxName}:${h.mode}`).sort(),
          waiters: (lock?.waiters ?? []).map((h) => `${h.ctxName === '' ? 'l0' : h.ctxName}:${h.mode}`),
        };
      });
      const model = n.model.holders.map((hs, key) => ({
        holders: hs.map((h) => `${h.actor}:${h.mode}`).sort(),
        waiters: (n.model.queues[key] as Waiter[]).map((w) => `${w.actor}:${w.mode}`),
      }));
      if (JSON.stringify(real) !== JSON.stringify(model)) fail(path, 'holders and queues', real, model);
      const ctxReal = ctxs.map((c) => `${actorOf(c)} acquired ${store.ctxAcquired(c)} wounded ${(store.ctxFlags(c) & CF_WOUNDED) !== 0}`);
      const ctxModel = names.map((a) => `${a} acquired ${n.model.acquired(a)} wounded ${n.model.wounded.has(a)}`);
      if (JSON.stringify(ctxReal) !== JSON.stringify(ctxModel)) fail(path, 'contexts', ctxReal, ctxModel);
      const outReal = n.reqs.map((q) => `#${q.id} ${out.get(q.id)}`);
      const outModel = n.reqs.map((q) => `#${q.id} ${n.model.outcomes.get(q.id)}`);
      if (JSON.stringify(outReal) !== JSON.stringify(outModel)) fail(path, 'outcomes', outReal, outModel);
    };

    type Step = { name: string; run: (n: EnumNode, out: Map<number, Outcome>) => void };

    /** The steps possible from state n. */
    const stepsFrom = (n: EnumNode): Step[] => {
      const list: Step[] = [];
      const pendingOf = (actor: string): EnumReq | undefined => n.reqs.find((q) => q.actor === actor && n.model.outcomes.get(q.id) === 'pending');
      const request = (actor: string, c: number, key: number, write: boolean, how: 'lock' | 'slow' | 'try'): Step => ({
        name: `${how}(${actor}, k${key}, ${write ? 'write' : 'read'})`,
        run: (x, out) => {
          const i = c < 0 ? ENUM_CTX : names.indexOf(actor);
          const st = storeOf(i);
          const hold: Hold = c < 0 ? { actor, stamp: null, mode: write ? 'write' : 'read', part: parts[i] as number } : holdOfCtx(i, write);
          const code = st.acquire(mutexes[key] as number, c, write, how === 'lock' ? F_WW : how === 'try' ? F_TRY : 0);
          if (how === 'try') {
            const want = x.model.holds(actor, key) ? EALREADY : x.model.tryLock(hold, key) ? GRANTED : WOULD_BLOCK;
            if (code !== want) fail([], `${actor} tryLock k${key}`, code, want);
            return;
          }
          const q: EnumReq = { id: x.reqs.length, actor, c, key, write, ww: how === 'lock', w: code === WAITING ? st.lastRecord : -1, st };
          x.reqs.push(q);
          if (x.model.holds(actor, key)) {
            x.model.outcomes.set(q.id, 'EALREADY');
            out.set(q.id, code === EALREADY ? 'EALREADY' : (`code ${code}` as Outcome));
            return;
          }
          x.model.request(q.id, hold, key, c >= 0 && how === 'lock', false);
          out.set(q.id, code === GRANTED ? 'granted' : code === EDEADLK ? 'EDEADLK' : code === WAITING ? 'pending' : (`code ${code}` as Outcome));
          if (code === GRANTED && c < 0) x.ctxlessHold[key] = st.lastRecord;
        },
      });
      names.forEach((actor, i) => {
        const c = ctxs[i] as number;
        const p = pendingOf(actor);
        if (p !== undefined) {
          list.push({
            name: `abort(${actor})`,
            run: (x, out) => {
              p.st.cancel(p.w, mutexes[p.key] as number, c);
              out.set(p.id, 'ABORT_ERR');
              x.model.abort(p.id);
            },
          });
          return;
        }
        for (let key = 0; key < mutexes.length; key++) {
          if (n.model.holds(actor, key)) {
            list.push({
              name: `unlock(${actor}, k${key})`,
              run: (x) => {
                const code = storeOf(i).release(mutexes[key] as number, c, -1);
                if (code !== GRANTED) fail([], `${actor} unlock k${key}`, code, GRANTED);
                x.model.unlock(actor, key);
              },
            });
          }
          for (const write of [false, true]) {
            if (n.model.outOfOrder(holdOfCtx(i, write), key)) continue;
            list.push(request(actor, c, key, write, 'lock'));
            if (n.model.acquired(actor) === 0) list.push(request(actor, c, key, write, 'slow'));
            list.push(request(actor, c, key, write, 'try'));
          }
        }
      });
      const p = pendingOf('l0');
      if (p !== undefined) {
        list.push({
          name: 'abort(l0)',
          run: (x, out) => {
            p.st.cancel(p.w, mutexes[p.key] as number, -1);
            out.set(p.id, 'ABORT_ERR');
            x.model.abort(p.id);
          },
        });
      } else {
        for (let key = 0; key < mutexes.length; key++) {
          if (n.model.holds('l0', key)) {
            list.push({
              name: `unlock(l0, k${key})`,
              run: (x) => {
                const code = storeOf(ENUM_CTX).release(mutexes[key] as number, -1, x.ctxlessHold[key] as number);
                if (code !== GRANTED) fail([], `l0 unlock k${key}`, code, GRANTED);
                x.model.unlock('l0', key);
              },
            });
          } else if (n.model.acquired('l0') === 0) {
            for (const write of [false, true]) list.push(request('l0', -1, key, write, 'lock'));
          }
        }
      }
      return list;
    };

    const explore = (n: EnumNode, depth: number, path: string[]): void => {
      if (depth === 0) return;
      for (const st of stepsFrom(n)) {
        u8.set(n.words);
        const x: EnumNode = { model: cloneModel(n.model), reqs: n.reqs.map((q) => ({ ...q })), ctxlessHold: [...n.ctxlessHold], words: n.words };
        const out = new Map<number, Outcome>();
        for (const q of x.reqs) out.set(q.id, n.model.outcomes.get(q.id) as Outcome);
        const here = [...path, st.name];
        st.run(x, out);
        steps++;
        passes += x.model.cohortPasses - n.model.cohortPasses;
        checkKicks(x, out, here);
        settle(x, out);
        compare(x, out, here);
        const key = stateKey(x.model);
        if ((visited.get(key) ?? -1) >= depth - 1) continue;
        visited.set(key, depth - 1);
        x.words = u8.slice();
        explore(x, depth - 1, here);
      }
    };

    try {
      explore({ model: new LockModel(kind, keys), reqs: [], ctxlessHold: [-1, -1], words: start }, ENUM_DEPTH, []);
    } finally {
      u8.set(start);
      ctxs.forEach((c, i) => storeOf(i).closeContext(c));
      for (const m of mutexes) store.closeMutex(m);
    }
    if (process.env.ENUM_LOG) process.stderr.write(`enumeration ${kind} ${ordered} ${who}: depth ${ENUM_DEPTH}, ${visited.size} states, ${steps} steps, ${kickChecks} kick checks, ${handed} hand-offs, ${passes} of them cohort passes\n`);
    // Enough was explored to mean something (and the counts show in a failure's context).
    // Releases hand off to their own participant's head; two participants meet in cohort passes, one never
    // passes over its own queue.
    expect({ states: visited.size > 200, kickChecks: kickChecks > 100, handed: handed > 100, passes: passes > 0 }).toEqual({
      states: true,
      kickChecks: true,
      handed: true,
      passes: who === 'two participants',
    });
    expect(steps).toBeGreaterThan(0);
    expect(checkTable(store.t)).toEqual([]);
  });
});
