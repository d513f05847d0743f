/**
 * The addon's surface: a thin shim over the dma-buf, sync_file, udmabuf, dma-heap and vgem UAPI. It holds
 * no policy: every function checks its arguments (throwing TypeError / RangeError with code
 * 'ERR_INVALID_ARG_TYPE' / 'ERR_OUT_OF_RANGE'), performs one syscall sequence, and on failure throws an
 * Error carrying `code` (errno name, e.g. 'EBADF'), `errno` (positive number) and `syscall` (e.g.
 * 'ioctl(DMA_BUF_IOCTL_SYNC)'). Every fd it returns is close-on-exec and owned by the caller.
 * @internal
 */
import * as path from 'node:path';
import { DmabufError } from '../errors';
// node-gyp-build ships no types: it returns the addon's exports.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild: (dir: string) => unknown = require('node-gyp-build');

/** Flags and numbers taken from the kernel headers at build time. */
export interface NativeConstants {
  DMA_BUF_SYNC_READ: number;
  DMA_BUF_SYNC_WRITE: number;
  DMA_BUF_SYNC_RW: number;
  DMA_BUF_SYNC_START: number;
  DMA_BUF_SYNC_END: number;
  POLLIN: number;
  POLLOUT: number;
  PAGE_SIZE: number;
  /** Socket domain and type numbers, for socketType(). */
  AF_UNIX: number;
  SOCK_STREAM: number;
  /** The most fds one sendmsg may carry on Linux (the kernel's SCM_MAX_FD, 253). */
  SCM_MAX_FD: number;
  // KMS numbers (native/drm_uapi.h: every build has them).
  DRM_CLIENT_CAP_UNIVERSAL_PLANES: number;
  DRM_CLIENT_CAP_ATOMIC: number;
  DRM_MODE_OBJECT_CRTC: number;
  DRM_MODE_OBJECT_CONNECTOR: number;
  DRM_MODE_OBJECT_PLANE: number;
  DRM_MODE_ATOMIC_TEST_ONLY: number;
  DRM_MODE_ATOMIC_NONBLOCK: number;
  DRM_MODE_ATOMIC_ALLOW_MODESET: number;
  DRM_MODE_PAGE_FLIP_EVENT: number;
  DRM_MODE_CONNECTED: number;
  DRM_PLANE_TYPE_PRIMARY: number;
  DRM_FORMAT_XRGB8888: number;
  /** The DRM request numbers the shim uses, as encoded for this architecture (_IOC). */
  DRM_IOCTL_VERSION: number;
  DRM_IOCTL_GEM_CLOSE: number;
  DRM_IOCTL_SET_CLIENT_CAP: number;
  DRM_IOCTL_PRIME_HANDLE_TO_FD: number;
  DRM_IOCTL_PRIME_FD_TO_HANDLE: number;
  DRM_IOCTL_MODE_GETRESOURCES: number;
  DRM_IOCTL_MODE_GETENCODER: number;
  DRM_IOCTL_MODE_GETCONNECTOR: number;
  DRM_IOCTL_MODE_GETPROPERTY: number;
  DRM_IOCTL_MODE_RMFB: number;
  DRM_IOCTL_MODE_CREATE_DUMB: number;
  DRM_IOCTL_MODE_DESTROY_DUMB: number;
  DRM_IOCTL_MODE_GETPLANERESOURCES: number;
  DRM_IOCTL_MODE_GETPLANE: number;
  DRM_IOCTL_MODE_ADDFB2: number;
  DRM_IOCTL_MODE_OBJ_GETPROPERTIES: number;
  DRM_IOCTL_MODE_ATOMIC: number;
  DRM_IOCTL_MODE_CREATEPROPBLOB: number;
  DRM_IOCTL_MODE_DESTROYPROPBLOB: number;
  DRM_IOCTL_VGEM_FENCE_ATTACH: number;
  DRM_IOCTL_VGEM_FENCE_SIGNAL: number;
}

/** A display mode, field for field struct drm_mode_modeinfo. */
export interface NativeKmsMode {
  clock: number;
  hdisplay: number;
  hsyncStart: number;
  hsyncEnd: number;
  htotal: number;
  hskew: number;
  vdisplay: number;
  vsyncStart: number;
  vsyncEnd: number;
  vtotal: number;
  vscan: number;
  vrefresh: number;
  flags: number;
  type: number;
  name: string;
}

