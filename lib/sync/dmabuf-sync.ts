/**
 * DmabufSync: the 2013 "dmabuf sync framework" for Node. A task names the buffers it will touch and how,
 * locks them all at once, touches them, unlocks:
 *
 *     init → get(buf, access) … → lock → (CPU or device access) → unlock → putAll → fini
 *
 * lock() takes every buffer's ww mutex (wound/wait backoff: deadlock-free in any order), then waits for the
 * devices' fences that conflict with the access, then opens the CPU cache bracket. unlock() closes the
 * bracket, attaches the caller's device-job fence, and releases the mutexes. Our locks order our own users
 * (tasks, workers); devices are ordered only by real kernel fences. See docs/design.md.
 */
import { channel } from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import { DmaBuf } from '../kernel/dma-buf';
import { SyncFile } from '../kernel/sync-file';
import { Mapping, scratchMappingAt } from '../kernel/mapping';
import {
  abortError,
  argRangeError,
  argTypeError,
  checkName,
  closedError,
  describe,
  DmabufError,
  fromNative,
  kernelCall,
  optionsOf,
  usageError,
} from '../errors';
import { checkAccess, writes, type Access } from '../kernel/access';
import { deadlineOf } from '../kernel/fd-wait';
import { firstPending, importFence, pollEvents } from '../kernel/implicit-fences';
import { waitForFences } from '../kernel/shared-fence-wait';
import { WwClass } from '../ww/ww-class';
import { WwMutex, queryLocks, setForceHook, takeOwnerDied, type LockSnapshot } from '../ww/ww-mutex';
import { keptMappingFor, registerBuffer, unregisterBuffer, type RegisteredBuffer } from './buffer-registry';
import type { AcquireContext } from '../ww/acquire-context';
import { bracketFlags, startWhenReady, syncEach } from '../kernel/cache-bracket';

const debug = debuglog('dmabuf-sync');
const RESOLVED: Promise<void> = Promise.resolve();

/** Published when lock() has to wait for a device fence that is not yet signalled. */
export const CHANNEL_FENCE_WAIT = 'dmabuf-sync:fence-wait';
const fenceWaitChannel = channel(CHANNEL_FENCE_WAIT);

// Whichever thread forces a holder off (a waiter that reached the holder's deadline, or the holder's own
// watchdog timer) takes the holder's CPU mappings away at once: each hold's tag is the address of the
// mapping handed out by map(), replaced in place by scratch memory, so late writes cannot reach the buffer
// that the next holder now owns. The holder's own thread closes the cache bracket when it notices.
setForceHook((tags) => {
  for (const address of tags) scratchMappingAt(address);
});

/**
 * Who holds and who waits for which buffer, across all threads and processes of the lock domain (default:
 * the user's default domain): for each locked or awaited buffer (`key` is its inode), the holders and
 * waiters with their sync name, stamp, mode, pid, thread and since when. Meant for diagnosing a stuck
 * pipeline.
 */
export function query(options?: { domain?: string; group?: string | number }): LockSnapshot {
  const o = optionsOf(options);
  return o.domain === undefined && o.group === undefined ? queryLocks() : queryLocks(defaultClass(o.domain, o.group));
}

/** How long a holder may keep its locks before the watchdog forces them off, by default (ms). */
export const DEFAULT_MAX_HOLD_MS = 10_000;

/** Options of DmabufSync.init(). */
export interface DmabufSyncOptions {
  /** Shown by query() and in diagnostics; defaults to 'sync-<n>'. */
  name?: string;
  /** The ww class whose stamps order this sync against others; defaults to a shared wound-wait class. */
  wwClass?: WwClass;
  /**
   * The lock domain (without wwClass): syncs of one domain exclude each other in every process of this user;
   * another domain is a separate lock space. Default: 'default'. See docs/processes.md.
   */
  domain?: string;
  /**
   * Opt-in (without wwClass): share the domain with every user of this unix group (name or gid); see
   * WwClassOptions.group.
   */
  group?: string | number;
  /** Watchdog bound on holding the locks, in ms (default 10 000). */
  maxHoldMs?: number;
}

/** Options of lock(): one deadline and one signal bound the whole lock, backoffs and fence waits included. */
export interface LockOptions {
  /** Aborting rejects the pending lock() with an AbortError; nothing is left held. */
  signal?: AbortSignal;
  /** Give up after this many ms (rejects with ETIMEDOUT); backoffs and fence waits included. */
  timeoutMs?: number;
  /**
   * false: try mode. Lock only if every buffer is free now and its device fences are signalled; else reject
   * at once with EBUSY, holding nothing (the proposal's `dmabuf_sync_single_lock(dmabuf, type, wait)`).
   * Default true.
   */
  wait?: boolean;
}

/** Options of DmabufSync.single(): the sync's and the lock's. */
export interface SingleLockOptions extends LockOptions, DmabufSyncOptions, GetOptions {}

