/**
 * WwMutex: a wound/wait mutex (kernel ww_mutex) with shared (read) holders, whose state is shared by every
 * worker_thread of the process. See docs/design.md, "Lock core".
 */
import { AcquireContext, contextState, forcedError, lockError } from './acquire-context';
import { DmabufError, abortError, argRangeError, argTypeError, checkSignal, optionsOf, timeoutError } from '../errors';
import { acquiredChannel, backoffChannel, contendedChannel, ownerDiedChannel } from './lock-channels';
import {
  EALREADY,
  EDEADLK,
  FORCED,
  F_TRY,
  F_WW,
  GRANTED,
  WAITING,
  lockStore,
  monoNow,
  type LockSnapshot,
  type LockStore,
} from './lock-store';
import { WwClass } from './ww-class';
import { forceContext, noticeForced, waiterBlocked, watchHold } from './ww-watchdog';
import { HANDED, WOKEN, wakeOnAbort } from './waking';

export { setForceHook, type ForceHook } from './ww-watchdog';
export type { LockSnapshot, LockHolderInfo, LockWaiterInfo } from './lock-store';
export {
  CHANNEL_ACQUIRED,
  CHANNEL_BACKOFF,
  CHANNEL_CONTENDED,
  CHANNEL_FORCED_UNLOCK,
  CHANNEL_OWNER_DIED,
} from './lock-channels';

// Keys granted to a context whose previous write holder had died (see takeOwnerDied).
const ownerDiedKeys = new WeakMap<AcquireContext, bigint[]>();

/**
 * The keys of the mutexes granted to `ctx` (since the last call) whose previous write holder died holding
 * them: the data may be half written. Clears the list.
 */
export function takeOwnerDied(ctx: AcquireContext): bigint[] {
  const keys = ownerDiedKeys.get(ctx);
  if (keys === undefined) return [];
  ownerDiedKeys.delete(ctx);
  return keys;
}

/** 'read': shared with other readers; 'write': exclusive. */
export type LockMode = 'read' | 'write';

/** Options of lock() / lockSlow(). */
export interface LockOptions {
  /** Aborting rejects the pending lock() with an AbortError; nothing is left held or queued. */
  signal?: AbortSignal;
  /**
   * Absolute time (Date.now() ms) after which a pending lock() rejects with ETIMEDOUT. It is turned into
   * monotonic time when the wait starts, so a later wall-clock jump neither ends nor stretches the wait.
   */
  deadline?: number;
}

/**
 * Longest single sleep of a waiter: a safety net (real wake-ups come from the futex doorbells), and the
 * period at which a waiter checks that those it waits for are alive.
 */
const MAX_SLEEP_MS = 250;
/** How often a waiter asks again for an expired holder of another process to be revoked and forced. */
const REVOKE_POLL_MS = 10;
const RESOLVED: Promise<void> = Promise.resolve();

// WwMutex objects dropped without dispose() give their table reference back.
const finalizer = new FinalizationRegistry<{ store: LockStore; slot: number }>(({ store, slot }) => {
  store.closeMutex(slot);
});

function checkMode(mode: LockMode): boolean {
  if (mode === 'write') return true;
  if (mode === 'read') return false;
  throw argTypeError('mode', "'read' or 'write'", mode);
}

/** A Date.now() deadline (or none) as a monotonic one (monoNow() time), read once at the start of a wait. */
function monoDeadline(deadline: number | undefined): number {
  return deadline === undefined || deadline === Infinity ? Infinity : monoNow() + (deadline - Date.now());
}

/** Validates lock()/lockSlow() options; returns them as an object. */
function checkLockOptions(options: LockOptions | undefined): Partial<LockOptions> {
  const o = optionsOf(options);
  checkSignal(o.signal);
  if (o.deadline !== undefined && (typeof o.deadline !== 'number' || Number.isNaN(o.deadline))) {
    throw argTypeError('options.deadline', 'a Date.now() time in ms', o.deadline);
  }
  return o;
}

