/**
 * dmabuf-sync: share Linux dma-bufs safely between async tasks, worker threads, processes and devices.
 * The public surface is small on purpose: buffers and fences over the kernel UAPI, and the sync framework.
 */
export { DmabufError } from './errors';
export type { Access } from './kernel/access';
export type { WaitOptions } from './kernel/fd-wait';
export { DmaBuf } from './kernel/dma-buf';
export { Mapping } from './kernel/mapping';
export { SyncFile, type SyncFileInfo, type FenceInfo } from './kernel/sync-file';
export { VgemDevice, VgemBuffer, VgemFence } from './kernel/vgem';
export { DmabufSync, query, DEFAULT_MAX_HOLD_MS, type DmabufSyncOptions, type LockOptions, type UnlockOptions, type GetOptions } from './sync/dmabuf-sync';
export { WwClass, type WwClassKind } from './ww/ww-class';
export { AcquireContext, type AcquireContextOptions } from './ww/acquire-context';
export { WwMutex, type LockMode, type LockSnapshot } from './ww/ww-mutex';