/** Options of DmabufSync.waitUnlocked(). */
export interface WaitUnlockedOptions {
  /** Aborting rejects with an AbortError; nothing is left queued. */
  signal?: AbortSignal;
  /** Give up after this many ms (rejects with ETIMEDOUT). */
  timeoutMs?: number;
  /** The ww class (its domain) the buffer is locked in; defaults to DmabufSync's default class of `domain`. */
  wwClass?: WwClass;
  /** The lock domain (without wwClass); default 'default'. */
  domain?: string;
  /** A group-shared domain's group (without wwClass). */
  group?: string | number;
}

/** Options of unlock(). */
export interface UnlockOptions {
  /**
   * The fence of a device job that now owns the buffers (a SyncFile, or a sync_file fd the caller keeps
   * owning). It is attached to every buffer: as a write fence where this sync wrote, a read fence where it
   * read, so later users — ours and the kernel's (KMS, GPU drivers) — order after the job.
   */
  fence?: SyncFile | number;
}

/** Options of get(). */
export interface GetOptions {
  /** false: a device (DMA) access — same locking and fence waits, but no CPU cache bracket and no map(). */
  cpu?: boolean;
}

interface Entry {
  /** Our own dup of the caller's buffer (shared in this thread): the caller may close theirs meanwhile. */
  buf: DmaBuf;
  /** The registry reference behind buf and mutex. */
  reg: RegisteredBuffer;
  access: Access;
  cpu: boolean;
  mutex: WwMutex;
  /** CPU cache bracket open. */
  started: boolean;
  mapping?: Mapping;
}

/** The life cycle of a DmabufSync (see DmabufSync.state). */
export type SyncState = 'idle' | 'locking' | 'locked' | 'forced' | 'fini';

/** Arguments of the batched addon calls a lock and an unlock make, in entry order. */
interface Batch {
  entries: Entry[];
  fds: Int32Array;
  /** poll() events meaning "no conflicting device fence" (firstPending). */
  pollEvents: Uint32Array;
  /** POLLIN for every buffer: "no pending device writer" (toDeviceRead), made on first use. */
  readEvents?: Uint32Array;
  cpu: Entry[];
  cpuFds: Int32Array;
  startFlags: Uint32Array;
  endFlags: Uint32Array;
}

/** The default wound-wait class of each domain. */
const defaultClasses = new Map<string, WwClass>();
let serial = 0;

function defaultClass(domain: string | undefined, group?: string | number): WwClass {
  const cls = new WwClass('wound-wait', 'dmabuf-sync', { domain, group });
  const id = `${cls.domain}@${cls.group ?? ''}`;
  const known = defaultClasses.get(id);
  if (known !== undefined) return known;
  defaultClasses.set(id, cls);
  return cls;
}

/** Orders entries by their buffer's inode: the one global order in which every sync takes its buffers. */
function byInode(a: Entry, b: Entry): number {
  return a.buf.inode < b.buf.inode ? -1 : a.buf.inode > b.buf.inode ? 1 : 0;
}

/** A set of buffers a task locks, accesses and unlocks together. */
export class DmabufSync {
  /** The name shown by query(). */
  readonly name: string;
  /** The ww class ordering this sync's acquire contexts. */
  readonly wwClass: WwClass;
  /** The watchdog bound, in ms. */
  readonly maxHoldMs: number;
  readonly #entries = new Map<bigint, Entry>();
  #state: SyncState = 'idle';
  #ctx: AcquireContext | undefined;
  #backoffs = 0;
  #fenceWaits = 0;
  #ownerDied: DmaBuf[] = [];
  /** The per-lock syscall arguments, built once per set of buffers (get/put invalidate it). */
  #batch: Batch | undefined;
  /** toDeviceRead() ran: the locks are held for a device, CPU access (map) is over until unlock(). */
  #deviceOnly = false;
  readonly #forcedCallback = (): void => this.#onForced();
  /** Run (in this thread) each time the watchdog forces a lock of this sync off (setForcedListener). */
  #forcedListener: (() => void) | undefined;

  /** Creates a sync object (same as DmabufSync.init). */
  constructor(options?: DmabufSyncOptions) {
    const o = optionsOf(options);
    const maxHoldMs = o.maxHoldMs ?? DEFAULT_MAX_HOLD_MS;
    if (typeof maxHoldMs !== 'number') throw argTypeError('options.maxHoldMs', 'a number of ms', maxHoldMs);
    if (!(maxHoldMs > 0) || !Number.isFinite(maxHoldMs)) {
      throw argRangeError('options.maxHoldMs', 'a finite number of ms > 0', maxHoldMs);
    }
    if (o.wwClass !== undefined && !(o.wwClass instanceof WwClass)) {
      throw argTypeError('options.wwClass', 'a WwClass', o.wwClass);
    }
    if (o.wwClass !== undefined && (o.domain !== undefined || o.group !== undefined)) {
      throw usageError('EINVAL', 'give either wwClass or domain/group: the domain and group are those of the wwClass');
    }
    this.name = checkName(o.name, 'options.name') ?? `sync-${++serial}`;
    this.wwClass = o.wwClass ?? defaultClass(o.domain, o.group);
    this.maxHoldMs = maxHoldMs;
  }

