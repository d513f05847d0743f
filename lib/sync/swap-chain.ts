/**
 * SwapChain: double or triple buffering on a KmsDisplay, through the sync framework. The display is one more
 * device that reads buffers, ordered by real kernel fences:
 *
 *   acquire()  picks a buffer that is neither on screen nor handed out, and locks it for CPU write with
 *              the buffer's DmabufSync. The lock waits (uv_poll, no busy loop) for the buffer's read fence:
 *              the out-fence of the flip that took it off the screen, which KmsDisplay.present() attached to
 *              it. So the app never draws into a buffer the display still scans out: no tearing.
 *   present()  ends the CPU write and hands the still-held lock to the display (DmabufSync.toDeviceRead:
 *              closes the cache bracket, waits for pending writers such as a GPU job that drew the frame),
 *              commits the flip with the caller's in-fence, unlocks, and hands back the flip's out-fence.
 *
 * Each buffer has one DmabufSync for the chain's life, re-locked per frame: a frame costs the lock and the
 * kernel calls, not a sync object's init/get/fini (see docs/display.md, "Cost").
 *
 * With double buffering, an acquire() while the only other buffer is on screen and a flip is pending waits
 * for that flip; with triple buffering the app can draw one frame ahead.
 */
import { DmabufSync } from './dmabuf-sync';
import type { Mapping } from '../kernel/mapping';
import type { DmaBuf } from '../kernel/dma-buf';
import type { SyncFile } from '../kernel/sync-file';
import { KmsDisplay, type PresentOptions } from '../kernel/kms-display';
import type { ScanoutBuffer } from '../kernel/scanout-buffer';
import { abortError, argRangeError, argTypeError, closedError, DmabufError, timeoutError, usageError } from '../errors';
import { deadlineOf, linkSignals, type LinkedSignal, type WaitOptions } from '../kernel/fd-wait';
import { setDeadlineTimer } from '../deadline-timer';

/** Options of SwapChain.create(). */
export interface SwapChainOptions {
  /** 2 (double buffering, default) or 3 (triple). Ignored when `buffers` is given. */
  count?: number;
  /** Dma-bufs to scan out instead of the display's own memory (KmsDisplay.importBuffer: the driver must import). */
  buffers?: DmaBuf[];
  /** Watchdog bound of the frame locks (DmabufSync maxHoldMs). */
  maxHoldMs?: number;
}

/** The milliseconds left until `deadline` (undefined: no bound). */
function remaining(deadline: number): number | undefined {
  return deadline === Infinity ? undefined : Math.max(0, deadline - Date.now());
}

/** Counters since create(). */
export interface SwapChainStats {
  /** Frames presented. */
  frames: number;
  /** acquire() locks that had to wait for a display fence (the buffer was still being scanned out). */
  fenceWaits: number;
  /** acquire() calls that found every other buffer in use and waited for a present(). */
  bufferWaits: number;
}

/** The error for use of a frame that SwapChain.close() released. */
function releasedError(what: string): DmabufError {
  return new DmabufError('EBADF', `Frame.${what}: the frame's SwapChain was closed, which released the frame (its lock and view); ` +
    'acquire() a new frame from an open chain');
}

/**
 * A buffer handed to the app by acquire(): locked for CPU write until present() or cancel(). If the chain
 * closes first, the frame is released (its lock and view; the view reads as scratch afterwards) and every
 * later use of it is EBADF.
 */
export class Frame {
  readonly #chain: SwapChain;
  readonly #sync: DmabufSync;
  #done = false;
  #released = false;
  /** The scanout buffer (size, pitch, framebuffer). */
  readonly buffer: ScanoutBuffer;

  private constructor(chain: SwapChain, buffer: ScanoutBuffer, sync: DmabufSync) {
    this.#chain = chain;
    this.buffer = buffer;
    this.#sync = sync;
  }

  /** @internal A frame of `chain` locked by `sync` (SwapChain.acquire() is the public way). */
  static of(chain: SwapChain, buffer: ScanoutBuffer, sync: DmabufSync): Frame {
    return new Frame(chain, buffer, sync);
  }

