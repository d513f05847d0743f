/**
 * SyncFile: a kernel sync_file, the fd form of one or more dma_fences (device jobs). It is signalled when
 * every fence in it has signalled. We get them from a dma-buf (EXPORT_SYNC_FILE: "the jobs I must wait for
 * before touching this buffer"), from a device driver (a GPU/codec job's out-fence), or by merging two.
 */
import { native } from './native';
import { argTypeError, closedError, DmabufError, kernelCall } from '../errors';
import { checkFd, OwnedFd } from './owned-fd';
import { waitFdReady, type WaitOptions } from './fd-wait';

/** One fence inside a sync_file, as the kernel reports it. */
export interface FenceInfo {
  /** The fence's timeline name (e.g. a GPU ring). */
  timeline: string;
  /** The driver that created the fence (e.g. 'vgem', 'dma_fence_array'). */
  driver: string;
  /** 'signaled', 'active' or 'error'. */
  status: 'signaled' | 'active' | 'error';
  /** Negative errno when status is 'error'. */
  error?: number;
  /** When it signalled, in ns of CLOCK_MONOTONIC; undefined while active. */
  timestampNs?: bigint;
}

/** What SYNC_IOC_FILE_INFO reports about a sync_file. */
export interface SyncFileInfo {
  /** The sync_file's name (set by its creator or by merge()). */
  name: string;
  /** 'signaled' once every fence has, 'error' if one failed, else 'active'. */
  status: 'signaled' | 'active' | 'error';
  /** The fences inside it. */
  fences: FenceInfo[];
}

function statusName(s: number): 'signaled' | 'active' | 'error' {
  return s > 0 ? 'signaled' : s === 0 ? 'active' : 'error';
}

/** A sync_file fd owned by the library. */
export class SyncFile {
  readonly #fd: OwnedFd;

  private constructor(fd: OwnedFd) {
    this.#fd = fd;
  }

  /** Wraps a sync_file fd the caller owns; the SyncFile keeps its own dup(), so the caller still closes `fd`. */
  static fromFd(fd: number): SyncFile {
    return SyncFile.fromCallerFd(fd, 'fd');
  }

  /** @internal fromFd() for an argument called `name` (named in errors, with the caller's fd number). */
  static fromCallerFd(fd: unknown, name: string): SyncFile {
    const sf = new SyncFile(OwnedFd.dup(checkFd(fd, name), 'SyncFile'));
    try {
      sf.info(); // ENOTTY here means "not a sync_file": fail now, not at first use.
    } catch (err) {
      sf.close();
      const code = (err as { code?: string }).code;
      if (code === 'ENOTTY' || code === 'EINVAL') {
        throw new DmabufError('ENOTTY', `${name} ${fd} is not a sync_file — pass a fence fd from a device driver or DmaBuf.exportSyncFile`, { cause: err });
      }
      throw err;
    }
    return sf;
  }

  /** @internal Takes ownership of an fd the kernel just returned. */
  static adopt(fd: number): SyncFile {
    return new SyncFile(new OwnedFd(fd, 'SyncFile'));
  }

  /** The library's fd (valid until close()); pass it to APIs that take a fence fd, do not close it. */
  get fd(): number {
    return this.#fd.fd;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd.closed;
  }

  /** Another SyncFile for the same fences, holding its own dup() of the fd; close both independently. */
  dup(): SyncFile {
    return new SyncFile(OwnedFd.dup(this.fd, 'SyncFile'));
  }

  /** Whether every fence has signalled, without waiting. */
  isSignaled(): boolean {
    return kernelCall('SyncFile.isSignaled', () => native.pollReady(this.fd, native.constants.POLLIN));
  }

  /**
   * Resolves when every fence has signalled; never blocks the event loop. Rejects with code 'ETIMEDOUT'
   * after `timeoutMs`, with an AbortError when `signal` aborts, and with EBADF once closed (a wait already
   * under way keeps its own dup and still settles).
   */
  wait(options?: WaitOptions): Promise<void> {
    if (this.closed) return Promise.reject(closedError('SyncFile'));
    return waitFdReady(this.fd, native.constants.POLLIN, 'a sync_file to signal', options);
  }

  /** The kernel's view: name, status and each fence's timeline, driver, status and timestamp. */
  info(): SyncFileInfo {
    const raw = kernelCall('SyncFile.info', () => native.syncFileInfo(this.fd));
    return {
      name: raw.name,
      status: statusName(raw.status),
      fences: raw.fences.map((f) => ({
        timeline: f.objName,
        driver: f.driverName,
        status: statusName(f.status),
        ...(f.status < 0 ? { error: f.status } : {}),
        ...(f.status > 0 ? { timestampNs: f.timestampNs } : {}),
      })),
    };
  }

  /** A new SyncFile that signals when both this and `other` have (SYNC_IOC_MERGE). */
  merge(other: SyncFile, name = 'dmabuf-sync'): SyncFile {
    if (!(other instanceof SyncFile)) throw argTypeError('other', 'a SyncFile', other);
    if (typeof name !== 'string') throw argTypeError('name', 'a string', name);
    if (other.closed) throw closedError('the other SyncFile');
    return SyncFile.adopt(kernelCall('SyncFile.merge', () => native.syncFileMerge(this.fd, other.fd, name)));
  }

  /** Closes the library's fd; idempotent. */
  close(): void {
    this.#fd.close();
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
