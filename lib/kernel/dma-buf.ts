/**
 * DmaBuf: a dma-buf the library holds through its own dup() of the fd. Its identity is its inode (two fds,
 * or two processes, naming the same buffer have the same inode), never its fd number. Allocators cover
 * udmabuf (memfd-backed, any Linux host with /dev/udmabuf) and dma-heaps (/dev/dma_heap/<name>, the
 * allocator on ARM boards); DRM drivers export theirs with PRIME and come in through fromFd().
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { native } from './native';
import { argRangeError, argTypeError, DmabufError, fromNative, kernelCall, optionsOf } from '../errors';
import { OwnedFd, checkFd } from './owned-fd';
import { dmaBufInfo } from './fdinfo';
import { Mapping } from './mapping';
import { SyncFile } from './sync-file';
import { checkAccess, syncFlags, type Access } from './access';
import { fencesSignaled, importFence } from './implicit-fences';
import { waitForFences } from './shared-fence-wait';
import { deadlineOf, type WaitOptions } from './fd-wait';

/** The largest size we pass to the kernel; beyond it the numbers would not be exact in JavaScript. */
/** The largest whole number of pages a double holds exactly (sizes are rounded up to pages). */
const MAX_SIZE = Math.floor(Number.MAX_SAFE_INTEGER / native.constants.PAGE_SIZE) * native.constants.PAGE_SIZE;

/** Throws RangeError (ERR_OUT_OF_RANGE) unless `size` is a positive integer; rounds it up to whole pages. */
function checkSize(size: unknown): number {
  if (typeof size !== 'number') throw argTypeError('size', 'a number of bytes', size);
  if (!Number.isInteger(size) || size <= 0 || size > MAX_SIZE) {
    throw argRangeError('size', `a positive integer number of bytes up to ${MAX_SIZE}`, size);
  }
  const page = native.constants.PAGE_SIZE;
  return Math.ceil(size / page) * page;
}

/**
 * ENOMEM for an allocation of `bytes` larger than the machine's RAM, which can never succeed: the system
 * dma-heap allocates (and zeroes) page after page until memory runs out, and the kernel's OOM killer then
 * ends a process (often the caller) instead of the call failing.
 */
function checkFitsInRam(bytes: number, what: string): void {
  const ram = os.totalmem();
  if (bytes > ram) {
    throw new DmabufError('ENOMEM', `${what}: ${bytes} bytes is more than this machine's RAM (${ram} bytes); allocate less`);
  }
}

let closeHook: ((closed: DmaBuf) => void) | undefined;

/**
 * Sets the function DmaBuf.close() calls with the buffer it closed: the sync layer lets go of an idle
 * registration of it there, so that closing your buffer frees it. @internal
 */
export function setDmaBufCloseHook(hook: ((closed: DmaBuf) => void) | undefined): void {
  closeHook = hook;
}

/** A dma-buf held by the library. */
export class DmaBuf {
  readonly #fd: OwnedFd;
  /** Size in bytes, as the exporter reports it. */
  readonly size: number;
  /** The buffer's identity: the inode of the dma-buf file. Same buffer, same inode, in any fd or process. */
  readonly inode: bigint;
  /** The exporting driver ('udmabuf', 'system', 'vgem', …). */
  readonly exporter: string;

  /** @param callerFd the fd the caller passed (named in errors instead of our dup), if any. */
  private constructor(fd: OwnedFd, known?: DmaBuf, callerFd?: number) {
    this.#fd = fd;
    if (known) {
      // A dup of a buffer we already know: same file, same facts; no need to ask the kernel again.
      this.size = known.size;
      this.exporter = known.exporter;
      this.inode = known.inode;
      return;
    }
    try {
      const info = dmaBufInfo(fd.fd, callerFd);
      this.size = info.size;
      this.exporter = info.exporter;
      this.inode = fs.fstatSync(fd.fd, { bigint: true }).ino;
    } catch (err) {
      fd.close();
      throw err;
    }
  }

  /** Another DmaBuf for the same buffer, holding its own dup() of the fd; close both independently. */
  dup(): DmaBuf {
    return new DmaBuf(OwnedFd.dup(this.fd, 'DmaBuf'), this);
  }

  /**
   * Wraps a dma-buf fd the caller owns. The DmaBuf keeps its own dup(), so the caller still closes `fd`.
   * Throws EBADF for a closed fd and ENOTTY for an fd that is not a dma-buf.
   */
  static fromFd(fd: number): DmaBuf {
    checkFd(fd);
    let owned: OwnedFd;
    try {
      owned = OwnedFd.dup(fd, 'DmaBuf');
    } catch (err) {
      if ((err as { code?: string }).code === 'EBADF') {
        throw new DmabufError('EBADF', `fd ${fd} is not open — pass an open dma-buf fd`, { cause: err });
      }
      throw err;
    }
    return new DmaBuf(owned, undefined, fd);
  }

