/**
 * Devices take our locks: a buffer queued to a V4L2 device is locked on the device's behalf — for write on
 * a capture queue, for read on an output queue — from before VIDIOC_QBUF until VIDIOC_DQBUF, through the
 * same ww locks every DmabufSync user takes (one DmabufSync, so one acquire context, per queued buffer: a
 * device finishes buffers one by one, and one context per buffer lets each be released at its own DQBUF;
 * docs/design.md argues it). The lock also waits for the buffer's implicit fences, since V4L2 does not.
 * STREAMOFF and close() release every hold; a dead process's holds are recovered by the lock store.
 */
import { DmaBuf } from '../kernel/dma-buf';
import type { WaitOptions } from '../kernel/fd-wait';
import { isCaptureQueue, type V4l2BufferInfo, type V4l2Device, type V4l2Memory, type V4l2Queue } from '../kernel/v4l2-device';
import { DmabufError, argTypeError, optionsOf } from '../errors';
import { DmabufSync, type DmabufSyncOptions } from './dmabuf-sync';

/** Options of DeviceQueue. */
export interface DeviceQueueOptions extends Pick<DmabufSyncOptions, 'domain' | 'group' | 'wwClass'> {
  /**
   * Watchdog bound on one device hold, in ms (default 10 000): how long a buffer may stay queued, from QBUF
   * to DQBUF. A queue of N buffers at F frames/s holds each for about N/F s (longer before STREAMON); past
   * the bound the watchdog forces the hold off and other users may lock the buffer while the device still
   * owns it. Raise it for deep queues, slow frame rates or buffers queued long before STREAMON.
   */
  maxHoldMs?: number;
  /** The memory of the queue's buffers (default 'mmap': the device allocates them and exports dma-bufs). */
  memory?: V4l2Memory;
}

/** A dequeued buffer: its index, its dma-buf and what the device reported. */
export interface DequeuedBuffer {
  /** Buffer index on its queue. */
  index: number;
  /** The buffer (owned by the queue: do not close it). */
  buf: DmaBuf;
  /** What DQBUF reported. */
  info: V4l2BufferInfo;
}

/**
 * One queue of a V4L2 device whose buffers are dma-bufs locked on the device's behalf while queued.
 * MMAP: `allocate(n)` exports each buffer; DMABUF: `attach(bufs)` imports the caller's.
 */
export class DeviceQueue {
  readonly #dev: V4l2Device;
  readonly #queue: V4l2Queue;
  readonly #memory: V4l2Memory;
  readonly #syncOptions: DmabufSyncOptions;
  readonly #bufs: DmaBuf[] = [];
  readonly #holds = new Map<number, DmabufSync>();
  #owned = false;

  /** A queue of `dev`; no buffers yet. */
  constructor(dev: V4l2Device, queue: V4l2Queue, options?: DeviceQueueOptions) {
    const o = optionsOf(options);
    isCaptureQueue(queue); // checks the name
    this.#dev = dev;
    this.#queue = queue;
    this.#memory = o.memory ?? 'mmap';
    this.#syncOptions = { domain: o.domain, group: o.group, wwClass: o.wwClass, maxHoldMs: o.maxHoldMs };
  }

