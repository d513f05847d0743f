/**
 * A V4L2 device node (camera, video output, mem2mem): capabilities, formats, controls by name, inputs and
 * outputs, buffers (MMAP with EXPBUF → DmaBuf, or DMABUF importing any DmaBuf), QBUF/DQBUF and streaming.
 * Kernel layer only: no locks here. Waits go through libuv on the device fd (the node is opened
 * O_NONBLOCK), never a blocked event loop. Which lock a queued buffer takes is lib/sync/device-hold.ts.
 */
import * as fs from 'node:fs';
import { DmaBuf } from './dma-buf';
import { waitFdReady, type WaitOptions } from './fd-wait';
import { native } from './native';
import { OwnedFd } from './owned-fd';
import { v4l2, type V4l2Constants, type V4l2FrameInterval, type V4l2BufferRange, type V4l2BufferInfo, type V4l2Capability, type V4l2Control, type V4l2Event, type V4l2Format, type V4l2FormatDesc, type V4l2Io } from './v4l2-native';
import { DmabufError, argRangeError, argTypeError, fromNative, kernelCall, optionsOf } from '../errors';

export type { V4l2BufferInfo, V4l2BufferPlane, V4l2PlaneFormat, V4l2Constants, V4l2FrameInterval, V4l2BufferRange, V4l2Capability, V4l2Control, V4l2Event, V4l2Format, V4l2FormatDesc, V4l2Io } from './v4l2-native';

/** Which node to open: a path, or the first /dev/video* whose driver and capabilities match. */
export interface V4l2OpenOptions {
  /** A device node such as '/dev/video0'. */
  path?: string;
  /** The driver name VIDIOC_QUERYCAP reports, e.g. 'vivid'. */
  driver?: string;
  /** V4L2_CAP_* bits the node must have (device_caps), e.g. V4l2Device.constants.V4L2_CAP_VIDEO_CAPTURE. */
  capabilities?: number;
}

/** A buffer queue of a device: its type (capture/output, single/multi-planar) and memory (MMAP/DMABUF). */
export type V4l2Queue = 'capture' | 'output' | 'capture-mplane' | 'output-mplane';

/** The memory a queue's buffers live in. */
export type V4l2Memory = 'mmap' | 'dmabuf';

/** The V4L2 buffer type number of a queue name. */
export function bufType(queue: V4l2Queue): number {
  const c = v4l2.constants;
  switch (queue) {
    case 'capture':
      return c.V4L2_BUF_TYPE_VIDEO_CAPTURE;
    case 'output':
      return c.V4L2_BUF_TYPE_VIDEO_OUTPUT;
    case 'capture-mplane':
      return c.V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
    case 'output-mplane':
      return c.V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
    default:
      throw argTypeError('queue', "'capture', 'output', 'capture-mplane' or 'output-mplane'", queue);
  }
}

/** Whether the device writes a queue's buffers (capture) or reads them (output). */
export function isCaptureQueue(queue: V4l2Queue): boolean {
  bufType(queue);
  return queue === 'capture' || queue === 'capture-mplane';
}

function memoryOf(memory: V4l2Memory): number {
  if (memory === 'mmap') return v4l2.constants.V4L2_MEMORY_MMAP;
  if (memory === 'dmabuf') return v4l2.constants.V4L2_MEMORY_DMABUF;
  throw argTypeError('memory', "'mmap' or 'dmabuf'", memory);
}

/** A FourCC string ('XR24') as the V4L2 pixel format number. */
export function fourcc(code: string): number {
  if (typeof code !== 'string' || code.length !== 4) throw argTypeError('code', 'a four-character code such as "XR24"', code);
  return (code.charCodeAt(0) | (code.charCodeAt(1) << 8) | (code.charCodeAt(2) << 16) | (code.charCodeAt(3) << 24)) >>> 0;
}

/** What to put into a queued buffer. */
export interface V4l2QueueOptions {
  /** For 'dmabuf' memory: the buffer (one per plane) the device reads or writes. */
  dmabufs?: DmaBuf[];
  /** For output queues: the bytes of each plane that hold data (default: the whole plane). */
  bytesused?: number[];
}

/** An open V4L2 device node. Closed exactly once (close() or `using`); closing stops its streams. */
export class V4l2Device {
  readonly #fd: OwnedFd;
  readonly #path: string;
  readonly #caps: V4l2Capability;

  private constructor(fd: OwnedFd, path: string, caps: V4l2Capability) {
    this.#fd = fd;
    this.#path = path;
    this.#caps = caps;
  }

