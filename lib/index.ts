/**
 * dmabuf-sync: share Linux dma-bufs safely between async tasks, worker threads, processes and devices.
 * The public surface is small on purpose: buffers and fences over the kernel UAPI, and the sync framework.
 */
export { DmabufError } from './errors';
export type { Access } from './access';
export type { WaitOptions } from './fd-wait';
export { DmaBuf } from './dma-buf';
export { Mapping } from './mapping';
export { SyncFile, type SyncFileInfo, type FenceInfo } from './sync-file';
export { VgemDevice, VgemBuffer, VgemFence } from './vgem';
export { DmabufSync, query, DEFAULT_MAX_HOLD_MS, type DmabufSyncOptions, type LockOptions, type UnlockOptions, type GetOptions } from './dmabuf-sync';
export { WwClass, type WwClassKind } from './ww-class';
export { AcquireContext, type AcquireContextOptions } from './acquire-context';
export { WwMutex, type LockMode, type LockSnapshot } from './ww-mutex';