  /** What the device does to a queued buffer: 'write' (capture) or 'read' (output). */
  get access(): 'write' | 'read' {
    return isCaptureQueue(this.#queue) ? 'write' : 'read';
  }

  /** The queue's buffers, by index. */
  get buffers(): readonly DmaBuf[] {
    return this.#bufs;
  }

  /** Indices of the buffers queued (held on the device's behalf). */
  get queued(): number[] {
    return [...this.#holds.keys()];
  }

  /** MMAP: allocates `count` buffers and exports each as a DmaBuf (owned by this queue). */
  allocate(count: number): readonly DmaBuf[] {
    if (this.#memory !== 'mmap') throw new DmabufError('EINVAL', "allocate() is for 'mmap' queues; use attach() for 'dmabuf'");
    if (this.#bufs.length) throw new DmabufError('EBUSY', `this queue already has ${this.#bufs.length} buffers; close() it first`);
    const n = this.#dev.requestBuffers(this.#queue, 'mmap', count);
    try {
      for (let i = 0; i < n; i++) this.#bufs.push(this.#dev.exportBuffer(this.#queue, i));
    } catch (err) {
      // Nothing kept: the exported dma-bufs closed, the device's buffers freed.
      this.#closeBufs();
      this.#freeDeviceBuffers();
      throw err;
    }
    this.#owned = true;
    return this.#bufs;
  }

  /** DMABUF: reserves one slot per buffer; the queue keeps its own dup of each. */
  attach(bufs: DmaBuf[]): void {
    if (this.#memory !== 'dmabuf') throw new DmabufError('EINVAL', "attach() is for 'dmabuf' queues; use allocate() for 'mmap'");
    if (!Array.isArray(bufs) || bufs.length === 0 || !bufs.every((b) => b instanceof DmaBuf)) throw argTypeError('bufs', 'a non-empty array of DmaBuf', bufs);
    if (this.#bufs.length) throw new DmabufError('EBUSY', `this queue already has ${this.#bufs.length} buffers; close() it first`);
    const n = this.#dev.requestBuffers(this.#queue, 'dmabuf', bufs.length);
    if (n < bufs.length) {
      this.#freeDeviceBuffers(); // nothing kept: the slots it did grant go back
      throw new DmabufError('ENOMEM', `${this.#dev.path} granted ${n} of ${bufs.length} buffer slots — attach at most ${n} buffers`);
    }
    for (const b of bufs) this.#bufs.push(b.dup());
    this.#owned = true;
  }

  /**
   * Queues buffer `index` once it is ours to give: locks it for the device (write on capture, read on
   * output), waiting for other holders and for its device fences, then QBUF. The hold lasts until it is
   * dequeued or the stream stops. A failed QBUF releases the hold.
   */
  async queue(index: number, options?: WaitOptions & { bytesused?: number[] }): Promise<void> {
    const buf = this.#bufs[index];
    if (!buf) throw new DmabufError('EINVAL', `no buffer ${String(index)} on this queue (it has ${this.#bufs.length})`);
    if (this.#holds.has(index)) throw new DmabufError('EBUSY', `buffer ${index} is already queued to ${this.#dev.path}; dequeue it first`);
    const o = optionsOf(options);
    const sync = await DmabufSync.single(buf, this.access, {
      ...this.#syncOptions,
      name: `v4l2 ${this.#dev.path} ${this.#queue} #${index}`,
      cpu: false,
      timeoutMs: o.timeoutMs,
      signal: o.signal,
    });
    if (this.#holds.has(index)) {
      await sync.unlock().finally(() => sync.fini());
      throw new DmabufError('EBUSY', `buffer ${index} was queued meanwhile`);
    }
    try {
      this.#dev.queueBuffer(this.#queue, this.#memory, index, { dmabufs: this.#memory === 'dmabuf' ? [buf] : undefined, bytesused: o.bytesused });
    } catch (err) {
      await sync.unlock().catch(() => undefined);
      sync.fini();
      throw err;
    }
    this.#holds.set(index, sync);
  }

  /** Waits for the device to finish a buffer (DQBUF) and releases the device's hold on it. */
  async dequeue(options?: WaitOptions): Promise<DequeuedBuffer> {
    const info = await this.#dev.dequeue(this.#queue, this.#memory, options);
    await this.#release(info.index);
    return { index: info.index, buf: this.#bufs[info.index] as DmaBuf, info };
  }

  async #release(index: number): Promise<void> {
    const sync = this.#holds.get(index);
    if (!sync) return;
    this.#holds.delete(index);
    try {
      await sync.unlock();
    } finally {
      sync.fini();
    }
  }

  /** Starts the queue (STREAMON). */
  streamOn(): void {
    this.#dev.streamOn(this.#queue);
  }

  /** STREAMOFF: the device gives every queued buffer back; their holds are released. */
  async streamOff(): Promise<void> {
    const errors: unknown[] = [];
    try {
      if (!this.#dev.closed) this.#dev.streamOff(this.#queue);
    } catch (err) {
      errors.push(err);
    }
    for (const i of [...this.#holds.keys()]) await this.#release(i).catch((err: unknown) => errors.push(err));
    if (errors.length) throw errors[0];
  }

  /** Stops the stream, frees the device's buffers and closes this queue's dma-bufs. Idempotent. */
  async close(): Promise<void> {
    await this.streamOff().catch(() => undefined);
    if (this.#owned) this.#freeDeviceBuffers();
    this.#owned = false;
    this.#closeBufs();
  }

  /** REQBUFS 0: the device frees this queue's buffers (and no longer counts the queue as this file's). */
  #freeDeviceBuffers(): void {
    if (this.#dev.closed) return; // its buffers went with it
    try {
      this.#dev.requestBuffers(this.#queue, this.#memory, 0);
    } catch {
      // The device is gone or refuses (still streaming elsewhere): closing its fd frees them.
    }
  }

  /** Same as close(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #closeBufs(): void {
    for (const b of this.#bufs.splice(0)) b.close();
  }
}

/** A captured frame locked for CPU read; release() gives it back to the camera. */
export interface CapturedFrame {
  /** Buffer index on its queue. */
  index: number;
  /** The frame's buffer (owned by the queue: do not close it). */
  buf: DmaBuf;
  /** What DQBUF reported (sequence, timestamp, bytes used). */
  info: V4l2BufferInfo;
  /** The CPU read lock (map(buf) for the pixels). */
  sync: DmabufSync;
}

/**
 * Captures frames: `for await (const frame of captureFrames(queue))` yields each dequeued buffer locked for CPU
 * read; the next iteration unlocks it and queues it again, and leaving the loop (return/throw) stops the stream.
 */
export async function* captureFrames(queue: DeviceQueue, options?: WaitOptions & DmabufSyncOptions): AsyncGenerator<CapturedFrame, void, undefined> {
  const o = optionsOf(options);
  for (let i = 0; i < queue.buffers.length; i++) if (!queue.queued.includes(i)) await queue.queue(i, o);
  queue.streamOn();
  try {
    for (;;) {
      const d = await queue.dequeue(o);
      const sync = await DmabufSync.single(d.buf, 'read', { domain: o.domain, group: o.group, wwClass: o.wwClass, maxHoldMs: o.maxHoldMs, name: `v4l2 frame #${d.index}` });
      try {
        yield { ...d, sync };
      } finally {
        if (sync.locked) await sync.unlock().catch(() => undefined);
        sync.fini();
      }
      await queue.queue(d.index, o);
    }
  } finally {
    await queue.streamOff();
  }
}