  /** Creates a sync object: dmabuf_sync_init() of the 2013 dmabuf sync framework. */
  static init(options?: DmabufSyncOptions): DmabufSync {
    return new DmabufSync(options);
  }

  /**
   * One buffer, locked: init + get + lock in one call (the proposal's single-buffer interface). With
   * `wait: false` it rejects with EBUSY at once if the buffer is busy. Unlock and fini() the returned sync
   * when done. A rejected call leaves nothing held.
   */
  static async single(buf: DmaBuf, access: Access, options?: SingleLockOptions): Promise<DmabufSync> {
    const o = optionsOf(options);
    const sync = new DmabufSync({ name: o.name, wwClass: o.wwClass, domain: o.domain, group: o.group, maxHoldMs: o.maxHoldMs });
    try {
      sync.get(buf, access, { cpu: o.cpu });
      await sync.lock({ signal: o.signal, timeoutMs: o.timeoutMs, wait: o.wait });
    } catch (err) {
      sync.fini();
      throw err;
    }
    return sync;
  }

  /**
   * Resolves once `buf` is unlocked for `access` (no holder at all for 'write'/'rw', no writer for 'read'),
   * by any thread or process, without locking it: the proposal's poll() on a dma-buf. Someone may lock it
   * again right after; use it to learn of a release, lock() to own the buffer.
   */
  static async waitUnlocked(buf: DmaBuf, access: Access = 'write', options?: WaitUnlockedOptions): Promise<void> {
    if (!(buf instanceof DmaBuf)) throw argTypeError('buf', 'a DmaBuf', buf);
    const mode = writes(checkAccess(access)) ? 'write' : 'read';
    const o = optionsOf(options);
    if (o.wwClass !== undefined && !(o.wwClass instanceof WwClass)) throw argTypeError('options.wwClass', 'a WwClass', o.wwClass);
    const cls = o.wwClass ?? defaultClass(o.domain, o.group);
    const deadline = deadlineOf(o);
    if (buf.closed) throw closedError('DmaBuf');
    const mutex = new WwMutex(cls, buf.inode);
    try {
      await mutex.waitUnlocked(mode, { signal: o.signal, deadline });
    } finally {
      mutex.dispose();
    }
  }

  /** 'idle', 'locking', 'locked', 'forced' (the watchdog took the locks; unlock() reports it) or 'fini'. */
  get state(): SyncState {
    // No side effect (and no syscall) here: the forced holder's cleanup runs at its next call or its timer.
    return this.#state === 'locked' && this.#ctx?.forced ? 'forced' : this.#state;
  }

  /** Whether lock() succeeded and unlock() has not run yet (false once forced off). */
  get locked(): boolean {
    return this.state === 'locked';
  }