  /** The V4L2 numbers (buffer types, capability bits, pixel formats) from the kernel headers. */
  static get constants(): Readonly<V4l2Constants> {
    return v4l2.constants;
  }

  /**
   * Opens a V4L2 node by path, or the first /dev/video* matching `driver` and `capabilities`.
   * Throws ENOTTY for a node that is not a V4L2 device, ENOENT when no node matches.
   */
  static open(options: V4l2OpenOptions = {}): V4l2Device {
    const o = optionsOf(options);
    if (o.path !== undefined && typeof o.path !== 'string') throw argTypeError('options.path', 'a device path', o.path);
    if (o.driver !== undefined && typeof o.driver !== 'string') throw argTypeError('options.driver', 'a driver name', o.driver);
    if (o.capabilities !== undefined && (typeof o.capabilities !== 'number' || !Number.isInteger(o.capabilities) || o.capabilities < 0)) {
      throw argTypeError('options.capabilities', 'V4L2_CAP_* bits', o.capabilities);
    }
    if (o.path !== undefined) {
      const dev = V4l2Device.#openPath(o.path);
      if (!dev.#matches(o)) {
        dev.close();
        throw new DmabufError('ENODEV', `${o.path} is driver '${dev.#caps.driver}' without the requested capabilities`);
      }
      return dev;
    }
    let nodes: string[] = [];
    try {
      nodes = fs.readdirSync('/dev').filter((n) => /^video\d+$/.test(n)).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
    } catch {
      // No /dev: no node.
    }
    for (const n of nodes) {
      let dev: V4l2Device;
      try {
        dev = V4l2Device.#openPath(`/dev/${n}`);
      } catch {
        continue;
      }
      if (dev.#matches(o)) return dev;
      dev.close();
    }
    throw new DmabufError(
      'ENOENT',
      `no V4L2 node${o.driver ? ` of driver '${o.driver}'` : ''}${o.capabilities ? ` with capabilities 0x${o.capabilities.toString(16)}` : ''} ` +
        `among /dev/video* — load the driver (e.g. modprobe vivid) or pass options.path`,
    );
  }

  static #openPath(path: string): V4l2Device {
    const fd = new OwnedFd(kernelCall(`opening ${path}`, () => v4l2.v4l2Open(path)), `V4l2Device ${path}`);
    try {
      const caps = v4l2.v4l2QueryCap(fd.fd);
      return new V4l2Device(fd, path, caps);
    } catch (err) {
      fd.close();
      if ((err as { code?: string }).code === 'ENOTTY') {
        throw new DmabufError('ENOTTY', `${path} is not a V4L2 device (VIDIOC_QUERYCAP: ENOTTY) — open a /dev/video* node`, {
          cause: err,
          errno: 25,
          syscall: 'ioctl(VIDIOC_QUERYCAP)',
        });
      }
      throw fromNative(err, `V4l2Device.open(${path})`);
    }
  }

