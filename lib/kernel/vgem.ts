/**
 * vgem: the kernel's virtual GEM driver, a software "GPU" with real dma-bufs and real dma_fences that user
 * space can attach to a buffer and signal. Tests, the demo and the benchmarks use it as the device side of
 * a pipeline: a fence attached for write is a device job writing the buffer until it is signalled. vgem
 * signals a fence by itself after 10 s if nobody does. Needs the vgem module (/dev/dri/card* with driver
 * 'vgem') and an addon built with the DRM UAPI headers.
 */
import * as fs from 'node:fs';
import { native } from './native';
import { argRangeError, argTypeError, closedError, DmabufError, kernelCall } from '../errors';
import { OwnedFd } from './owned-fd';
import { DmaBuf } from './dma-buf';
import { checkAccess, writes, type Access } from './access';

/** A fence attached to a vgem buffer: a pending device job until signal(). */
export class VgemFence {
  readonly #device: VgemDevice;
  /** vgem's fence id. */
  readonly id: number;
  #signaled = false;

  private constructor(device: VgemDevice, id: number) {
    this.#device = device;
    this.id = id;
  }

  /** @internal A fence vgem attached with id `id` (VgemBuffer.attachFence() is the public way). */
  static of(device: VgemDevice, id: number): VgemFence {
    return new VgemFence(device, id);
  }

  /** Signals the fence (the device job completes). Signalling twice throws ENOENT from the kernel. */
  signal(): void {
    kernelCall('VgemFence.signal', () => native.vgemFenceSignal(this.#device.fd, this.id));
    this.#signaled = true;
  }

  /** Whether signal() was called through this object. */
  get signaled(): boolean {
    return this.#signaled;
  }
}

/** A vgem buffer object: its GEM handle and its dma-buf. */
export class VgemBuffer {
  readonly #device: VgemDevice;
  /** The GEM handle on the device. */
  readonly handle: number;
  /** The PRIME-exported dma-buf. Closed by close(). */
  readonly dmaBuf: DmaBuf;
  #closed = false;

  private constructor(device: VgemDevice, handle: number, dmaBuf: DmaBuf) {
    this.#device = device;
    this.handle = handle;
    this.dmaBuf = dmaBuf;
  }

  /** @internal A buffer object `handle` of `device` and its exported dma-buf (VgemDevice.createBuffer() is the public way). */
  static of(device: VgemDevice, handle: number, dmaBuf: DmaBuf): VgemBuffer {
    return new VgemBuffer(device, handle, dmaBuf);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Attaches a fence to the buffer, as a device job that reads ('read') or writes ('write'/'rw') it. EBADF
   * once the buffer or its device is closed; EBUSY (vgem's rule) while a conflicting fence is unsignalled: a
   * write fence needs every earlier fence signalled, a read fence every earlier write fence.
   */
  attachFence(access: Access): VgemFence {
    checkAccess(access);
    // The handle is gone after close(), and the device may have given its number to a newer buffer.
    if (this.#closed) throw closedError('VgemBuffer');
    const id = kernelCall('VgemBuffer.attachFence', () => native.vgemFenceAttach(this.#device.fd, this.handle, writes(access)));
    return VgemFence.of(this.#device, id);
  }

  /**
   * Closes the dma-buf and the GEM handle; idempotent. Closing the handle once only matters: the device
   * reuses handle numbers, so a second GEM_CLOSE could close a newer buffer's handle.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.dmaBuf.close();
    if (!this.#device.closed) kernelCall('VgemBuffer.close', () => native.drmGemClose(this.#device.fd, this.handle));
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** An open vgem device node. */
export class VgemDevice {
  readonly #fd: OwnedFd;
  /** The device node path, e.g. /dev/dri/card0. */
  readonly path: string;

  private constructor(fd: OwnedFd, path: string) {
    this.#fd = fd;
    this.path = path;
  }

  /** Opens the first /dev/dri/card* whose driver is vgem. Throws ENODEV when there is none. */
  static open(): VgemDevice {
    let nodes: string[] = [];
    try {
      nodes = fs.readdirSync('/dev/dri').filter((n) => /^card\d+$/.test(n)).map((n) => `/dev/dri/${n}`);
    } catch {
      // No DRM at all: fall through to ENODEV.
    }
    for (const node of nodes) {
      const fd = new OwnedFd(kernelCall(`opening ${node}`, () => native.openDevice(node)), 'VgemDevice');
      if (native.drmDriverName(fd.fd) === 'vgem') return new VgemDevice(fd, node);
      fd.close();
    }
    throw new DmabufError('ENODEV', 'no vgem device in /dev/dri: load the module with "modprobe vgem" (needs CONFIG_DRM_VGEM)');
  }

  /** @internal */
  get fd(): number {
    return this.#fd.fd;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd.closed;
  }

  /** Creates a buffer of at least `size` bytes (a dumb bo, 4 bytes per pixel) and exports it as a dma-buf. */
  createBuffer(size: number): VgemBuffer {
    if (typeof size !== 'number') throw argTypeError('size', 'a number of bytes', size);
    if (!Number.isInteger(size) || size <= 0 || size > 2 ** 31) {
      throw argRangeError('size', 'a positive integer number of bytes up to 2 GiB', size);
    }
    const width = 1024;
    const height = Math.ceil(size / (width * 4));
    const bo = kernelCall('VgemDevice.createBuffer', () => native.drmDumbCreate(this.fd, width, height, 32));
    let primeFd: number;
    try {
      primeFd = kernelCall('VgemDevice.createBuffer: PRIME export', () => native.drmPrimeHandleToFd(this.fd, bo.handle));
    } catch (err) {
      native.drmGemClose(this.fd, bo.handle);
      throw err;
    }
    return VgemBuffer.of(this, bo.handle, DmaBuf.adopt(primeFd));
  }

  /** Closes the device fd. Buffers' dma-bufs stay valid until closed. */
  close(): void {
    this.#fd.close();
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
