/**
 * An acquire context (kernel `struct ww_acquire_ctx`): one task's transaction over several ww mutexes.
 * Its identity (stamp, flags, acquired count, name) lives in the shared table so that other threads can
 * order against it, wound it, or force it off when it holds a lock past its maxHoldMs.
 */
import { argRangeError, argTypeError, checkName, DmabufError, optionsOf } from '../errors';
import { lockStore, type LockStore } from './lock-store';
import { CF_FORCED, CF_WOUNDED } from './layout';
import { WwClass } from './ww-class';
import { setImmediate } from 'node:timers';
import { noticeForced, unwatch } from './ww-watchdog';

/** Options of WwClass.acquireContext. */
export interface AcquireContextOptions {
  /** Label shown by queryLocks() and diagnostics (up to 48 UTF-8 bytes are stored). */
  name?: string;
  /**
   * Longest time one hold may last, in ms. Past it the watchdog may force the context off ALL its locks
   * (see setForceHook / onForced). 0 or Infinity (default): no limit.
   */
  maxHoldMs?: number;
  /**
   * A promise to lock in ascending key order (each lock() or tryLock() of a key above every key it took
   * since it last held nothing; out of order is EINVAL). Two ordered contexts never wound or kill each other:
   * they cannot form a cycle, so they wait instead of backing off. In mixed use an ordered context is younger
   * than every unordered one (its `stamp` is offset by 2^52) and backs off for them. DmabufSync uses it.
   */
  ordered?: boolean;
}

/** Called in the holder's own thread once the context has been forced off its locks. */
export type ForcedCallback = (ctx: AcquireContext) => void;

// Contexts dropped without fini() give their slot back if they hold nothing (else the slot stays reserved).
const finalizer = new FinalizationRegistry<{ store: LockStore; slot: number }>(({ store, slot }) => {
  store.closeContext(slot);
});

/**
 * What the lock core's own files (ww-mutex, ww-watchdog) read and write of a context. Reached only through
 * contextState(), which is not exported by the package: nothing of it is in the public API or its .d.ts.
 * @internal
 */
export interface ContextState {
  readonly store: LockStore;
  /** Context slot in the table (-1 after fini). */
  slot: number;
  /** Set by done(). */
  done: boolean;
  /** A lock() of this context is pending. */
  busy: boolean;
  /** The onForced callbacks already ran. */
  forcedNoticed: boolean;
  forcedCallbacks: ForcedCallback[] | undefined;
  /** Index in the watchdog's list of this thread's watched contexts, -1 if not watched. */
  watchIndex: number;
  /** Registered with the finalizer (see registerOpenContexts). */
  registered: boolean;
  /** The highest key an ordered context took since it last held nothing (undefined: none, or unordered). */
  lastKey: bigint | undefined;
}

let stateOf: (ctx: AcquireContext) => ContextState;

/**
 * Contexts created since the last registration pass. A context is registered with the finalizer (which gives
 * a forgotten context's slot back) only if it is still open one event-loop turn after its creation: most
 * contexts lock, unlock and fini() within that turn, and registering each would cost as much as the rest of
 * an uncontended lock. The list holds them strongly, so none can be collected before its pass.
 */
const unregistered: AcquireContext[] = [];
/**
 * Contexts after which the registration pass runs at once. Async tasks handing locks to each other in
 * microtasks never let the loop turn: the pass then runs every REGISTER_BATCH contexts and registers those
 * still open. Large, so that most of them have ended by then (with 64 tasks, a batch of 64 registered nearly
 * every context); the list keeps at most this many small objects alive.
 */
const REGISTER_BATCH = 1024;

function registerOpenContexts(): void {
  for (const ctx of unregistered) {
    const s = stateOf(ctx);
    if (s.slot < 0) continue;
    s.registered = true;
    finalizer.register(ctx, { store: s.store, slot: s.slot }, s);
  }
  unregistered.length = 0;
}

/** One task's acquire context; create it with WwClass.acquireContext(). */
export class AcquireContext {
  /** The class this context locks. */
  readonly class: WwClass;
  /** Label for diagnostics. */
  readonly name: string;
  /** Age: smaller is older; process-wide monotonic. Kept across retries, which is how a task ages. */
  readonly stamp: number;
  /** The hold limit (0 = none). */
  readonly maxHoldMs: number;
  /** Locks in ascending key order (AcquireContextOptions.ordered). */
  readonly ordered: boolean;
  readonly #s: ContextState;

  static {
    stateOf = (ctx) => ctx.#s;
  }

