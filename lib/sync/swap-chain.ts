/**
 * SwapChain: double or triple buffering on a KmsDisplay, through the sync framework. The display is one more
 * device that reads buffers, ordered by real kernel fences:
 *
 *   acquire()  picks a buffer that is neither on screen nor handed out, and locks it for CPU write with
 *              DmabufSync. The lock waits (uv_poll, no busy loop) for the buffer's read fence: the out-fence
 *              of the flip that took it off the screen, which KmsDisplay.present() attached to it. So the app
 *              never draws into a buffer the display still scans out: no tearing.
 *   present()  ends the CPU write, locks the buffer for device read (get with cpu: false, which waits for
 *              pending writers such as a GPU job that drew the frame), commits the flip with the caller's
 *              in-fence, and hands back the flip's out-fence.
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
import { abortError, argRangeError, argTypeError, closedError, timeoutError, usageError } from '../errors';
import { deadlineOf, type WaitOptions } from '../kernel/fd-wait';

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

/** A buffer handed to the app by acquire(): locked for CPU write until present() or cancel(). */
export class Frame {
  readonly #chain: SwapChain;
  readonly #sync: DmabufSync;
  #done = false;
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

  /** Whether present() or cancel() ended the frame. */
  get done(): boolean {
    return this.#done;
  }

  /** A writable CPU mapping of the buffer (DmabufSync.map), valid until present() or cancel(). */
  map(): Mapping {
    if (this.#done) throw usageError('EPERM', 'Frame.map() after present() or cancel(); acquire() a new frame');
    return this.#sync.map(this.buffer.dmaBuf);
  }

  /** The pixels as 32-bit words (0x00RRGGBB), row by row with pitch / 4 words per row; valid until present(). */
  pixels(): Uint32Array {
    const m = this.map();
    return new Uint32Array(m.buffer, this.buffer.offset, (this.buffer.pitch / 4) * this.buffer.height);
  }

  /** @internal Ends the CPU write; the frame's sync is finished. */
  async end(): Promise<void> {
    if (this.#done) throw usageError('EPERM', 'the frame was already presented or cancelled; acquire() a new one');
    this.#done = true;
    try {
      await this.#sync.unlock();
    } finally {
      this.#sync.fini();
    }
  }

  /** Gives the buffer back without showing it (unlocks). */
  async cancel(): Promise<void> {
    await this.end();
    this.#chain.release(this);
  }
}

/** Double or triple buffering on a KmsDisplay. */
export class SwapChain {
  readonly #display: KmsDisplay;
  readonly #buffers: ScanoutBuffer[];
  readonly #maxHoldMs: number | undefined;
  readonly #acquired = new Set<ScanoutBuffer>();
  /** Buffers in the order they left the screen: the oldest is reused first. */
  #ring: ScanoutBuffer[];
  #front: ScanoutBuffer | undefined;
  #waiters: Array<() => void> = [];
  #closed = false;
  #stats: SwapChainStats = { frames: 0, fenceWaits: 0, bufferWaits: 0 };

  private constructor(display: KmsDisplay, buffers: ScanoutBuffer[], maxHoldMs: number | undefined) {
    this.#display = display;
    this.#buffers = buffers;
    this.#ring = [...buffers];
    this.#maxHoldMs = maxHoldMs;
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
    try {
      for (let i = 0; i < count; i++) made.push(imports ? display.importBuffer(imports[i]!) : display.createBuffer());
    } catch (err) {
      for (const b of made) b.close();
      throw err;
    }
    return new SwapChain(display, made, options.maxHoldMs);
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
   * it. Rejects with ETIMEDOUT after `timeoutMs` (or AbortError on `signal`) holding nothing.
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
    const sync = DmabufSync.init({ name: `swap-chain:${buffer.fbId}`, ...(this.#maxHoldMs ? { maxHoldMs: this.#maxHoldMs } : {}) });
    try {
      sync.get(buffer.dmaBuf, 'write');
      await sync.lock({ signal, timeoutMs: remaining(deadline) });
    } catch (err) {
      sync.fini();
      this.#give(buffer);
      throw err;
    }
    this.#stats.fenceWaits += sync.stats.fenceWaits;
    return Frame.of(this, buffer, sync);
  }

  /**
   * Shows a frame: ends its CPU write, locks it for device read, commits the flip (with `inFence`, if any)
   * and resolves with the flip's out-fence (the caller owns it: close it, or `using`). The buffer that was
   * on screen becomes free for acquire() once that fence signals.
   */
  async present(frame: Frame, options: PresentOptions = {}): Promise<SyncFile> {
    if (!(frame instanceof Frame)) throw argTypeError('frame', 'a Frame from acquire()', frame);
    if (this.#closed) throw closedError('SwapChain');
    if (!this.#acquired.has(frame.buffer)) throw usageError('EINVAL', 'present() of a frame this chain did not hand out (or already presented)');
    const deadline = deadlineOf(options);
    await frame.end();
    const read = DmabufSync.init({ name: `display:${frame.buffer.fbId}` });
    let out: SyncFile;
    try {
      read.get(frame.buffer.dmaBuf, 'read', { cpu: false });
      await read.lock({ signal: options.signal, timeoutMs: remaining(deadline) });
      try {
        out = await this.#display.present(frame.buffer, { inFence: options.inFence, signal: options.signal, timeoutMs: remaining(deadline) });
      } finally {
        await read.unlock();
      }
    } catch (err) {
      this.#give(frame.buffer);
      throw err;
    } finally {
      read.fini();
    }
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
    this.#give(frame.buffer);
  }

  /** Closes the chain's scanout buffers (the display stays open). Frames still out are no longer valid. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
    const errors: unknown[] = [];
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
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
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
      if (deadline !== Infinity) {
        timer = setTimeout(() => {
          cleanup();
          reject(timeoutError('a swap-chain buffer (every buffer is on screen or acquired: present() one)'));
        }, Math.max(0, deadline - Date.now()));
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(tryTake);
    });
  }
}
