/**
 * The devices' fences on a dma-buf (its reservation object, "implicit sync"). Before the CPU touches a
 * buffer it waits for the jobs that conflict with its access: a reader waits for writers, a writer for
 * everyone. Whether any is pending is one poll() of the dma-bufs (POLLIN: writers done; POLLOUT: all done).
 * To wait, kernels >= 6.0 export those fences as a sync_file (DMA_BUF_IOCTL_EXPORT_SYNC_FILE); older ones
 * answer ENOTTY and we wait on the dma-buf fd itself. The probe runs once per process and is remembered.
 * The waiting itself, shared by the waiters of one buffer, is in shared-fence-wait.ts.
 */
import { native } from './native';
import { DmabufError, fromNative, kernelCall } from '../errors';
import { SyncFile } from './sync-file';
import { syncFlags, writes, type Access } from './access';
import { isDmaBuf } from './fdinfo';

let exportSupported: boolean | undefined = process.env.DMABUF_SYNC_NO_EXPORT === '1' ? false : undefined;

/** Whether EXPORT_SYNC_FILE is used (undefined until the first probe). */
export function exportSyncFileSupported(): boolean | undefined {
  return exportSupported;
}

/** @internal Forces the poll fallback on (false) or re-probes (undefined); for tests and old kernels. */
export function setExportSyncFileSupport(value: boolean | undefined): void {
  exportSupported = value;
}

/**
 * @internal Exports the fences a task with `access` must wait for, as a SyncFile; undefined when the kernel
 * lacks EXPORT_SYNC_FILE (the caller then polls the dma-buf). Other errors throw.
 */
export function exportFences(fd: number, access: Access): SyncFile | undefined {
  if (exportSupported === false) return undefined;
  try {
    const sf = SyncFile.adopt(native.exportSyncFile(fd, syncFlags(access)));
    exportSupported = true;
    return sf;
  } catch (err) {
    if (lacksExport(err, fd)) return undefined;
    throw fromNative(err, 'exporting the fences of a dma-buf');
  }
}

/**
 * The probe: a first export that fails with ENOTTY on a real dma-buf means this kernel has no
 * EXPORT_SYNC_FILE (before 6.0); remember it and poll from now on. Any other failure is the caller's error.
 */
function lacksExport(err: unknown, fd: number): boolean {
  if ((err as { code?: string }).code !== 'ENOTTY' || exportSupported !== undefined || !isDmaBuf(fd)) return false;
  exportSupported = false;
  return true;
}

/** Whether the buffer has no pending fence that conflicts with `access`, without waiting. */
export function fencesSignaled(fd: number, access: Access): boolean {
  // One fd: poll() it directly (the same check as firstPending's, without two typed arrays per call).
  try {
    return native.pollReady(fd, pollEvents(access));
  } catch (err) {
    throw fromNative(err, 'polling dma-bufs for their device fences');
  }
}

/**
 * The index of the first buffer that has a pending fence conflicting with its access, or -1, without
 * waiting: one poll() over all the dma-bufs (`events[i]` is pollEvents(access of i): POLLIN, writers done;
 * POLLOUT, all done), on every kernel. These are the fence sets EXPORT_SYNC_FILE would export, checked in one
 * syscall instead of three per buffer (export, poll, close); the export is kept for waiting, where a
 * sync_file is a fixed set of fences (polling the dma-buf would also wait for fences added meanwhile).
 */
export function firstPending(fds: Int32Array, events: Uint32Array): number {
  return kernelCall('polling dma-bufs for their device fences', () => native.firstUnready(fds, events));
}

/** Attaches a device job's fence: a write fence (exclusive) for a writer, a read fence (shared) for a reader. */
export function importFence(fd: number, fence: SyncFile, access: Access): void {
  if (fence.closed) throw new DmabufError('EBADF', 'the fence SyncFile is closed; pass an open one');
  kernelCall('importing a fence into a dma-buf', () =>
    native.importSyncFile(fd, fence.fd, writes(access) ? native.constants.DMA_BUF_SYNC_WRITE : native.constants.DMA_BUF_SYNC_READ),
  );
}

/** The poll() events of a dma-buf that mean no pending fence conflicts with `access`. */
export function pollEvents(access: Access): number {
  return writes(access) ? native.constants.POLLOUT : native.constants.POLLIN;
}