  /** Use WwClass.acquireContext(). */
  constructor(cls: WwClass, options?: AcquireContextOptions) {
    if (!(cls instanceof WwClass)) throw argTypeError('cls', 'a WwClass', cls);
    const o = optionsOf(options);
    const maxHold = o.maxHoldMs ?? 0;
    if (typeof maxHold !== 'number') throw argTypeError('options.maxHoldMs', 'a number of ms', maxHold);
    if (Number.isNaN(maxHold) || maxHold < 0) throw argRangeError('options.maxHoldMs', 'a number of ms >= 0', maxHold);
    this.class = cls;
    this.name = checkName(o.name, 'options.name') ?? '';
    this.maxHoldMs = maxHold === Infinity ? 0 : Math.min(Math.ceil(maxHold), 0x7fffffff);
    const ordered = o.ordered ?? false;
    if (typeof ordered !== 'boolean') throw argTypeError('options.ordered', 'a boolean', ordered);
    this.ordered = ordered;
    const store = lockStore(cls.domain, cls.group);
    const slot = store.openContext(cls.kindId, this.name, this.maxHoldMs, ordered);
    this.#s = {
      store,
      slot,
      done: false,
      busy: false,
      forcedNoticed: false,
      forcedCallbacks: undefined,
      watchIndex: -1,
      registered: false,
      lastKey: undefined,
    };
    this.stamp = store.ctxStamp(slot);
    // The pass runs from node:timers' setImmediate (test fake clocks leave it alone) and never keeps the
    // process alive.
    const n = unregistered.push(this);
    if (n === 1) setImmediate(registerOpenContexts).unref();
    // A long chain of microtasks (async tasks handing locks to each other) never reaches the pass: bound
    // what the list keeps alive.
    else if (n >= REGISTER_BATCH) registerOpenContexts();
  }

  /** Process-wide id of the context (its table slot): the ctxId passed to the force hook. -1 after fini(). */
  get id(): number {
    return this.#s.slot;
  }

  /** Number of locks this context holds now (0 after a forced release). */
  get acquired(): number {
    return this.#s.slot < 0 ? 0 : this.#s.store.ctxAcquired(this.#s.slot);
  }

  /** Wound-wait: an older context needs a lock this one holds; the next contended lock() fails EDEADLK. */
  get wounded(): boolean {
    return this.#s.slot >= 0 && (this.#s.store.ctxFlags(this.#s.slot) & CF_WOUNDED) !== 0;
  }

  /** The watchdog forced this context off all its locks (a hold outlived maxHoldMs). */
  get forced(): boolean {
    return this.#s.slot >= 0 && (this.#s.store.ctxFlags(this.#s.slot) & CF_FORCED) !== 0;
  }

  /**
   * Registers a callback run in this context's thread once it has been forced off (from this thread's
   * watchdog timer, or when an unlock()/lock() notices). Runs at once if that already happened.
   */
  onForced(callback: ForcedCallback): void {
    if (typeof callback !== 'function') throw argTypeError('callback', 'a function', callback);
    (this.#s.forcedCallbacks ??= []).push(callback);
    if (this.#s.forcedNoticed) callback(this);
  }

  /** Marks the end of the acquire phase (kernel ww_acquire_done): locking afterwards fails with EPERM. */
  done(): void {
    this.#s.done = true;
  }

  /**
   * Ends the context (kernel ww_acquire_fini): it must hold nothing (else EBUSY). Idempotent.
   * A forced context holds nothing, so fini() is how it is cleared.
   */
  fini(): void {
    if (this.#s.slot < 0) return;
    if (this.#s.busy || !this.#s.store.closeContext(this.#s.slot)) {
      throw new DmabufError(
        'EBUSY',
        `acquire context "${this.name}" still holds ${this.acquired} lock(s)` +
          (this.#s.busy ? ' and has a lock() pending' : '') +
          ': unlock() every mutex it holds (and let pending lock() calls settle) before fini()',
      );
    }
    if (this.#s.registered) finalizer.unregister(this.#s);
    unwatch(this);
    this.#s.slot = -1;
  }
}

/** The internal state of `ctx` (for ww-mutex and ww-watchdog only). @internal */
export function contextState(ctx: AcquireContext): ContextState {
  return stateOf(ctx);
}

/**
 * Why `ctx` cannot lock now, or undefined. Also makes a forced context run its onForced callbacks.
 * @internal
 */
export function lockError(ctx: AcquireContext): Error | undefined {
  const s = stateOf(ctx);
  if (s.slot < 0) {
    return new DmabufError('EBADF', `acquire context "${ctx.name}" was fini()ed: create a new one with acquireContext()`);
  }
  if (s.done) {
    return new DmabufError(
      'EPERM',
      `acquire context "${ctx.name}" is done(): call done() only after the last lock, or use a new context`,
    );
  }
  if (s.busy) {
    return new DmabufError(
      'EINVAL',
      `acquire context "${ctx.name}" already has a lock() pending: a context locks one mutex at a time; ` +
        'await each lock() before the next',
    );
  }
  if (ctx.forced) {
    noticeForced(ctx);
    return forcedError(ctx);
  }
  return undefined;
}

/** The error for using a context that the watchdog forced off its locks. @internal */
export function forcedError(ctx: AcquireContext): DmabufError {
  return new DmabufError(
    'ETIMEDOUT',
    `acquire context "${ctx.name}" held a lock longer than maxHoldMs (${ctx.maxHoldMs} ms) and was forced off all ` +
      'its locks: its writes may be lost; fini() it and redo the whole transaction with a new context',
  );
}