  /** @internal Takes ownership of an fd the kernel just returned. */
  static adopt(fd: number): DmaBuf {
    return new DmaBuf(new OwnedFd(fd, 'DmaBuf'));
  }

  /**
   * Allocates `size` bytes (rounded up to whole pages) through /dev/udmabuf, backed by a sealed memfd.
   * udmabuf caps one buffer at its size_limit_mb module parameter (64 MiB by default).
   */
  static allocUdmabuf(size: number): DmaBuf {
    const bytes = checkSize(size);
    checkFitsInRam(bytes, 'allocating a udmabuf');
    return DmaBuf.adopt(kernelCall(`allocating a ${bytes}-byte udmabuf`, () => native.udmabufCreate(bytes)));
  }

  /** Allocates `size` bytes (rounded up to whole pages) from the dma-heap /dev/dma_heap/<heap>. */
  static allocHeap(size: number, heap = 'system'): DmaBuf {
    const bytes = checkSize(size);
    if (typeof heap !== 'string' || heap === '' || heap.includes('/') || heap === '.' || heap === '..') {
      throw argTypeError('heap', "a dma-heap name such as 'system'", heap);
    }
    checkFitsInRam(bytes, `allocating from /dev/dma_heap/${heap}`);
    return DmaBuf.adopt(kernelCall(`allocating ${bytes} bytes from /dev/dma_heap/${heap}`, () => native.heapAlloc(heap, bytes)));
  }

  /** The library's fd for this buffer (valid until close()): hand it to APIs that take a dma-buf fd; do not close it. */
  get fd(): number {
    return this.#fd.fd;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd.closed;
  }

  /**
   * Maps the whole buffer into this process (MAP_SHARED). Release the mapping when done. A read-only view
   * (`writable: false`) survives a stray store: the store goes to a private copy of the page and the
   * mapping's release() throws EACCES.
   */
  map(options?: { writable?: boolean }): Mapping {
    const writable = optionsOf(options).writable ?? true;
    if (typeof writable !== 'boolean') throw argTypeError('options.writable', 'a boolean', writable);
    return Mapping.open(this.fd, this.size, writable, `dma-buf inode ${this.inode} (${this.exporter})`);
  }

  /** Opens the CPU cache bracket (DMA_BUF_IOCTL_SYNC START) for `access`; pair it with syncEnd(). */
  syncStart(access: Access): void {
    const flags = native.constants.DMA_BUF_SYNC_START | syncFlags(checkAccess(access));
    // Inline try/catch rather than kernelCall(): no closure per call on this hot path.
    try {
      native.dmaBufSync(this.fd, flags);
    } catch (err) {
      throw fromNative(err, 'DmaBuf.syncStart');
    }
  }

  /** Closes the CPU cache bracket (DMA_BUF_IOCTL_SYNC END) for `access`. */
  syncEnd(access: Access): void {
    const flags = native.constants.DMA_BUF_SYNC_END | syncFlags(checkAccess(access));
    try {
      native.dmaBufSync(this.fd, flags);
    } catch (err) {
      throw fromNative(err, 'DmaBuf.syncEnd');
    }
  }

  /**
   * The device fences a task with `access` must wait for, as a SyncFile (EXPORT_SYNC_FILE): for 'read' the
   * pending writers, for 'write'/'rw' every pending job. Throws ENOTTY on kernels before 6.0.
   */
  exportSyncFile(access: Access): SyncFile {
    checkAccess(access);
    return SyncFile.adopt(kernelCall('DmaBuf.exportSyncFile', () => native.exportSyncFile(this.fd, syncFlags(access))));
  }

  /**
   * Attaches a device job's fence (IMPORT_SYNC_FILE): as a write fence for 'write'/'rw' (later readers and
   * writers wait for it), as a read fence for 'read' (later writers wait for it).
   */
  importSyncFile(fence: SyncFile, access: Access): void {
    if (!(fence instanceof SyncFile)) throw argTypeError('fence', 'a SyncFile (wrap an fd with SyncFile.fromFd)', fence);
    importFence(this.fd, fence, checkAccess(access));
  }

  /** Whether no pending device fence conflicts with `access` (no waiting). */
  isIdle(access: Access): boolean {
    return fencesSignaled(this.fd, checkAccess(access));
  }

  /**
   * Resolves when no pending device fence conflicts with `access`: exported sync_file + poll, or a poll on
   * the dma-buf itself on kernels without EXPORT_SYNC_FILE; the waits of one thread on the same buffer share
   * one export and one poll. Never blocks the event loop.
   */
  waitIdle(access: Access, options?: WaitOptions): Promise<void> {
    try {
      checkAccess(access);
      deadlineOf(options);
      return waitForFences(this, access, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Closes the library's fd; idempotent. Mappings stay valid until released (the kernel keeps the buffer). */
  close(): void {
    if (this.#fd.closed) return;
    this.#fd.close();
    closeHook?.(this);
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
