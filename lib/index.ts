/**
 * dmabuf-sync: share Linux dma-bufs safely between async tasks, worker threads, processes and devices (the lock
 * state is machine-wide: every process and worker thread of one user that locks a buffer sees the same lock).
 * The public surface is small on purpose: buffers and fences over the kernel UAPI, and the sync framework.
 * @packageDocumentation
 */
export { DmabufError, type DmabufErrorOptions } from './errors';
export type { Access } from './kernel/access';
export type { WaitOptions } from './kernel/fd-wait';
export { DmaBuf } from './kernel/dma-buf';
export { sendDmaBufs, receiveDmaBufs, type ReceiveDmaBufsOptions } from './kernel/fd-passing';
export { Mapping } from './kernel/mapping';
export { SyncFile, type SyncFileInfo, type FenceInfo } from './kernel/sync-file';
export { VgemDevice, VgemBuffer, VgemFence } from './kernel/vgem';
export {
  DmabufSync,
  query,
  DEFAULT_MAX_HOLD_MS,
  CHANNEL_FENCE_WAIT,
  type DmabufSyncOptions,
  type SyncState,
  type LockOptions,
  type UnlockOptions,
  type GetOptions,
  type SingleLockOptions,
  type WaitUnlockedOptions,
} from './sync/dmabuf-sync';
export { WwClass, type WwClassKind, type WwClassOptions } from './ww/ww-class';
export { AcquireContext, type AcquireContextOptions, type ForcedCallback } from './ww/acquire-context';
export {
  WwMutex,
  forceRelease,
  type LockMode,
  type LockOptions as WwLockOptions,
  type LockSnapshot,
  type LockHolderInfo,
  type LockWaiterInfo,
} from './ww/ww-mutex';
export { CHANNEL_ACQUIRED, CHANNEL_BACKOFF, CHANNEL_CONTENDED, CHANNEL_FORCED_UNLOCK } from './ww/lock-channels';
export { KmsDisplay, type KmsDisplayOpenOptions, type PresentOptions, type KmsDisplayStats } from './kernel/kms-display';
export { ScanoutBuffer } from './kernel/scanout-buffer';
export { SwapChain, Frame, type SwapChainOptions, type SwapChainStats } from './sync/swap-chain';
export {
  V4l2Device,
  fourcc,
  type V4l2OpenOptions,
  type V4l2Queue,
  type V4l2Memory,
  type V4l2QueueOptions,
  type V4l2Capability,
  type V4l2Format,
  type V4l2FormatDesc,
  type V4l2Control,
  type V4l2Io,
  type V4l2BufferInfo,
  type V4l2Event,
  type V4l2BufferPlane,
  type V4l2PlaneFormat,
  type V4l2Constants,
  type V4l2FrameInterval,
  type V4l2BufferRange,
} from './kernel/v4l2-device';
export { DeviceQueue, captureFrames, type DeviceQueueOptions, type DequeuedBuffer, type CapturedFrame } from './sync/device-hold';