  #matches(o: Partial<V4l2OpenOptions>): boolean {
    if (o.driver !== undefined && this.#caps.driver !== o.driver) return false;
    if (o.capabilities !== undefined && (this.#caps.deviceCaps & o.capabilities) !== o.capabilities) return false;
    return true;
  }

  #call<T>(what: string, fn: (fd: number) => T): T {
    const fd = this.#fd.fd; // EBADF once closed
    return kernelCall(`V4l2Device(${this.#path}).${what}`, () => fn(fd));
  }

  /** The node's path. */
  get path(): string {
    return this.#path;
  }

  /** The device fd (valid until close()); do not close it. */
  get fd(): number {
    return this.#fd.fd;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd.closed;
  }

  /** VIDIOC_QUERYCAP's answer, read at open. */
  get capability(): V4l2Capability {
    return { ...this.#caps };
  }

  /** The pixel formats a queue offers. */
  formats(queue: V4l2Queue): V4l2FormatDesc[] {
    const type = bufType(queue);
    return this.#call('formats', (fd) => v4l2.v4l2EnumFmt(fd, type));
  }

  /** A queue's current format. */
  format(queue: V4l2Queue): V4l2Format {
    const type = bufType(queue);
    return this.#call('format', (fd) => v4l2.v4l2GetFmt(fd, type));
  }

  /**
   * Sets a queue's format (VIDIOC_S_FMT) and returns what the driver chose. With `exact` (the default) a
   * driver that adjusts the size or pixel format is an EINVAL naming both; the format stays as set.
   */
  setFormat(queue: V4l2Queue, format: { width: number; height: number; pixelformat: number | string }, options?: { exact?: boolean }): V4l2Format {
    const type = bufType(queue);
    if (format === null || typeof format !== 'object') throw argTypeError('format', '{width, height, pixelformat}', format);
    const pixelformat = typeof format.pixelformat === 'string' ? fourcc(format.pixelformat) : format.pixelformat;
    const exact = optionsOf(options).exact ?? true;
    const want = { width: format.width, height: format.height, pixelformat };
    const got = this.#call('setFormat', (fd) => v4l2.v4l2SetFmt(fd, type, want, false));
    if (exact && (got.width !== want.width || got.height !== want.height || got.pixelformat !== want.pixelformat)) {
      throw new DmabufError(
        'EINVAL',
        `${this.#path} refused format ${want.width}x${want.height} ${fourccName(want.pixelformat)} on its ${queue} queue ` +
          `(it offers ${got.width}x${got.height} ${fourccName(got.pixelformat)}); pick one of formats('${queue}') or pass {exact: false}`,
      );
    }
    return got;
  }

  /** Sets the frame interval (VIDIOC_S_PARM), e.g. 1/60 s; returns the interval the driver chose. */
  setFrameInterval(queue: V4l2Queue, numerator: number, denominator: number): V4l2FrameInterval {
    const type = bufType(queue);
    for (const [name, v] of [['numerator', numerator], ['denominator', denominator]] as const) {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw argTypeError(name, 'a positive integer', v);
      if (v < 1 || v > 0xffffffff) throw argRangeError(name, 'a positive integer', v);
    }
    return this.#call('setFrameInterval', (fd) => v4l2.v4l2SetParm(fd, type, numerator, denominator));
  }

  /** Every control of the device. */
  controls(): V4l2Control[] {
    return this.#call('controls', (fd) => v4l2.v4l2QueryControls(fd));
  }

  #control(name: string): V4l2Control {
    if (typeof name !== 'string') throw argTypeError('name', 'a control name', name);
    const c = this.controls().find((x) => x.name === name);
    if (!c) throw new DmabufError('EINVAL', `${this.#path} has no control named '${name}'; see controls()`);
    return c;
  }

  /** A control's value, by name (as controls() lists it). */
  getControl(name: string): number {
    const c = this.#control(name);
    return this.#call(`getControl(${name})`, (fd) => v4l2.v4l2GetCtrl(fd, c.id));
  }

  /** Sets a control by name; returns the value the driver kept. */
  setControl(name: string, value: number): number {
    const c = this.#control(name);
    return this.#call(`setControl(${name})`, (fd) => v4l2.v4l2SetCtrl(fd, c.id, value));
  }

  /** The device's inputs (VIDIOC_ENUMINPUT). */
  inputs(): V4l2Io[] {
    return this.#call('inputs', (fd) => v4l2.v4l2EnumIo(fd, false));
  }

  /** The device's outputs (VIDIOC_ENUMOUTPUT). */
  outputs(): V4l2Io[] {
    return this.#call('outputs', (fd) => v4l2.v4l2EnumIo(fd, true));
  }

  /** Selects an input (VIDIOC_S_INPUT). */
  setInput(index: number): void {
    this.#call('setInput', (fd) => v4l2.v4l2SetIo(fd, false, index));
  }

  /** Selects an output (VIDIOC_S_OUTPUT). */
  setOutput(index: number): void {
    this.#call('setOutput', (fd) => v4l2.v4l2SetIo(fd, true, index));
  }

  /** Allocates (MMAP) or reserves (DMABUF) `count` buffers on a queue (VIDIOC_REQBUFS); 0 frees them. Returns the count granted. */
  requestBuffers(queue: V4l2Queue, memory: V4l2Memory, count: number): number {
    const type = bufType(queue);
    const mem = memoryOf(memory);
    return this.#call('requestBuffers', (fd) => v4l2.v4l2ReqBufs(fd, type, mem, count));
  }

  /** Adds `count` buffers for the current format (VIDIOC_CREATE_BUFS); returns the first new index and the count. */
  createBuffers(queue: V4l2Queue, memory: V4l2Memory, count: number): V4l2BufferRange {
    const type = bufType(queue);
    const mem = memoryOf(memory);
    return this.#call('createBuffers', (fd) => v4l2.v4l2CreateBufs(fd, type, mem, count));
  }

  /** A buffer's state (VIDIOC_QUERYBUF). */
  queryBuffer(queue: V4l2Queue, memory: V4l2Memory, index: number): V4l2BufferInfo {
    const type = bufType(queue);
    const mem = memoryOf(memory);
    return this.#call('queryBuffer', (fd) => v4l2.v4l2QueryBuf(fd, type, mem, index));
  }

  /** Exports an MMAP buffer's plane as a dma-buf (VIDIOC_EXPBUF); the DmaBuf is the caller's to close. */
  exportBuffer(queue: V4l2Queue, index: number, plane = 0): DmaBuf {
    const type = bufType(queue);
    return DmaBuf.adopt(this.#call('exportBuffer', (fd) => v4l2.v4l2ExpBuf(fd, type, index, plane)));
  }

  /**
   * Queues a buffer (VIDIOC_QBUF) with no lock: the device owns it until dequeued. Prefer the sync layer
   * (DeviceHold), which locks it on the device's behalf. EINVAL for a buffer already queued.
   */
  queueBuffer(queue: V4l2Queue, memory: V4l2Memory, index: number, options?: V4l2QueueOptions): void {
    const type = bufType(queue);
    const mem = memoryOf(memory);
    const o = optionsOf(options);
    if (o.dmabufs !== undefined && (!Array.isArray(o.dmabufs) || !o.dmabufs.every((b) => b instanceof DmaBuf))) {
      throw argTypeError('options.dmabufs', 'an array of DmaBuf', o.dmabufs);
    }
    const fds = o.dmabufs ? o.dmabufs.map((b) => b.fd) : null;
    this.#call(`queueBuffer(${queue} #${index})`, (fd) => v4l2.v4l2Qbuf(fd, type, mem, index, fds, o.bytesused ?? null));
  }

  /** Dequeues a finished buffer if there is one (VIDIOC_DQBUF, non-blocking), else null. */
  tryDequeue(queue: V4l2Queue, memory: V4l2Memory): V4l2BufferInfo | null {
    const type = bufType(queue);
    const mem = memoryOf(memory);
    return this.#call(`dequeue(${queue})`, (fd) => v4l2.v4l2Dqbuf(fd, type, mem));
  }

  /**
   * Resolves with the next finished buffer of a queue, waiting through libuv on the device fd. Rejects
   * EINVAL when nothing is queued or the queue is not streaming (the device reports POLLERR), ETIMEDOUT at
   * the deadline.
   */
  async dequeue(queue: V4l2Queue, memory: V4l2Memory, options?: WaitOptions): Promise<V4l2BufferInfo> {
    for (;;) {
      const b = this.tryDequeue(queue, memory);
      if (b) return b;
      const pollEvents = isCaptureQueue(queue) ? native.constants.POLLIN : native.constants.POLLOUT;
      try {
        await waitFdReady(this.#fd.fd, pollEvents, `a ${queue} buffer of ${this.#path}`, options);
      } catch (err) {
        if ((err as { code?: string }).code === 'EIO') {
          throw new DmabufError('EINVAL', `${this.#path}: nothing to dequeue on its ${queue} queue (no buffer queued, or not streaming) — queue a buffer and streamOn('${queue}') first`, { cause: err });
        }
        throw err;
      }
    }
  }

  /** Starts a queue (VIDIOC_STREAMON). */
  streamOn(queue: V4l2Queue): void {
    const type = bufType(queue);
    this.#call('streamOn', (fd) => v4l2.v4l2Stream(fd, type, true));
  }

  /** Stops a queue (VIDIOC_STREAMOFF): every queued buffer returns to user space, not dequeued. */
  streamOff(queue: V4l2Queue): void {
    const type = bufType(queue);
    this.#call('streamOff', (fd) => v4l2.v4l2Stream(fd, type, false));
  }

  /** Subscribes to an event type (e.g. V4L2_EVENT_SOURCE_CHANGE, V4L2_EVENT_EOS). */
  subscribeEvent(type: number, id = 0): void {
    this.#call('subscribeEvent', (fd) => v4l2.v4l2SubscribeEvent(fd, type, id));
  }

  /** The next pending event, or null (VIDIOC_DQEVENT). */
  tryDequeueEvent(): V4l2Event | null {
    return this.#call('dequeueEvent', (fd) => v4l2.v4l2DqEvent(fd));
  }

  /** Closes the device: the kernel stops its streams and frees MMAP buffers not exported. Idempotent. */
  close(): void {
    this.#fd.close();
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A pixel format number as its FourCC string. */
export function fourccName(pixelformat: number): string {
  return String.fromCharCode(pixelformat & 0xff, (pixelformat >>> 8) & 0xff, (pixelformat >>> 16) & 0xff, (pixelformat >>> 24) & 0x7f);
}