/** Keys are stored as 64-bit integers: an inode (unsigned) or a signed key. */
const MIN_KEY = -(2n ** 63n);
const MAX_KEY = 2n ** 64n - 1n;

function edeadlk(): DmabufError {
  // EDEADLK is the ww protocol's control flow, thrown often under contention: capturing a stack for it cost
  // as much as the rest of a back-off, and says nothing the code does not (the caller backs off and retries).
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new DmabufError(
      'EDEADLK',
      'lock conflict with an older context: release every lock this context holds, lockSlow() the contended ' +
        'mutex, then retry the rest (keep the same context so it ages)',
    );
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function ealready(): DmabufError {
  return new DmabufError('EALREADY', 'this acquire context already holds this mutex: do not lock it twice');
}

function finied(ctx: AcquireContext): DmabufError {
  return new DmabufError('EBADF', `acquire context "${ctx.name}" was fini()ed: it holds nothing and cannot be used`);
}

function eperm(what: string): DmabufError {
  return new DmabufError('EPERM', `unlock() of a mutex ${what} does not hold: unlock only what you locked, once`);
}

/**
 * A ww mutex identified process-wide by a bigint key. Several WwMutex objects with the same key (in any
 * worker_thread) are the same lock.
 */
export class WwMutex {
  /** The class (algorithm) of this mutex. */
  readonly class: WwClass;
  /** The process-wide key (negative for keys allocated by the library). */
  readonly key: bigint;
  private readonly store: LockStore;
  private slot: number;
  /** Ctx-less holds taken through this object, most recent last (unlock() without ctx pops). */
  private readonly ctxless: number[] = [];
  /** Ctx-less lock() calls through this object still waiting: once granted, their holds are this object's. */
  private ctxlessWaits = 0;
  private readonly token = {};

  /**
   * @param cls the ww class; every WwMutex of one key must use the same class kind.
   * @param key identifies the lock process-wide (dmabuf-sync uses the dma-buf's inode); omitted: a fresh
   *   unique key.
   */
  constructor(cls: WwClass, key?: bigint) {
    if (!(cls instanceof WwClass)) throw argTypeError('cls', 'a WwClass', cls);
    if (key !== undefined && typeof key !== 'bigint') throw argTypeError('key', 'a bigint', key);
    if (key !== undefined && (key < MIN_KEY || key > MAX_KEY)) throw argRangeError('key', 'a 64-bit integer', key);
    this.class = cls;
    this.store = lockStore(cls.domain, cls.group);
    this.slot = this.store.openMutex(key, cls.kindId);
    this.key = this.store.mutexKey(this.slot);
    finalizer.register(this, { store: this.store, slot: this.slot }, this.token);
  }

  /**
   * Locks (kernel ww_mutex_lock). With a context: rejects EDEADLK when the context must back off
   * (wait-die: it holds locks and would wait for an older context; wound-wait: it was wounded by an older
   * one), EALREADY if it already holds this mutex, EPERM after ctx.done(), ETIMEDOUT if it was forced off by
   * the watchdog. Without a context (null): a plain mutex, no deadlock avoidance.
   * A passed `deadline` rejects ETIMEDOUT, an aborted `signal` with an AbortError; neither leaves anything held
   * or queued.
   */
  lock(ctx: AcquireContext | null = null, mode: LockMode = 'write', options?: LockOptions): Promise<void> {
    return this.acquire(ctx, mode, options, F_WW);
  }

  /**
   * Locks after an EDEADLK back-off (kernel ww_mutex_lock_slow): waits for the contended mutex and never
   * rejects EDEADLK. The context must hold nothing (else EINVAL).
   */
  lockSlow(ctx: AcquireContext, mode: LockMode = 'write', options?: LockOptions): Promise<void> {
    if (!(ctx instanceof AcquireContext)) {
      return Promise.reject(argTypeError('ctx', 'the AcquireContext that got EDEADLK', ctx));
    }
    if (contextState(ctx).slot >= 0 && ctx.acquired > 0) {
      return Promise.reject(
        new DmabufError(
          'EINVAL',
          `lockSlow() with a context that holds ${ctx.acquired} lock(s): after EDEADLK unlock everything first`,
        ),
      );
    }
    return this.acquire(ctx, mode, options, 0);
  }

  private acquire(ctx: AcquireContext | null, mode: LockMode, options: LockOptions | undefined, flags: number): Promise<void> {
    let write: boolean;
    let c = -1;
    try {
      write = checkMode(mode);
      options = checkLockOptions(options);
      this.checkUsable();
      if (ctx !== null) {
        const err = this.checkCtx(ctx);
        if (err !== undefined) return Promise.reject(err);
        c = contextState(ctx).slot;
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const code = this.store.acquire(this.slot, c, write, flags);
    if (code === GRANTED) {
      this.granted(ctx, write, 0);
      return RESOLVED;
    }
    if (code === WAITING) return this.waitLoop(ctx, c, write, flags, this.store.lastRecord, options);
    return Promise.reject(this.failure(code, ctx, write));
  }

  /** Throws (returns) the error for an acquire/poll result code. */
  private failure(code: number, ctx: AcquireContext | null, write: boolean): Error {
    if (code === EDEADLK) {
      if (backoffChannel.hasSubscribers) {
        backoffChannel.publish({
          key: this.key,
          ctxName: ctx?.name,
          stamp: ctx?.stamp,
          mode: write ? 'write' : 'read',
          reason: this.class.kind === 'wait-die' ? 'die' : 'wounded',
        });
      }
      return edeadlk();
    }
    if (code === EALREADY) return ealready();
    if (code === FORCED && ctx !== null) {
      noticeForced(ctx);
      return forcedError(ctx);
    }
    return new DmabufError('EIO', `unexpected lock table result ${code}`);
  }

  private granted(ctx: AcquireContext | null, write: boolean, waitedMs: number): void {
    if (this.store.ownerDied) {
      if (ctx !== null) {
        const keys = ownerDiedKeys.get(ctx);
        if (keys === undefined) ownerDiedKeys.set(ctx, [this.key]);
        else keys.push(this.key);
      }
      if (ownerDiedChannel.hasSubscribers) {
        ownerDiedChannel.publish({ key: this.key, ctxName: ctx?.name, stamp: ctx?.stamp, mode: write ? 'write' : 'read' });
      }
    }
    if (ctx === null) this.ctxless.push(this.store.lastRecord);
    else {
      // Ascending order is checked before a lock, so this is the highest key since it last held nothing.
      if (ctx.ordered) contextState(ctx).lastKey = this.key;
      // The hold's own deadline (one clock read per grant, not two).
      if (ctx.maxHoldMs > 0) watchHold(ctx, this.store.holdDeadline(this.store.lastRecord));
    }
    if (acquiredChannel.hasSubscribers) {
      acquiredChannel.publish({ key: this.key, ctxName: ctx?.name, stamp: ctx?.stamp, mode: write ? 'write' : 'read', waitedMs });
    }
  }

  private async waitLoop(
    ctx: AcquireContext | null,
    c: number,
    write: boolean,
    flags: number,
    w: number,
    options: LockOptions | undefined,
  ): Promise<void> {
    const store = this.store;
    const m = this.slot;
    const signal = options?.signal;
    // The caller's deadline is wall-clock time; it is turned into monotonic time once, so a wall-clock jump
    // (a board without an RTC setting its clock) neither ends the wait early nor stretches it.
    const end = monoDeadline(options?.deadline);
    // The wait's start, for the acquired channel's waitedMs: the time the request was queued (no clock read).
    const started = store.now;
    if (contendedChannel.hasSubscribers) {
      contendedChannel.publish({ key: this.key, ctxName: ctx?.name, stamp: ctx?.stamp, mode: write ? 'write' : 'read' });
    }
    // An abort must not wait for the next timeout: it wakes this thread's sleepers, and this one re-checks.
    if (signal !== undefined) wakeOnAbort(signal);
    if (ctx !== null) contextState(ctx).busy = true;
    else this.ctxlessWaits++;
    waiterBlocked(1);
    store.noteWait(m, 1);
    try {
      for (;;) {
        // How the wait ended: WOKEN (re-check), or HANDED (_OWNER_DIED): a release made w our hold (ww-rules.ts handOff).
        let how = WOKEN;
        // store.waitUntil/victim were set by the acquire()/poll() that returned WAITING.
        const victim = store.victim;
        if (victim >= 0 && forceContext(store, victim, monoNow())) {
          // Forced: re-check at once.
        } else if (victim >= 0) {
          // The expired holder is in another process whose revoker has not acknowledged yet (or is stopped):
          // ask again shortly; the caller's deadline still ends the wait.
          const p = store.wait(w, Math.max(1, Math.min(REVOKE_POLL_MS, end - monoNow())), undefined, m, c);
          if (p !== undefined) how = await p;
        } else {
          // Clock reads are a good part of a hand-off: the nap is measured from the time the acquire/poll that
          // returned WAITING read (store.now), not from a fresh read.
          const now = store.now;
          const t = Math.max(1, Math.min(MAX_SLEEP_MS, store.waitUntil - now, end - now));
          const p = store.wait(w, t, now, m, c);
          if (p !== undefined) how = await p;
        }
        if (signal?.aborted) {
          store.cancel(w, m, c);
          throw abortError(signal);
        }
        if (end !== Infinity && monoNow() >= end) {
          store.cancel(w, m, c);
          throw timeoutError(`lock ${this.key}`);
        }
        // Handed the lock: granted, unless the watchdog forced the context since (its poll says FORCED).
        if (how !== WOKEN && (ctx === null || !ctx.forced)) {
          store.ownerDied = how !== HANDED;
          store.lastRecord = w;
          this.granted(ctx, write, acquiredChannel.hasSubscribers ? monoNow() - started : 0);
          return;
        }
        const code = store.poll(w, m, c, write, flags);
        if (code === GRANTED) {
          this.granted(ctx, write, acquiredChannel.hasSubscribers ? monoNow() - started : 0);
          return;
        }
        if (code !== WAITING) throw this.failure(code, ctx, write);
      }
    } finally {
      store.noteWait(m, -1);
      waiterBlocked(-1);
      if (ctx !== null) contextState(ctx).busy = false;
      else this.ctxlessWaits--;
    }
  }

  /**
   * Takes the lock only if it is available now (kernel ww_mutex_trylock); never waits, never wounds.
   * Returns false if it is held in a conflicting mode, queued for, or already held by `ctx`.
   */
  tryLock(mode: LockMode = 'write', ctx?: AcquireContext | null): boolean {
    const write = checkMode(mode);
    if (ctx != null && !(ctx instanceof AcquireContext)) throw argTypeError('ctx', 'an AcquireContext or null', ctx);
    this.checkUsable();
    let c = -1;
    if (ctx != null) {
      const err = this.checkCtx(ctx);
      if (err !== undefined) throw err;
      c = contextState(ctx).slot;
    }
    const code = this.store.acquire(this.slot, c, write, F_TRY);
    if (code === GRANTED) {
      this.granted(ctx ?? null, write, 0);
      return true;
    }
    if (code === FORCED) throw this.failure(code, ctx ?? null, write);
    return false;
  }

  /**
   * Resolves once no holder conflicts with a `mode` request (for 'write': no holder at all; for 'read': no
   * writer), in any thread or process, without taking the lock (the 2013 proposal's poll() on a dma-buf).
   * Someone else may take it right after: use it to learn that a buffer was released, not to own it.
   * `deadline` and `signal` as for lock(); nothing is left queued when it rejects.
   */
  async waitUnlocked(mode: LockMode = 'write', options?: LockOptions): Promise<void> {
    const write = checkMode(mode);
    options = checkLockOptions(options);
    this.checkUsable();
    const signal = options?.signal;
    const end = monoDeadline(options?.deadline);
    if (signal?.aborted) throw abortError(signal);
    const store = this.store;
    const m = this.slot;
    if (store.watch(m, write, -1) === GRANTED) return;
    const w = store.lastRecord;
    if (signal !== undefined) wakeOnAbort(signal);
    waiterBlocked(1);
    try {
      for (;;) {
        const p = store.wait(w, Math.max(1, Math.min(MAX_SLEEP_MS, end - monoNow())));
        if (p !== undefined) await p;
        if (signal?.aborted || monoNow() >= end) {
          store.cancel(w, m, -1);
          throw signal?.aborted ? abortError(signal) : timeoutError(`waitUnlocked ${this.key}`);
        }
        if (store.watch(m, write, w) === GRANTED) return;
      }
    } finally {
      waiterBlocked(-1);
    }
  }

  /**
   * Releases `ctx`'s hold, or without ctx the most recent ctx-less hold taken through this object.
   * Throws EPERM if there is no such hold, and ETIMEDOUT if the watchdog already forced the context off.
   */
  unlock(ctx?: AcquireContext | null): void {
    if (ctx != null && !(ctx instanceof AcquireContext)) throw argTypeError('ctx', 'an AcquireContext or null', ctx);
    this.checkUsable();
    if (ctx != null) {
      if (contextState(ctx).slot < 0) throw finied(ctx);
      const code = this.store.release(this.slot, contextState(ctx).slot, -1);
      if (code === GRANTED) return;
      if (code === FORCED) {
        noticeForced(ctx);
        throw forcedError(ctx);
      }
      throw eperm(`context "${ctx.name}"`);
    }
    const r = this.ctxless.pop();
    if (r === undefined || this.store.release(this.slot, -1, r) !== GRANTED) {
      throw eperm('this WwMutex object (without a context)');
    }
  }

  /**
   * @internal Releases `ctx`'s hold on this mutex if it has one, and says whether it did; no error when it has
   * none (the cleanup of a lock that failed half way, or of a context the watchdog forced off). One pass
   * through the table where isHeldBy() then unlock() make two.
   */
  unlockIfHeld(ctx: AcquireContext): boolean {
    if (!(ctx instanceof AcquireContext)) throw argTypeError('ctx', 'an AcquireContext', ctx);
    this.checkUsable();
    const c = contextState(ctx).slot;
    // Not held by anybody (read without the lock): nothing to release, and no release to ring ahead for.
    if (c < 0 || !this.store.isLocked(this.slot)) return false;
    return this.store.release(this.slot, c, -1) === GRANTED;
  }

  /**
   * Sets the opaque tag of `ctx`'s hold on this mutex; the force hook receives it if the hold is forced off.
   * Throws EPERM if `ctx` does not hold this mutex.
   */
  setHoldTag(ctx: AcquireContext, tag: bigint): void {
    if (!(ctx instanceof AcquireContext)) throw argTypeError('ctx', 'an AcquireContext', ctx);
    if (typeof tag !== 'bigint') throw argTypeError('tag', 'a bigint', tag);
    if (tag < 0n || tag >= 2n ** 64n) throw argRangeError('tag', 'an unsigned 64-bit integer', tag);
    this.checkUsable();
    if (contextState(ctx).slot < 0) throw finied(ctx);
    if (!this.store.setHoldTag(this.slot, contextState(ctx).slot, tag)) throw eperm(`context "${ctx.name}"`);
  }

  /**
   * @internal For a CPU view about to be handed out under `ctx`'s hold on this mutex, in one pass through the
   * table: sets the hold's tag to `tag` (as setHoldTag: what the force hook gets) and returns the revocation
   * token of ctx's views (a mapping made with it becomes scratch memory when ctx is forced off, from any
   * process). 0n, tagging nothing, if ctx was already forced off (or fini()ed); EPERM if ctx does not hold
   * this mutex.
   */
  tagHoldForView(ctx: AcquireContext, tag: bigint): bigint {
    this.checkUsable();
    const c = contextState(ctx).slot;
    if (c < 0) return 0n;
    const token = this.store.tagHoldForView(this.slot, c, tag);
    if (token < 0n) throw eperm(`context "${ctx.name}"`);
    return token;
  }

  /** True if `ctx` holds this mutex (any mode). */
  isHeldBy(ctx: AcquireContext): boolean {
    if (!(ctx instanceof AcquireContext)) throw argTypeError('ctx', 'an AcquireContext', ctx);
    return this.slot >= 0 && contextState(ctx).slot >= 0 && this.store.holds(this.slot, contextState(ctx).slot);
  }

  /** True if anybody (any thread, any mode) holds the lock. */
  isLocked(): boolean {
    return this.slot >= 0 && this.store.isLocked(this.slot);
  }

  /**
   * Drops this object's reference to the shared table slot (the slot is freed when no object references it
   * and nobody holds it). Throws EBUSY if ctx-less holds taken through this object are still held, or a ctx-less
   * lock() through it is still pending (granted after dispose(), nothing could unlock it).
   * Idempotent; the object cannot be used afterwards.
   */
  dispose(): void {
    if (this.slot < 0) return;
    if (this.ctxless.length > 0) {
      throw new DmabufError('EBUSY', `WwMutex ${this.key} still holds ${this.ctxless.length} ctx-less lock(s): unlock() them first`);
    }
    if (this.ctxlessWaits > 0) {
      throw new DmabufError(
        'EBUSY',
        `WwMutex ${this.key} has ${this.ctxlessWaits} ctx-less lock() pending: let it settle (or abort it) and unlock() first`,
      );
    }
    finalizer.unregister(this.token);
    this.store.closeMutex(this.slot);
    this.slot = -1;
  }

  /** Same as dispose(). */
  [Symbol.dispose](): void {
    this.dispose();
  }

  private checkUsable(): void {
    if (this.slot < 0) throw new DmabufError('EBADF', `WwMutex ${this.key} was disposed: create a new one`);
  }

  private checkCtx(ctx: AcquireContext): Error | undefined {
    if (!(ctx instanceof AcquireContext)) return argTypeError('ctx', 'an AcquireContext or null', ctx);
    if (ctx.class.kind !== this.class.kind) {
      return new DmabufError('EINVAL', `context of a '${ctx.class.kind}' class used on a '${this.class.kind}' mutex: use one class`);
    }
    const err = lockError(ctx);
    if (err !== undefined || !ctx.ordered) return err;
    const last = contextState(ctx).lastKey;
    if (last !== undefined && this.key <= last && ctx.acquired > 0) {
      return new DmabufError(
        'EINVAL',
        `acquire context "${ctx.name}" is ordered: it must lock keys in ascending order, and key ${this.key} is not ` +
          `above key ${last}, which it took already; sort the mutexes by key, or unlock all before starting over`,
      );
    }
    return undefined;
  }
}

/**
 * Forces context `ctxId` (AcquireContext.id, any thread) off all its locks if one of its holds is past its
 * deadline now; runs the force hook here. Waiters do this by themselves; this is for a supervisor that
 * watches queryLocks(). Returns true if this call forced it.
 */
export function forceRelease(ctxId: number): boolean {
  if (typeof ctxId !== 'number') throw argTypeError('ctxId', 'an AcquireContext id (a number)', ctxId);
  if (!Number.isInteger(ctxId) || ctxId < 0) throw argRangeError('ctxId', 'an AcquireContext id (an integer >= 0)', ctxId);
  return forceContext(lockStore(), ctxId, monoNow());
}

/**
 * Snapshot of every mutex with a holder or a waiter, in every thread of every process of the lock domain
 * (a domain name, or a class for its domain and group; default: the default domain).
 */
export function queryLocks(domain?: string | WwClass): LockSnapshot {
  return domain instanceof WwClass ? lockStore(domain.domain, domain.group).query() : lockStore(domain).query();
}