/** DRM_IOCTL_MODE_GETCONNECTOR's answer. */
export interface NativeKmsConnector {
  id: number;
  type: number;
  typeId: number;
  /** 1 connected, 2 disconnected, 3 unknown. */
  connection: number;
  encoderId: number;
  encoders: number[];
  modes: NativeKmsMode[];
  mmWidth: number;
  mmHeight: number;
}

/** One fence of a sync_file, as SYNC_IOC_FILE_INFO reports it. */
export interface NativeFenceInfo {
  objName: string;
  driverName: string;
  /** 1 signalled, 0 active, negative errno on error. */
  status: number;
  flags: number;
  /** Signal time in ns (CLOCK_MONOTONIC), 0n while pending. */
  timestampNs: bigint;
}

export interface NativeSyncFileInfo {
  name: string;
  status: number;
  fences: NativeFenceInfo[];
}

/** A pending uv_poll on a dup() of an fd. */
export interface NativeFdWaiter {
  /** Stops the poll and closes the waiter's dup. The callback is never called after this. Idempotent. */
  cancel(): void;
}

export interface NativeBinding {
  constants: NativeConstants;
  /** DMA_BUF_IOCTL_SYNC with `flags` (START|END combined with READ/WRITE/RW); retries EINTR/EAGAIN. */
  dmaBufSync(fd: number, flags: number): void;
  /** DMA_BUF_IOCTL_EXPORT_SYNC_FILE; flags DMA_BUF_SYNC_READ or _WRITE (or RW). Returns a sync_file fd. */
  exportSyncFile(fd: number, flags: number): number;
  /** DMA_BUF_IOCTL_IMPORT_SYNC_FILE: attach the sync_file's fences to the dma-buf (READ: shared, WRITE: exclusive). */
  importSyncFile(fd: number, syncFileFd: number, flags: number): void;
  /**
   * One poll() with timeout 0 over fds[i] for events[i]: the index of the first fd with none of its events
   * ready, or -1 if all are. POLLNVAL/POLLERR throw EBADF/EIO with `index`.
   */
  firstUnready(fds: Int32Array, events: Uint32Array): number;
  /**
   * Batched DMA_BUF_IOCTL_SYNC: fds[i] with flags[i], in order. A failure throws with `index`: the elements
   * before it were done, the rest were not.
   */
  dmaBufSyncEach(fds: Int32Array, flags: Uint32Array): void;
  /**
   * firstUnready(fds, events); only when it is -1 (every fd ready), dmaBufSyncEach(syncFds, syncFlags):
   * the uncontended lock of a batch in one call. Returns firstUnready's index (no ioctl made when >= 0).
   * A poll() failure throws with `index`; an ioctl failure with `index` into syncFds and `synced: true`.
   */
  readyThenSyncEach(fds: Int32Array, events: Uint32Array, syncFds: Int32Array, syncFlags: Uint32Array): number;
  /** SYNC_IOC_FILE_INFO, both calls (count, then fences). */
  syncFileInfo(fd: number): NativeSyncFileInfo;
  /** SYNC_IOC_MERGE: a new sync_file fd signalled when both are. */
  syncFileMerge(fd1: number, fd2: number, name: string): number;
  /** poll() with timeout 0: true if any of `events` is ready (POLLERR/POLLNVAL throw EBADF/EIO). */
  pollReady(fd: number, events: number): boolean;
  /**
   * Waits without blocking the event loop: dup()s fd (F_DUPFD_CLOEXEC), uv_poll_start(events) on the dup;
   * calls `callback(null)` once when ready or `callback(err)` once on a poll error, then closes the dup.
   */
  waitFd(fd: number, events: number, callback: (err: Error | null) => void): NativeFdWaiter;
  /** fcntl(F_DUPFD_CLOEXEC). */
  dup(fd: number): number;
  /** close(); EBADF throws. */
  close(fd: number): void;
  /**
   * mmap(MAP_SHARED, PROT_READ|PROT_WRITE, or PROT_READ when `writable` is false) of `size` bytes at offset
   * 0; returns an external ArrayBuffer over the mapping. It is munmap()ed by `unmap` (which also detaches the
   * ArrayBuffer) or, failing that, when garbage-collected. Views of it lent with `lendView` are revocable.
   */
  map(fd: number, size: number, writable: boolean): ArrayBuffer;
  /** A revocation token never returned before in this process (a non-zero bigint). */
  newRevocationToken(): bigint;
  /**
   * Replaces every active mapping lent with `token` by scratch memory, and remembers the token (recent ones)
   * so that later loans with it are scratch too. Returns how many it replaced.
   */
  revokeToken(token: bigint): number;
  /**
   * munmap the mapping behind `buffer` and detach it. Returns 0 if it was already unmapped, 1 if it unmapped
   * it, 2 if it unmapped a read-only view into which the write guard caught a store (the store went to a
   * private copy of the page, never to the dma-buf).
   */
  unmap(buffer: ArrayBuffer): 0 | 1 | 2;
  /**
   * A new ArrayBuffer over the same memory as the live mapping `owner` (from `map`), for one lock; the
   * mapping takes revocation `token` for the loan (scratch at once if that token was revoked). No finalizer:
   * keep `owner` reachable from the view. EBADF if `owner` was released, EIO if it is scratch.
   */
  lendView(owner: ArrayBuffer, token: bigint): ArrayBuffer;
  /**
   * Detaches a view from `lendView` and ends the loan. 1: the mapping is active and clean (reusable); 2: the
   * write guard caught a store into it; 3: it is scratch; 0: the view or mapping was already gone.
   */
  returnView(view: ArrayBuffer): 0 | 1 | 2 | 3;
  /**
   * Replaces the mapping behind `buffer` (or at that registry address) in place (MAP_FIXED) by a private anonymous mapping of the same
   * size, so later accesses through any view of it no longer reach the dma-buf. Thread-safe against a
   * concurrent unmap. Returns false if it was already unmapped or replaced.
   */
  replaceWithScratch(buffer: ArrayBuffer | bigint): boolean;
  /**
   * The start address of the live mapping behind `buffer` (0n if unmapped), usable by another thread of this
   * process with `replaceWithScratch(address)`: mappings are kept in a process-wide registry.
   */
  mappingAddress(buffer: ArrayBuffer): bigint;
  /** memfd_create + ftruncate + F_SEAL_SHRINK + UDMABUF_CREATE (UDMABUF_FLAGS_CLOEXEC); size in bytes, page multiple. */
  udmabufCreate(size: number): number;
  /** DMA_HEAP_IOCTL_ALLOC on /dev/dma_heap/<name> with O_RDWR|O_CLOEXEC. */
  heapAlloc(heapName: string, size: number): number;
  /** DRM_IOCTL_VERSION: the driver name of an open DRM device fd. */
  drmDriverName(fd: number): string;
  /** open(path, O_RDWR|O_CLOEXEC). Used for DRM nodes. */
  openDevice(path: string): number;
  /** DRM_IOCTL_MODE_CREATE_DUMB. */
  drmDumbCreate(fd: number, width: number, height: number, bpp: number): { handle: number; pitch: number; size: number };
  /** DRM_IOCTL_PRIME_HANDLE_TO_FD with DRM_CLOEXEC|DRM_RDWR. */
  drmPrimeHandleToFd(fd: number, handle: number): number;
  /** DRM_IOCTL_GEM_CLOSE. */
  drmGemClose(fd: number, handle: number): void;
  /** DRM_IOCTL_VGEM_FENCE_ATTACH; returns the fence id. `write` sets VGEM_FENCE_WRITE. */
  vgemFenceAttach(fd: number, handle: number, write: boolean): number;
  /** DRM_IOCTL_VGEM_FENCE_SIGNAL. */
  vgemFenceSignal(fd: number, fenceId: number): void;
  /** DRM_IOCTL_SET_CLIENT_CAP. */
  kmsSetClientCap(fd: number, cap: number, value: number): void;
  /** DRM_IOCTL_MODE_GETRESOURCES (both calls). */
  kmsGetResources(fd: number): { crtcs: number[]; connectors: number[]; encoders: number[]; minWidth: number; maxWidth: number; minHeight: number; maxHeight: number };
  /** DRM_IOCTL_MODE_GETCONNECTOR (probes the outputs, then reads encoders and modes). */
  kmsGetConnector(fd: number, connectorId: number): NativeKmsConnector;
  /** DRM_IOCTL_MODE_GETENCODER. */
  kmsGetEncoder(fd: number, encoderId: number): { id: number; type: number; crtcId: number; possibleCrtcs: number };
  /** DRM_IOCTL_MODE_GETPLANERESOURCES. */
  kmsGetPlaneResources(fd: number): number[];
  /** DRM_IOCTL_MODE_GETPLANE (both calls). */
  kmsGetPlane(fd: number, planeId: number): { id: number; crtcId: number; fbId: number; possibleCrtcs: number; formats: number[] };
  /** DRM_IOCTL_MODE_OBJ_GETPROPERTIES, then DRM_IOCTL_MODE_GETPROPERTY per property for its name. */
  kmsObjectProperties(fd: number, objectId: number, objectType: number): Array<{ id: number; name: string; value: number | bigint }>;
  /** DRM_IOCTL_MODE_CREATEPROPBLOB of a struct drm_mode_modeinfo; returns the blob id. */
  kmsCreateModeBlob(fd: number, mode: NativeKmsMode): number;
  /** DRM_IOCTL_MODE_DESTROYPROPBLOB. */
  kmsDestroyBlob(fd: number, blobId: number): void;
  /** DRM_IOCTL_MODE_DESTROY_DUMB. */
  drmDumbDestroy(fd: number, handle: number): void;
  /** DRM_IOCTL_PRIME_FD_TO_HANDLE: the GEM handle of a dma-buf on this device (refcounted per buffer by the kernel). */
  drmPrimeFdToHandle(fd: number, dmaBufFd: number): number;
  /** DRM_IOCTL_MODE_ADDFB2 with one plane, no modifier; returns the framebuffer id. */
  kmsAddFb2(fd: number, width: number, height: number, fourcc: number, handle: number, pitch: number, offset: number): number;
  /** DRM_IOCTL_MODE_RMFB. */
  kmsRmFb(fd: number, fbId: number): void;
  /**
   * DRM_IOCTL_MODE_ATOMIC: objs[i] gets counts[i] consecutive (props, values) pairs; flags as given. When
   * outFenceIndex >= 0 that value (OUT_FENCE_PTR) is replaced by a pointer to an s32, returned as a new
   * sync_file fd (or -1). EINTR/EAGAIN are not retried.
   */
  kmsAtomicCommit(fd: number, objs: Uint32Array, counts: Uint32Array, props: Uint32Array, values: Float64Array, flags: number, outFenceIndex: number): number;
  /**
   * mmap(MAP_SHARED, PROT_READ|PROT_WRITE) of `size` bytes of the lock store file `fd`, as an ArrayBuffer.
   * The addon owns `fd` from then on: it unmaps and closes it when this environment (thread) ends, which
   * drops every OFD lock taken through it.
   */
  storeAttach(fd: number, size: number): ArrayBuffer;
  /**
   * fcntl(F_OFD_SETLK, or F_OFD_SETLKW with `wait`) of `type` on [start, start + length). Returns false when
   * another open file description holds a conflicting lock (only without `wait`).
   */
  ofdLock(fd: number, type: 'read' | 'write' | 'unlock', start: number, length: number, wait: boolean): boolean;
  /** fcntl(F_OFD_GETLK): true if another open file description holds a lock conflicting with `type` there. */
  ofdTest(fd: number, type: 'read' | 'write', start: number, length: number): boolean;
  /** clock_gettime(CLOCK_MONOTONIC) in ms. */
  monotonicMs(): number;
  /** futex(FUTEX_WAKE) (shared, not private) on 32-bit word `index` of `buffer`; returns how many woke. */
  futexWake(buffer: ArrayBuffer, index: number, count: number): number;
  /** futex(FUTEX_WAIT) on word `index` while it equals `expected`, at most `timeoutMs` (<= 1000): blocks. */
  futexWait(buffer: ArrayBuffer, index: number, expected: number, timeoutMs: number): 'ok' | 'not-equal' | 'timed-out';
  /**
   * Starts a helper thread blocked in FUTEX_WAIT on word `index`; each time the word changes, `callback`
   * runs on this thread's event loop (coalesced). Unref'd; stopped when the environment ends.
   */
  doorbell(buffer: ArrayBuffer, index: number, callback: () => void): NativeDoorbell;
  /**
   * Starts this participant's revoker thread: it serves revocation requests posted (as a seqlock on word
   * `reqIndex`) by other processes: revokes the 64-bit token at word `tokenIndex` (revokeToken), then stores
   * it into the 64-bit field whose word index is in word `ackAtIndex`. Never calls into JavaScript; stopped
   * when the environment ends.
   */
  revoker(buffer: ArrayBuffer, reqIndex: number, tokenIndex: number, ackAtIndex: number): void;
  /**
   * sendmsg(MSG_DONTWAIT|MSG_NOSIGNAL) of `data` (non-empty) with `fds` (at most SCM_MAX_FD; none when
   * empty) as SCM_RIGHTS attached to its first byte. Returns the bytes sent, or -1 when the socket's buffer
   * is full (EAGAIN): wait for POLLOUT and call again.
   */
  sendFds(sock: number, data: Uint8Array, fds: Int32Array): number;
  /**
   * recvmsg(MSG_DONTWAIT|MSG_CMSG_CLOEXEC) of at most `buffer.length` bytes into `buffer`, with control room
   * for exactly `maxFds` fds (<= SCM_MAX_FD). Returns null when nothing is queued (EAGAIN: wait for POLLIN).
   * Every fd received is in `fds` and the caller's to close; `truncated` is MSG_CTRUNC (the kernel dropped
   * fds that did not fit). `bytes` 0 with no fds is end of stream.
   */
  recvFds(sock: number, buffer: Uint8Array, maxFds: number): { bytes: number; fds: number[]; truncated: boolean } | null;
  /** getsockopt(SO_DOMAIN) and (SO_TYPE); ENOTSOCK for an fd that is not a socket. */
  socketType(fd: number): { domain: number; type: number };
}