  /** Counters since creation: EDEADLK backoffs taken and waits on device fences that were not yet signalled. */
  get stats(): {
    /** EDEADLK backoffs taken by lock(). */
    backoffs: number;
    /** Waits for device fences that were not yet signalled. */
    fenceWaits: number;
  } {
    return { backoffs: this.#backoffs, fenceWaits: this.#fenceWaits };
  }

  /**
   * The buffers of the last lock() whose previous writer died while holding them (its process was killed,
   * its worker terminated): their contents may be half written. Empty when none; compare by `inode`. Also
   * published on the `dmabuf-sync:owner-died` diagnostics channel.
   */
  get ownerDied(): DmaBuf[] {
    return this.#ownerDied;
  }

  /** The buffers added, in order. */
  get buffers(): Array<{
    /** The buffer's identity. */
    inode: bigint;
    /** How this sync accesses it. */
    access: Access;
    /** false for a device (DMA) access added with `cpu: false`. */
    cpu: boolean;
  }> {
    return [...this.#entries.values()].map((e) => ({ inode: e.buf.inode, access: e.access, cpu: e.cpu }));
  }

  /**
   * Adds a buffer this task will access: 'read', 'write' or 'rw'. Only before lock(). Adding the same
   * buffer (same inode) again merges the accesses (read + write = rw).
   */
  get(buf: DmaBuf, access: Access, options?: GetOptions): void {
    this.#checkUsable('get');
    if (this.#state !== 'idle') throw usageError('EBUSY', `${this.name}: get() while locked; unlock() first, then add buffers`);
    if (!(buf instanceof DmaBuf)) {
      throw argTypeError('buf', 'a DmaBuf (wrap an fd with DmaBuf.fromFd)', buf);
    }
    checkAccess(access);
    const cpu = optionsOf(options).cpu ?? true;
    if (typeof cpu !== 'boolean') throw argTypeError('options.cpu', 'a boolean', cpu);
    if (buf.closed) throw new DmabufError('EBADF', `${this.name}: get() of a closed DmaBuf; keep it open until put()`);
    const known = this.#entries.get(buf.inode);
    if (known) {
      known.access = known.access === access ? access : 'rw';
      known.cpu ||= cpu;
      this.#batch = undefined;
      return;
    }
    const reg = registerBuffer(this.wwClass, buf);
    this.#entries.set(buf.inode, { buf: reg.buf, access, cpu, mutex: reg.mutex, reg, started: false });
    this.#batch = undefined;
  }

  /** Removes a buffer (only while not locked). Removing one that was never added is ENOENT. */
  put(buf: DmaBuf): void {
    this.#checkUsable('put');
    if (this.#state !== 'idle') throw usageError('EBUSY', `${this.name}: put() while locked; unlock() first`);
    if (!(buf instanceof DmaBuf)) throw argTypeError('buf', 'a DmaBuf', buf);
    const e = this.#entries.get(buf.inode);
    if (!e) throw usageError('ENOENT', `${this.name}: put() of a buffer that was not added with get()`);
    this.#drop(e);
  }

  /** Removes every buffer (only while not locked). */
  putAll(): void {
    this.#checkUsable('putAll');
    if (this.#state !== 'idle') throw usageError('EBUSY', `${this.name}: putAll() while locked; unlock() first`);
    for (const e of [...this.#entries.values()]) this.#drop(e);
  }

  /**
   * Locks every added buffer: ww mutexes with backoff (a read joins other readers; a writer is exclusive),
   * then waits for conflicting device fences, then opens the CPU cache bracket. `timeoutMs` and `signal`
   * bound all of it with one deadline; a rejected lock leaves nothing held.
   */
  lock(options?: LockOptions): Promise<void> {
    // Not async: the uncontended lock (every mutex free, no fence pending) completes synchronously and
    // returns a settled promise, without an async frame; only a wait goes through #lockSlow().
    let batch: Batch;
    let wait: boolean;
    let signal: AbortSignal | undefined;
    let deadline: number;
    try {
      this.#checkUsable('lock');
      if (this.#state !== 'idle') {
        throw usageError('EBUSY', `${this.name}: lock() while ${this.#state}; unlock() before locking again`);
      }
      deadline = deadlineOf(options);
      signal = optionsOf(options).signal;
      if (this.#entries.size === 0) throw usageError('EINVAL', `${this.name}: lock() with no buffers; add them with get() first`);
      if (signal?.aborted) throw abortError(signal);
      const w = optionsOf(options).wait ?? true;
      if (typeof w !== 'boolean') throw argTypeError('options.wait', 'a boolean', w);
      wait = w;
      batch = (this.#batch ??= this.#makeBatch());
    } catch (err) {
      return Promise.reject(err);
    }
    let ctx: AcquireContext;
    try {
      // Ordered: its buffers are taken in inode (key) order, so two syncs never wound or kill each other.
      ctx = this.wwClass.acquireContext({ name: this.name, maxHoldMs: this.maxHoldMs, ordered: true });
    } catch (err) {
      return Promise.reject(err);
    }
    this.#state = 'locking';
    this.#ctx = ctx;
    let busy: number;
    try {
      busy = this.#tryAcquireAll(batch.entries, ctx);
      if (busy === batch.entries.length) {
        const pending = this.#acquired(batch, ctx);
        if (pending < 0) {
          this.#lockedNow(ctx);
          return RESOLVED;
        }
        return this.#lockSlow(batch, ctx, { signal, deadline }, wait, pending, 0);
      }
      if (!wait) throw usageError('EBUSY', `${this.name}: a buffer is locked by another user (wait: false); try again later, or lock() with wait`);
    } catch (err) {
      this.#releaseAll(ctx);
      return Promise.reject(err);
    }
    return this.#lockSlow(batch, ctx, { signal, deadline }, wait, undefined, busy);
  }

  /**
   * The rest of a lock() that has to wait: for the mutexes (`pending` undefined) and then for device
   * fences, or only for the fences of entry `pending` onwards. `busy`: the entry that #tryAcquireAll found
   * busy, the ones before it held. Releases everything on failure.
   */
  async #lockSlow(
    batch: Batch,
    ctx: AcquireContext,
    opts: { signal?: AbortSignal; deadline: number },
    wait: boolean,
    pending: number | undefined,
    busy: number,
  ): Promise<void> {
    try {
      let i = pending;
      // Take every mutex, in order (inline, not an async helper: one promise and a few microtask hops less
      // per contended lock, which 1000 waiters pay 1000 times).
      if (i === undefined) {
        const entries = batch.entries;
        // The first pass goes on from the busy entry, keeping what the synchronous attempt took before it (in
        // order, as this loop would take it again); a pass after a back-off (busy -1) starts from nothing.
        for (;;) {
          const from = Math.max(busy, 0);
          const held: Entry[] = entries.slice(0, from);
          let failed: Entry | undefined;
          try {
            for (let k = from; k < entries.length; k++) {
              const e = entries[k] as Entry;
              const mode = writes(e.access) ? 'write' : 'read';
              // Take a free lock without yielding; only a busy one is awaited. Each await lets other tasks of
              // this thread interleave their acquisitions with ours, which is what makes them conflict. The
              // entry found busy a moment ago goes straight to lock(): one pass through the table less.
              if (k === busy || !e.mutex.tryLock(mode, ctx)) {
                failed = e;
                await e.mutex.lock(ctx, mode, opts);
              }
              held.push(e);
            }
            break;
          } catch (err) {
            // Any other failure: the outer catch releases everything (#releaseAll).
            if ((err as { code?: string }).code !== 'EDEADLK') throw err;
            for (const e of held) e.mutex.unlockIfHeld(ctx);
            busy = -1;
            // Backed off for an unordered WwMutex user (syncs never make each other back off): drop everything,
            // wait until the contended lock is free, keep the stamp (age) and retry in order. Not lockSlow(): an
            // ordered context may not take that buffer before the ones below it.
            this.#backoffs++;
            await failed!.mutex.waitUnlocked(writes(failed!.access) ? 'write' : 'read', opts);
          }
        }
        i = this.#acquired(batch, ctx);
      }
      // Wait for the first buffer with a pending fence, then check (and open the brackets) again.
      for (; i >= 0; i = this.#startWhenReady(batch)) {
        const e = batch.entries[i] as Entry;
        if (!wait) throw usageError('EBUSY', `${this.name}: dma-buf inode ${e.buf.inode} has unsignalled device fences (wait: false); try again later`);
        this.#fenceWaits++;
        if (fenceWaitChannel.hasSubscribers) fenceWaitChannel.publish({ sync: this.name, inode: e.buf.inode, access: e.access });
        await waitForFences(e.buf, e.access, opts);
        if (ctx.forced) throw new DmabufError('ETIMEDOUT', `${this.name}: the watchdog forced the locks off while waiting for device fences; raise maxHoldMs`);
      }
    } catch (err) {
      this.#releaseAll(ctx);
      throw err;
    }
    this.#lockedNow(ctx);
  }

  /**
   * Every mutex is held: ends the acquire phase, records owners that died, and makes the one addon call
   * that checks the fences and opens the brackets. Returns -1 when locked, else the first pending entry.
   */
  #acquired(batch: Batch, ctx: AcquireContext): number {
    ctx.done();
    const died = takeOwnerDied(ctx);
    this.#ownerDied = died.length === 0 ? [] : batch.entries.filter((e) => died.includes(e.buf.inode)).map((e) => e.buf);
    return this.#startWhenReady(batch);
  }

  /** The lock is complete: hooks the watchdog's force and marks it locked. */
  #lockedNow(ctx: AcquireContext): void {
    ctx.onForced(this.#forcedCallback);
    this.#state = 'locked';
    if (debug.enabled) debug('%s locked %d buffers', this.name, this.#entries.size);
  }

  /**
   * A CPU view of a locked buffer, valid only while locked: unlock() releases it, and if the watchdog
   * forces the lock off, the view is replaced by scratch memory so late writes cannot reach the buffer.
   * Writable when the access writes.
   */
  map(buf: DmaBuf): Mapping {
    this.#checkUsable('map');
    this.#noticeForced();
    if (this.#state === 'forced') throw this.#forcedError();
    if (this.#state !== 'locked') throw usageError('EPERM', `${this.name}: map() while not locked; lock() first`);
    if (this.#deviceOnly) throw usageError('EPERM', `${this.name}: map() after the CPU access ended (toDeviceRead); unlock() and lock() again`);
    if (!(buf instanceof DmaBuf)) throw argTypeError('buf', 'a DmaBuf', buf);
    const e = this.#entries.get(buf.inode);
    if (!e) throw usageError('ENOENT', `${this.name}: map() of a buffer that was not added with get()`);
    if (!e.cpu) throw usageError('EPERM', `${this.name}: map() of a device-access buffer (get with cpu: true for CPU access)`);
    if (!e.mapping) {
      const kept = keptMappingFor(e.reg, writes(e.access));
      // One pass through the lock table, before the loan: the hold's tag is the view's address (a forcer of
      // this process scratches it), the token makes the view revocable from another process while this
      // thread's loop is blocked.
      const token = e.mutex.tagHoldForView(this.#ctx!, kept.address);
      if (token === 0n) {
        this.#onForced();
        throw this.#forcedError();
      }
      try {
        e.mapping = kept.lend(token);
      } catch (err) {
        // A forcer of this process ran between the tag and the loan: it scratched the kept mapping by its
        // address, which the loan then refuses (EIO; that mapping is spent).
        if (this.#ctx!.forced) {
          this.#onForced();
          throw this.#forcedError();
        }
        throw err;
      }
    }
    return e.mapping;
  }

  /**
   * @internal Sets the function run in this thread when the watchdog forces this sync's locks off, once per
   * forced lock(), right after the sync has given up its access (state 'forced'): the holder's timer runs it
   * at the deadline even if nobody calls this sync (a device hold: DeviceQueue stops the stream). Undefined
   * removes it. It must not throw (a throw is reported as a warning).
   */
  setForcedListener(listener: (() => void) | undefined): void {
    this.#forcedListener = listener;
  }

  /**
   * @internal Ends the CPU access of a locked sync but keeps its locks, for a device that now reads the
   * buffers (SwapChain.present: the display). Releases the views from map() and closes the CPU cache
   * brackets, as unlock() would, then waits for device writers that a read must follow (a GPU job attached
   * after lock()); the locks stay held — exclusive where this sync writes, which is at least what a reader
   * needs — so nobody can take the buffers between the CPU write and the device read. One transition in
   * place of unlock() and a second sync's lock() for 'read'. map() is EPERM until unlock(), which ends the
   * hold. On failure (a bad bracket, the deadline, an abort, the watchdog) every lock is released and the
   * sync is idle.
   */
  toDeviceRead(options?: LockOptions): Promise<void> {
    // Not async: with no device writer pending (the frame loop's case) it completes synchronously.
    try {
      this.#checkUsable('toDeviceRead');
      this.#noticeForced();
      if (this.#state === 'forced') {
        this.#state = 'idle';
        throw this.#forcedError();
      }
      if (this.#state !== 'locked' || this.#deviceOnly) {
        throw usageError('EPERM', `${this.name}: toDeviceRead() while ${this.#deviceOnly ? 'already handed to the device' : this.#state}; lock() first`);
      }
      const ctx = this.#ctx!;
      const batch = this.#batch!;
      const errors: unknown[] = [];
      this.#endCpuAll(errors);
      this.#deviceOnly = true;
      try {
        if (errors.length > 0) throw errors[0];
        let events = batch.readEvents;
        if (events === undefined) events = batch.readEvents = new Uint32Array(batch.entries.length).fill(pollEvents('read'));
        const i = firstPending(batch.fds, events);
        if (i < 0) return RESOLVED;
        return this.#waitForWriters(batch, ctx, events, i, options);
      } catch (err) {
        if (this.#ctx === ctx) this.#releaseAll(ctx);
        throw err;
      }
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** toDeviceRead()'s wait for device writers, from entry `first` on; releases everything on failure. */
  async #waitForWriters(batch: Batch, ctx: AcquireContext, events: Uint32Array, first: number, options: LockOptions | undefined): Promise<void> {
    try {
      const signal = optionsOf(options).signal;
      const deadline = deadlineOf(options);
      for (let i = first; i >= 0; i = firstPending(batch.fds, events)) {
        const e = batch.entries[i] as Entry;
        this.#fenceWaits++;
        if (fenceWaitChannel.hasSubscribers) fenceWaitChannel.publish({ sync: this.name, inode: e.buf.inode, access: 'read' });
        await waitForFences(e.buf, 'read', { signal, deadline });
        if (ctx.forced) throw new DmabufError('ETIMEDOUT', `${this.name}: the watchdog forced the locks off while waiting for device writers; raise maxHoldMs`);
      }
    } catch (err) {
      if (this.#ctx === ctx) this.#releaseAll(ctx);
      throw err;
    }
  }

  /**
   * Ends the access: closes the cache bracket, attaches `fence` (a device job's) to every buffer, releases
   * the locks and wakes waiters. Rejects with ETIMEDOUT if the watchdog forced the locks off meanwhile.
   */
  unlock(options?: UnlockOptions): Promise<void> {
    // Synchronous inside; a plain function returning a settled promise saves an async frame per unlock.
    try {
      this.#unlockNow(options);
      return RESOLVED;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #unlockNow(options: UnlockOptions | undefined): void {
    this.#checkUsable('unlock');
    this.#noticeForced();
    if (this.#state === 'forced') {
      this.#state = 'idle';
      throw this.#forcedError();
    }
    if (this.#state !== 'locked') throw usageError('EPERM', `${this.name}: unlock() while ${this.#state}; lock() first`);
    const ctx = this.#ctx!;
    let fence: SyncFile | undefined;
    let ownFence = false;
    const errors: unknown[] = [];
    // A bad fence is reported, but the buffers are still unlocked: nothing may stay held.
    try {
      const f = optionsOf(options).fence;
      if (f instanceof SyncFile) fence = f;
      else if (typeof f === 'number') {
        fence = SyncFile.fromCallerFd(f, 'options.fence');
        ownFence = true;
      } else if (f !== undefined) {
        throw argTypeError('options.fence', 'a SyncFile or a sync_file fd', f);
      }
    } catch (err) {
      errors.push(err);
    }
    // Each step is attempted on every buffer: one buffer's failure must not leave another's bracket open or
    // another buffer unordered after the device job.
    this.#endCpuAll(errors);
    if (fence) {
      for (const e of this.#entries.values()) {
        try {
          importFence(e.buf.fd, fence, e.access);
        } catch (err) {
          errors.push(this.#bufferError(e, 'attaching the fence', err));
        }
      }
    }
    if (ownFence) fence!.close();
    this.#releaseAll(ctx);
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) {
      const first = errors[0] as { code?: unknown };
      throw new DmabufError(
        typeof first.code === 'string' ? first.code : 'EIO',
        `${this.name}: unlock() failed ${errors.length} times (every lock was released all the same): ` +
          errors.map((err) => (err instanceof Error ? err.message : describe(err))).join(' | '),
        { errors },
      );
    }
    if (debug.enabled) debug('%s unlocked', this.name);
  }

  /** `err` of one buffer's step, as a DmabufError that names the buffer. */
  #bufferError(e: Entry, step: string, err: unknown): DmabufError {
    const inner = fromNative(err, `${this.name}: ${step} on dma-buf inode ${e.buf.inode} (${e.buf.exporter})`);
    if (inner instanceof DmabufError && inner.message.includes(`inode ${e.buf.inode}`)) return inner;
    const code = (inner as { code?: unknown }).code;
    return new DmabufError(
      typeof code === 'string' ? code : 'EIO',
      `${this.name}: ${step} on dma-buf inode ${e.buf.inode} (${e.buf.exporter}): ${inner.message}`,
      { cause: err },
    );
  }

  /** Ends the sync object: puts every buffer. Must not be locked (EBUSY). Idempotent. */
  fini(): void {
    if (this.#state === 'fini') return;
    if (this.#state === 'locked' || this.#state === 'locking') {
      throw usageError('EBUSY', `${this.name}: fini() while locked; unlock() first`);
    }
    for (const e of [...this.#entries.values()]) this.#drop(e);
    this.#state = 'fini';
  }

  /** `await using`: unlock if locked, then fini. A forced-off lock still reports ETIMEDOUT (after fini). */
  async [Symbol.asyncDispose](): Promise<void> {
    let error: unknown;
    if (this.#state === 'locked' || this.#state === 'forced') {
      try {
        await this.unlock();
      } catch (err) {
        error = err;
      }
    }
    this.fini();
    if (error) throw error;
  }

  /**
   * Takes the locks in order, synchronously, up to the first busy one: returns its index (the ones before it
   * stay held, as #lockSlow would take them), or entries.length when all were free (the uncontended case).
   */
  #tryAcquireAll(entries: Entry[], ctx: AcquireContext): number {
    let n = 0;
    for (; n < entries.length; n++) {
      const e = entries[n] as Entry;
      if (!e.mutex.tryLock(writes(e.access) ? 'write' : 'read', ctx)) break;
    }
    return n;
  }

  #makeBatch(): Batch {
    // One global order (inode) for every DmabufSync: they never wait on each other in a cycle, so they
    // almost never back off; the ww protocol still guards mixed use with WwMutex users who lock in any order.
    // Plain loops, not TypedArray.from(entries, fn): a task that changes its set per job builds one per lock.
    const entries = [...this.#entries.values()];
    if (entries.length > 1) entries.sort(byInode);
    const n = entries.length;
    let nCpu = 0;
    for (const e of entries) if (e.cpu) nCpu++;
    const batch: Batch = {
      entries,
      fds: new Int32Array(n),
      pollEvents: new Uint32Array(n),
      cpu: new Array<Entry>(nCpu),
      cpuFds: new Int32Array(nCpu),
      startFlags: new Uint32Array(nCpu),
      endFlags: new Uint32Array(nCpu),
    };
    for (let i = 0, j = 0; i < n; i++) {
      const e = entries[i] as Entry;
      batch.fds[i] = e.buf.fd;
      batch.pollEvents[i] = pollEvents(e.access);
      if (!e.cpu) continue;
      batch.cpu[j] = e;
      batch.cpuFds[j] = e.buf.fd;
      batch.startFlags[j] = bracketFlags(e.access, false);
      batch.endFlags[j] = bracketFlags(e.access, true);
      j++;
    }
    return batch;
  }

  /**
   * One addon call: polls every buffer for conflicting device fences and, when none is pending, opens every
   * CPU buffer's cache bracket. Returns -1 when done, else the index (in batch.entries) of the first buffer
   * with a pending fence, nothing opened. On a bracket failure the ones opened stay marked.
   */
  #startWhenReady(batch: Batch): number {
    let i: number;
    try {
      i = startWhenReady(batch.fds, batch.pollEvents, batch.cpuFds, batch.startFlags);
    } catch (err) {
      if ((err as { synced?: boolean }).synced !== true) throw fromNative(err, 'polling dma-bufs for their device fences');
      const done = (err as { index?: number }).index ?? 0;
      for (let j = 0; j < done; j++) (batch.cpu[j] as Entry).started = true;
      throw fromNative(err, `${this.name}: opening the cache bracket`);
    }
    if (i < 0) for (let j = 0; j < batch.cpu.length; j++) (batch.cpu[j] as Entry).started = true;
    return i;
  }

  /** Releases the mappings and closes every open bracket (one addon call when all are open). */
  #endCpuAll(errors: unknown[]): void {
    const batch = this.#batch;
    if (batch === undefined) {
      for (const e of this.#entries.values()) this.#endCpuOne(e, errors);
      return;
    }
    const cpu = batch.cpu;
    let allStarted = cpu.length > 0;
    for (let i = 0; i < cpu.length; i++) {
      const e = cpu[i] as Entry;
      if (e.mapping !== undefined) this.#releaseMapping(e, errors);
      if (!e.started) allStarted = false;
    }
    if (allStarted) {
      try {
        syncEach(batch.cpuFds, batch.endFlags);
        for (const e of batch.cpu) e.started = false;
        return;
      } catch (err) {
        const failed = (err as { index?: number }).index ?? 0;
        for (let i = 0; i <= failed; i++) (batch.cpu[i] as Entry).started = false;
        errors.push(this.#bufferError(batch.cpu[failed] as Entry, 'closing the cache bracket', err));
      }
    }
    for (let i = 0; i < cpu.length; i++) {
      const e = cpu[i] as Entry;
      if (e.started || e.mapping !== undefined) this.#endCpuOne(e, errors);
    }
  }

  /** #endCpu(e), its failure added to `errors`. */
  #endCpuOne(e: Entry, errors: unknown[]): void {
    try {
      this.#endCpu(e);
    } catch (err) {
      errors.push(err instanceof DmabufError && err.code === 'EACCES' ? err : this.#bufferError(e, 'closing the cache bracket', err));
    }
  }

  /** Releases e's view; a write caught in a read-only view becomes an EACCES error naming the buffer. */
  #releaseMapping(e: Entry, errors: unknown[]): void {
    const mapping = e.mapping;
    if (!mapping) return;
    e.mapping = undefined;
    try {
      mapping.release();
    } catch (err) {
      errors.push(
        new DmabufError(
          'EACCES',
          `${this.name}: dma-buf inode ${e.buf.inode} (${e.buf.exporter}) was locked for '${e.access}' but written ` +
            'through its view from map(); the write went to a private copy and did not reach the buffer. ' +
            "Add it with get(buf, 'write') or 'rw' to change it",
          { cause: err },
        ),
      );
    }
  }

  /** Releases e's view and closes its cache bracket; throws the first failure after doing both. */
  #endCpu(e: Entry): void {
    const errors: unknown[] = [];
    this.#releaseMapping(e, errors);
    if (e.started) {
      e.started = false;
      kernelCall(`${this.name}: closing the cache bracket`, () => e.buf.syncEnd(e.access));
    }
    if (errors.length > 0) throw errors[0];
  }

  /** Releases every hold of ctx and ends it; also the cleanup path of a failed lock(). */
  #releaseAll(ctx: AcquireContext): void {
    const errors: unknown[] = [];
    this.#endCpuAll(errors);
    for (const err of errors) debug('%s: %s', this.name, (err as Error).message);
    const entries = this.#batch?.entries ?? [...this.#entries.values()];
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as Entry;
      e.mutex.unlockIfHeld(ctx);
    }
    ctx.fini();
    this.#ctx = undefined;
    this.#deviceOnly = false;
    this.#state = 'idle';
  }

  /** Runs in this thread when the watchdog forced our locks off: stop CPU access, free what we held. */
  #onForced(): void {
    if (this.#state !== 'locked') return;
    for (const e of this.#entries.values()) {
      e.mapping?.scratch(); // late writes through handed-out views now go to private memory
      try {
        this.#endCpu(e);
      } catch (err) {
        debug('%s: %s', this.name, (err as Error).message);
      }
    }
    const ctx = this.#ctx!;
    ctx.fini();
    this.#ctx = undefined;
    this.#deviceOnly = false;
    this.#state = 'forced';
    debug('%s: forced off after %d ms', this.name, this.maxHoldMs);
    const listener = this.#forcedListener;
    if (listener !== undefined) {
      try {
        listener();
      } catch (err) {
        process.emitWarning(`dmabuf-sync forced listener of ${this.name} threw: ${String(err)}`, 'DmabufSyncWarning');
      }
    }
  }

  /** Another thread may have forced us off before our own timer ran: catch up before acting. */
  #noticeForced(): void {
    if (this.#state === 'locked' && this.#ctx?.forced) this.#onForced();
  }

  #forcedError(): DmabufError {
    return new DmabufError(
      'ETIMEDOUT',
      `${this.name}: held its locks longer than maxHoldMs (${this.maxHoldMs} ms); the watchdog forced them off and ` +
        'other users went on. Writes after that went to scratch memory: redo the work under a new lock(), or raise maxHoldMs',
    );
  }

  #checkUsable(what: string): void {
    if (this.#state === 'fini') throw usageError('EBADF', `${this.name}: ${what}() after fini(); create a new DmabufSync`);
  }

  #drop(e: Entry): void {
    this.#entries.delete(e.buf.inode);
    this.#batch = undefined;
    unregisterBuffer(e.reg);
  }
}
