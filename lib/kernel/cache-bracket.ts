/**
 * The CPU cache bracket of a set of dma-bufs: DMA_BUF_IOCTL_SYNC START before CPU access and END after, for
 * many buffers in one addon call: the lock opens them together with its fence check (startWhenReady), the
 * unlock closes them (syncEach).
 */
import { native } from './native';
import { syncFlags, type Access } from './access';

/** The DMA_BUF_IOCTL_SYNC flags that open (`end` false) or close (`end` true) the bracket for `access`. */
export function bracketFlags(access: Access, end: boolean): number {
  const c = native.constants;
  return (end ? c.DMA_BUF_SYNC_END : c.DMA_BUF_SYNC_START) | syncFlags(access);
}

/**
 * DMA_BUF_IOCTL_SYNC on fds[i] with flags[i], in order, in one addon call. On a failure it throws the
 * addon's error with `index`: the buffers before it were done, the rest were not. Callers wrap the error
 * (fromNative) with their own context.
 */
export function syncEach(fds: Int32Array, flags: Uint32Array): void {
  native.dmaBufSyncEach(fds, flags);
}

/**
 * The uncontended lock of a batch in one addon call: one poll() over `fds` for `events` (as firstPending),
 * and only if every buffer is ready, DMA_BUF_IOCTL_SYNC on syncFds[i] with syncFlags[i] (as syncEach).
 * Returns -1 when both were done, else the index of the first buffer with a pending fence (no bracket was
 * opened). Throws the addon's error: from the poll() with `index`, from an ioctl with `index` into syncFds
 * and `synced: true` (the brackets before it are open). Callers wrap it (fromNative).
 */
export function startWhenReady(fds: Int32Array, events: Uint32Array, syncFds: Int32Array, syncFlags: Uint32Array): number {
  return native.readyThenSyncEach(fds, events, syncFds, syncFlags);
}