/** The handle of a doorbell thread. */
export interface NativeDoorbell {
  /** Keeps the event loop alive while the doorbell waits. */
  ref(): void;
  /** Lets the event loop end although the doorbell waits (the default). */
  unref(): void;
}

/** What to do when no addon loads: the install script (node-gyp-build) builds one from source. */
const HOW_TO_BUILD =
  'npm 11 runs a dependency\'s install script only once approved: run `npm install-scripts approve dmabuf-sync` ' +
  '(or list it in allowScripts), then `npm rebuild dmabuf-sync`. Building from source needs a C++17 compiler ' +
  '(g++), make, python3 and the Node headers (node-gyp downloads them; offline, set npm_config_nodedir to a ' +
  'Node install that has include/node). Prebuilds ship for linux-x64, linux-arm64 and linux-arm (glibc 2.36+).';

/**
 * Loads the addon of the package at `packageDir`: build/Release (built from source) if present, else the
 * prebuild in prebuilds/ matching this platform and architecture (node-gyp-build's rules).
 * @throws DmabufError 'MODULE_NOT_FOUND' when there is neither, 'ERR_DLOPEN_FAILED' when the one found does
 *   not load here (e.g. this system's glibc is older than the prebuild's); both messages say what to do.
 */
export function loadAddon(packageDir: string): NativeBinding {
  let file: string;
  try {
    file = (nodeGypBuild as unknown as { resolve(dir: string): string }).resolve(packageDir);
  } catch (err) {
    throw new DmabufError(
      'MODULE_NOT_FOUND',
      `dmabuf-sync has no native addon for ${process.platform}-${process.arch} (Node ${process.versions.node}, ` +
        `N-API ${process.versions.napi}): no prebuild in ${path.join(packageDir, 'prebuilds')} matches and none ` +
        `was built from source in ${path.join(packageDir, 'build', 'Release')}. ${HOW_TO_BUILD}`,
      { cause: err },
    );
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as NativeBinding;
  } catch (err) {
    throw new DmabufError(
      'ERR_DLOPEN_FAILED',
      `dmabuf-sync's native addon ${file} does not load here (${(err as Error).message.split('\n')[0]}). ` +
        `Build it from source for this system: ${HOW_TO_BUILD}`,
      { cause: err },
    );
  }
}

/** The loaded addon: build/Release from source, or the prebuild matching this platform. */
export const native: NativeBinding = loadAddon(path.join(__dirname, '..', '..', '..'));