  /** The frame's dma-buf. */
  get dmaBuf(): DmaBuf {
    return this.buffer.dmaBuf;
  }

  /** Width in pixels. */
  get width(): number {
    return this.buffer.width;
  }

  /** Height in pixels. */
  get height(): number {
    return this.buffer.height;
  }

  /** Bytes from one row to the next. */
  get pitch(): number {
    return this.buffer.pitch;
  }

  /** Whether present() or cancel() ended the frame, or the chain's close() released it. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * A writable CPU mapping of the buffer (DmabufSync.map), valid until present() or cancel(). EBADF once
   * the chain closed.
   */
  map(): Mapping {
    if (this.#released) throw releasedError('map()');
    if (this.#done) throw usageError('EPERM', 'Frame.map() after present() or cancel(); acquire() a new frame');
    return this.#sync.map(this.buffer.dmaBuf);
  }

  /** The pixels as 32-bit words (0x00RRGGBB), row by row with pitch / 4 words per row; valid until present(). */
  pixels(): Uint32Array {
    const m = this.map();
    return new Uint32Array(m.buffer, this.buffer.offset, (this.buffer.pitch / 4) * this.buffer.height);
  }

  /** @internal Marks the frame ended (present() or cancel()); EBADF once released, EPERM when already ended. */
  end(): DmabufSync {
    if (this.#released) throw releasedError('present()/cancel()');
    if (this.#done) throw usageError('EPERM', 'the frame was already presented or cancelled; acquire() a new one');
    this.#done = true;
    return this.#sync;
  }

  /** Gives the buffer back without showing it (unlocks). EBADF once the chain closed (it released the frame). */
  async cancel(): Promise<void> {
    const sync = this.end();
    try {
      await sync.unlock();
    } finally {
      this.#chain.release(this);
    }
  }

  /**
   * @internal SwapChain.close(): drop the frame's lock and view now, whatever the app still does with it.
   * A frame already ended (present() under way) only becomes unusable; present() cleans up its own lock.
   */
  revoke(errors: unknown[]): void {
    this.#released = true;
    if (this.#done) return;
    this.#done = true;
    // unlock() works synchronously: the locks are released and the views revoked even when it reports an
    // error (e.g. forced). The chain fini()s the sync.
    this.#sync.unlock().catch((err: unknown) => errors.push(err));
  }
}

/** Double or triple buffering on a KmsDisplay. */
export class SwapChain {
  readonly #display: KmsDisplay;
  readonly #buffers: ScanoutBuffer[];
  /** One sync per buffer for the chain's life (get(buffer, 'write')), locked per frame. */
  readonly #syncs: Map<ScanoutBuffer, DmabufSync>;
  readonly #acquired = new Set<ScanoutBuffer>();
  /** Buffers in the order they left the screen: the oldest is reused first. */
  #ring: ScanoutBuffer[];
  #front: ScanoutBuffer | undefined;
  #waiters: Array<() => void> = [];
  /** Frames handed out and not yet presented or cancelled. */
  readonly #frames = new Set<Frame>();
  /** Aborted by close(): pending lock and flip waits of acquire() and present() end at once. */
  readonly #closing = new AbortController();
  #detach: () => void = () => undefined;
  #closed = false;
  #stats: SwapChainStats = { frames: 0, fenceWaits: 0, bufferWaits: 0 };

  private constructor(display: KmsDisplay, buffers: ScanoutBuffer[], syncs: Map<ScanoutBuffer, DmabufSync>) {
    this.#display = display;
    this.#buffers = buffers;
    this.#ring = [...buffers];
    this.#syncs = syncs;
  }

  /**
   * Creates `count` buffers of the display's own memory, or imports `buffers`. The chain owns its scanout
   * buffers (close() closes them); imported dma-bufs stay the caller's.
   */
  static create(display: KmsDisplay, options: SwapChainOptions = {}): SwapChain {
    if (!(display instanceof KmsDisplay)) throw argTypeError('display', 'a KmsDisplay', display);
    if (display.closed) throw closedError('KmsDisplay');
    const imports = options.buffers;
    if (imports !== undefined && (!Array.isArray(imports) || imports.length < 2 || imports.length > 3)) {
      throw argRangeError('options.buffers', 'an array of 2 or 3 DmaBufs', imports);
    }
    const count = imports?.length ?? options.count ?? 2;
    if (count !== 2 && count !== 3) throw argRangeError('options.count', '2 or 3', count);
    const made: ScanoutBuffer[] = [];
    const syncs = new Map<ScanoutBuffer, DmabufSync>();
    try {
      for (let i = 0; i < count; i++) {
        const b = imports ? display.importBuffer(imports[i]!) : display.createBuffer();
        made.push(b);
        const sync = DmabufSync.init({ name: `swap-chain:${b.fbId}`, ...(options.maxHoldMs ? { maxHoldMs: options.maxHoldMs } : {}) });
        syncs.set(b, sync);
        sync.get(b.dmaBuf, 'write');
      }
    } catch (err) {
      for (const sync of syncs.values()) sync.fini();
      for (const b of made) b.close();
      throw err;
    }
    const chain = new SwapChain(display, made, syncs);
    chain.#detach = display.attach(chain);
    return chain;
  }

  /** The display. */
  get display(): KmsDisplay {
    return this.#display;
  }

  /** The chain's buffers. */
  get buffers(): readonly ScanoutBuffer[] {
    return this.#buffers;
  }

  /** Counters since create(). */
  get stats(): SwapChainStats {
    return { ...this.#stats };
  }

  /**
   * A frame to draw: a buffer that is not on screen, locked for CPU write once the display no longer reads
   * it. Rejects with ETIMEDOUT after `timeoutMs` (or AbortError on `signal`) holding nothing, and with
   * EBADF, holding nothing, when close() runs while it waits.
   */
  async acquire(options: WaitOptions = {}): Promise<Frame> {
    if (this.#closed) throw closedError('SwapChain');
    const deadline = deadlineOf(options);
    const signal = options.signal;
    if (signal?.aborted) throw abortError(signal);
    let buffer = this.#take();
    if (!buffer) {
      this.#stats.bufferWaits++;
      buffer = await this.#waitForBuffer(deadline, signal);
    }
    const sync = this.#syncs.get(buffer)!;
    const fenceWaits = sync.stats.fenceWaits;
    const linked = this.#linked(signal);
    try {
      await sync.lock({ signal: linked.signal, timeoutMs: remaining(deadline) });
      if (this.#closed) {
        await sync.unlock();
        throw closedError('SwapChain');
      }
    } catch (err) {
      this.#give(buffer);
      if (this.#closed) this.#finiSync(sync);
      throw this.#closed ? closedError('SwapChain') : err;
    } finally {
      linked.dispose();
    }
    this.#stats.fenceWaits += sync.stats.fenceWaits - fenceWaits;
    const frame = Frame.of(this, buffer, sync);
    this.#frames.add(frame);
    return frame;
  }

  /**
   * Shows a frame: ends its CPU write, locks it for device read, commits the flip (with `inFence`, if any)
   * and resolves with the flip's out-fence (the caller owns it: close it, or `using`). The buffer that was
   * on screen becomes free for acquire() once that fence signals.
   */
  async present(frame: Frame, options: PresentOptions = {}): Promise<SyncFile> {
    if (!(frame instanceof Frame)) throw argTypeError('frame', 'a Frame from acquire()', frame);
    if (this.#closed) throw closedError('SwapChain');
    if (!this.#acquired.has(frame.buffer) || !this.#frames.has(frame)) {
      throw usageError('EINVAL', 'present() of a frame this chain did not hand out (or already presented)');
    }
    const deadline = deadlineOf(options);
    const sync = frame.end();
    this.#frames.delete(frame);
    const linked = this.#linked(options.signal);
    let out: SyncFile | undefined;
    try {
      // The CPU write ends and the display's read begins under the same lock: nobody slips in between.
      await sync.toDeviceRead({ signal: linked.signal, timeoutMs: remaining(deadline) });
      if (this.#closed) throw closedError('SwapChain');
      out = await this.#display.present(frame.buffer, { inFence: options.inFence, signal: linked.signal, timeoutMs: remaining(deadline) });
      // The flip is committed: the display orders itself by the out-fence from here on.
      await sync.unlock();
    } catch (err) {
      out?.close();
      if (sync.state !== 'idle') await sync.unlock().catch(() => undefined);
      this.#give(frame.buffer);
      if (this.#closed) this.#finiSync(sync);
      throw this.#closed ? closedError('SwapChain') : err;
    } finally {
      linked.dispose();
    }
    if (this.#closed) this.#finiSync(sync);
    this.#acquired.delete(frame.buffer);
    const replaced = this.#front;
    this.#front = frame.buffer;
    if (replaced && replaced !== frame.buffer) this.#ring.push(replaced);
    this.#stats.frames++;
    this.#wake();
    return out;
  }

  /** @internal Frame.cancel(): the buffer goes back to the ring. */
  release(frame: Frame): void {
    this.#frames.delete(frame);
    this.#give(frame.buffer);
  }

  /** Whether close() ran (directly, or through the display's close()). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Closes the chain, whatever state it is in; idempotent. Frames still out are released at once: their
   * locks are unlocked and their views revoked (later writes through a view go to scratch memory), and any
   * later use of such a frame is EBADF. A pending acquire() rejects with EBADF holding nothing; a present()
   * under way rejects with EBADF (unless its flip was already committed) after unlocking what it held.
   * Then the chain's scanout buffers are closed. The display stays open; KmsDisplay.close() closes its
   * open chains first.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#detach();
    this.#closing.abort(closedError('SwapChain'));
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
    const errors: unknown[] = [];
    for (const f of this.#frames) f.revoke(errors);
    this.#frames.clear();
    // A sync still locked belongs to a present() under way: it fini()s it when it ends.
    for (const sync of this.#syncs.values()) if (sync.state === 'idle') sync.fini();
    for (const b of this.#buffers) {
      try {
        b.close();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** After close(): ends a buffer's sync once its last user (an acquire() or present() under way) is done. */
  #finiSync(sync: DmabufSync): void {
    if (sync.state === 'idle') sync.fini();
  }

  /** A signal aborted by the caller's `signal` or by close(); dispose() unhooks it. */
  #linked(signal: AbortSignal | undefined): LinkedSignal {
    return linkSignals(signal, this.#closing.signal);
  }

  /** The least recently shown free buffer, marked acquired; undefined if none is free. */
  #take(): ScanoutBuffer | undefined {
    const i = this.#ring.findIndex((b) => b !== this.#front && !this.#acquired.has(b));
    if (i < 0) return undefined;
    const [b] = this.#ring.splice(i, 1) as [ScanoutBuffer];
    this.#acquired.add(b);
    return b;
  }

  #give(buffer: ScanoutBuffer): void {
    if (!this.#acquired.delete(buffer)) return;
    this.#ring.unshift(buffer);
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Waits (no polling: woken by present/cancel) until a buffer is free, then takes it. */
  #waitForBuffer(deadline: number, signal: AbortSignal | undefined): Promise<ScanoutBuffer> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        cancelTimer();
        signal?.removeEventListener('abort', onAbort);
        this.#waiters = this.#waiters.filter((w) => w !== tryTake);
      };
      const tryTake = (): void => {
        if (this.#closed) {
          cleanup();
          reject(closedError('SwapChain'));
          return;
        }
        const b = this.#take();
        if (b) {
          cleanup();
          resolve(b);
        } else this.#waiters.push(tryTake);
      };
      const onAbort = (): void => {
        cleanup();
        reject(abortError(signal!));
      };
      const cancelTimer = setDeadlineTimer(deadline, () => {
        cleanup();
        reject(timeoutError('a swap-chain buffer (every buffer is on screen or acquired: present() one)'));
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(tryTake);
    });
  }
}
