/**
 * KmsDisplay: a KMS display (a DRM card with a connected output) as a device that reads dma-bufs. Frames are
 * shown with non-blocking atomic commits: each present() hands the kernel an optional in-fence
 * (IN_FENCE_FD: the flip waits in the kernel for the job that draws the frame) and gets back an out-fence
 * (OUT_FENCE_PTR: a sync_file that signals when the new frame is latched, i.e. when the display has stopped
 * reading the frame it replaced). That out-fence is attached to the replaced buffer as a read fence, so
 * anyone who locks that buffer for writing — DmabufSync, a GPU driver — waits until it is off the screen.
 * The first present() sets the mode. Nothing here blocks the event loop: waits go through SyncFile.wait().
 */
import * as fs from 'node:fs';
import { native } from './native';
import { abortError, argRangeError, argTypeError, closedError, DmabufError, fromNative, kernelCall } from '../errors';
import { OwnedFd } from './owned-fd';
import { DmaBuf } from './dma-buf';
import { SyncFile } from './sync-file';
import { importFence } from './implicit-fences';
import { deadlineOf, linkSignals, type WaitOptions } from './fd-wait';
import { findPipeline, type KmsPipeline } from './kms-pipeline';
import { ScanoutBuffer, type ScanoutOwner } from './scanout-buffer';

/** Which card to open. With neither field, the first /dev/dri/card* that has a connected output. */
export interface KmsDisplayOpenOptions {
  /** A device node, e.g. '/dev/dri/card1'. */
  path?: string;
  /** A DRM driver name, e.g. 'virtio_gpu', 'bochs-drm', 'cirrus', 'rockchip', 'imx-drm'. */
  driver?: string;
}

/** Options of present(). `timeoutMs`/`signal` bound the wait for the previous flip, if one is pending. */
export interface PresentOptions extends Omit<WaitOptions, 'deadline'> {
  /** The fence of the job that draws the frame: the flip waits for it in the kernel (IN_FENCE_FD). */
  inFence?: SyncFile;
}

/** Counters since open(). */
export interface KmsDisplayStats {
  /** Atomic commits that put a frame on the screen (the first one also set the mode). */
  presents: number;
  /** present() calls that had to wait for the previous flip to latch first. */
  flipWaits: number;
}

/** The arguments of native.kmsAtomicCommit for a page flip, reused from frame to frame. */
interface FlipArgs {
  objs: Uint32Array;
  counts: Uint32Array;
  props: Uint32Array;
  values: Float64Array;
}

/** values[] index of the plane's FB_ID in FlipArgs (after the CRTC's OUT_FENCE_PTR); IN_FENCE_FD is last. */
const FLIP_FB_INDEX = 1;

/** Sysfs-free listing of the DRM cards. */
function cardNodes(): string[] {
  try {
    return fs.readdirSync('/dev/dri').filter((n) => /^card\d+$/.test(n)).sort().map((n) => `/dev/dri/${n}`);
  } catch {
    return [];
  }
}

/** An open KMS display. */
export class KmsDisplay {
  readonly #fd: OwnedFd;
  readonly #pipe: KmsPipeline;
  /** The device node. */
  readonly path: string;
  /** The DRM driver's name (DRM_IOCTL_VERSION). */
  readonly driver: string;
  /** The mode's width in pixels: every buffer of this display has this size. */
  readonly width: number;
  /** The mode's height in pixels. */
  readonly height: number;
  /** The mode's refresh rate in Hz. */
  readonly refreshHz: number;
  /** The mode's name, e.g. '640x480'. */
  readonly modeName: string;
  readonly #buffers = new Set<ScanoutBuffer>();
  /** What a ScanoutBuffer calls when it closes. */
  readonly #owner: ScanoutOwner = { release: (buffer) => this.#release(buffer) };
  /** GEM handles of imported dma-bufs → users (the kernel gives one handle per buffer per open file). */
  readonly #importRefs = new Map<number, number>();
  #modeBlob = 0;
  #onScreen: ScanoutBuffer | undefined;
  /** Our dup of the last flip's out-fence: the next non-blocking commit must wait for it (else EBUSY). */
  #lastFlip: SyncFile | undefined;
  /** present() calls run one after another: the tail of the queue, while one is under way. */
  #queue: Promise<unknown> = Promise.resolve();
  /** present() calls started and not yet settled (0: the next one starts at once, without queueing). */
  #presenting = 0;
  /**
   * The page-flip commit's arrays (no modeset), built on the first flip: per frame only the values of
   * FB_ID and IN_FENCE_FD change. [without in-fence, with in-fence].
   */
  #flipArgs: [FlipArgs, FlipArgs] | undefined;
  #stats: KmsDisplayStats = { presents: 0, flipWaits: 0 };
  /** Open users of this display (swap chains): close() closes them first. */
  readonly #users = new Set<{ close(): void }>();
  /** Aborted by close(): a present() waiting for the previous flip ends at once. */
  readonly #closing = new AbortController();

  private constructor(fd: OwnedFd, path: string, driver: string, pipe: KmsPipeline) {
    this.#fd = fd;
    this.#pipe = pipe;
    this.path = path;
    this.driver = driver;
    this.width = pipe.mode.hdisplay;
    this.height = pipe.mode.vdisplay;
    this.refreshHz = pipe.mode.vrefresh;
    this.modeName = pipe.mode.name;
  }

  /**
   * Opens a KMS display: by `path`, by `driver` name, or the first card with a connected output. Enables
   * atomic modesetting and finds the connector, CRTC and primary plane. Throws ENOENT when there is no such
   * display (with what to do), EACCES without permission on the node.
   */
  static open(options: KmsDisplayOpenOptions = {}): KmsDisplay {
    if (typeof options !== 'object' || options === null) throw argTypeError('options', 'an object', options);
    const { path, driver } = options;
    if (path !== undefined && typeof path !== 'string') throw argTypeError('options.path', 'a device node such as "/dev/dri/card0"', path);
    if (driver !== undefined && typeof driver !== 'string') throw argTypeError('options.driver', 'a DRM driver name such as "virtio_gpu"', driver);
    const nodes = path !== undefined ? [path] : cardNodes();
    const seen: string[] = [];
    for (const node of nodes) {
      const fd = new OwnedFd(kernelCall(`opening ${node}`, () => native.openDevice(node)), 'KmsDisplay');
      try {
        const name = kernelCall(`${node}: DRM_IOCTL_VERSION`, () => native.drmDriverName(fd.fd));
        seen.push(`${node} (${name})`);
        if (driver !== undefined && name !== driver) {
          fd.close();
          continue;
        }
        const pipe = KmsDisplay.#probe(fd.fd, node, path !== undefined || driver !== undefined);
        if (pipe) return new KmsDisplay(fd, node, name, pipe);
        fd.close();
      } catch (err) {
        fd.close();
        throw err;
      }
    }
    const what = driver !== undefined ? `no DRM card with driver "${driver}"` : 'no KMS display with a connected output';
    throw new DmabufError('ENOENT',
      `${what} in /dev/dri (found: ${seen.join(', ') || 'no cards'}). Load the display driver of the board (or, in the test VM, ` +
      'set DMABUF_VM_DISPLAY=virtio, bochs or cirrus), or pass {path} or {driver}');
  }

  /** Sets the client caps and finds the pipeline; undefined for a card without KMS when not asked for by name. */
  static #probe(fd: number, node: string, asked: boolean): KmsPipeline | undefined {
    const c = native.constants;
    try {
      native.kmsSetClientCap(fd, c.DRM_CLIENT_CAP_UNIVERSAL_PLANES, 1);
      native.kmsSetClientCap(fd, c.DRM_CLIENT_CAP_ATOMIC, 1);
    } catch (err) {
      if (!asked) return undefined; // a render-only card (vgem) or a driver without atomic KMS
      throw fromNative(err, `${node}: enabling atomic modesetting (the driver must support atomic KMS)`);
    }
    try {
      return findPipeline(fd, node);
    } catch (err) {
      if (!asked && (err as { code?: string }).code === 'ENODEV') return undefined;
      throw err;
    }
  }

  /**
   * @internal Registers an object built on this display (a SwapChain) that close() must close first, while
   * the card and its buffers are still open. Returns the function that unregisters it (its own close()).
   */
  attach(user: { close(): void }): () => void {
    if (this.closed) throw closedError('KmsDisplay');
    this.#users.add(user);
    return () => {
      this.#users.delete(user);
    };
  }

  /** @internal */
  get fd(): number {
    return this.#fd.fd;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd.closed;
  }

  /** Counters since open(). */
  get stats(): KmsDisplayStats {
    return { ...this.#stats };
  }

  /** The buffer the display shows (or will show once its flip latches); undefined before the first present(). */
  get onScreen(): ScanoutBuffer | undefined {
    return this.#onScreen;
  }

  /**
   * A new buffer of the display's own memory (a dumb buffer, width × height XRGB8888) exported as a
   * dma-buf: every driver can scan these out.
   */
  createBuffer(): ScanoutBuffer {
    const fd = this.fd;
    const bo = kernelCall('KmsDisplay.createBuffer: DRM_IOCTL_MODE_CREATE_DUMB', () => native.drmDumbCreate(fd, this.width, this.height, 32));
    let dmaBuf: DmaBuf | undefined;
    try {
      dmaBuf = DmaBuf.adopt(kernelCall('KmsDisplay.createBuffer: PRIME export', () => native.drmPrimeHandleToFd(fd, bo.handle)));
      const fbId = this.#addFb(bo.handle, bo.pitch, 0);
      return this.#track(ScanoutBuffer.of(this.#owner, dmaBuf, { width: this.width, height: this.height, pitch: bo.pitch, offset: 0, fbId, handle: bo.handle, owned: true }));
    } catch (err) {
      dmaBuf?.close();
      native.drmDumbDestroy(fd, bo.handle);
      throw err;
    }
  }

  /**
   * Makes any dma-buf a framebuffer of this display (PRIME import + ADDFB2), width × height XRGB8888 at
   * `offset` with `pitch` bytes per row (default width × 4). Needs a driver that imports foreign buffers
   * (real display controllers; in QEMU, cirrus): virtio-gpu and bochs refuse, with the kernel's code
   * (ENODEV, EINVAL). Throws EINVAL when the buffer is too small. The caller keeps its DmaBuf; the
   * ScanoutBuffer holds a dup.
   */
  importBuffer(buf: DmaBuf, options: { pitch?: number; offset?: number } = {}): ScanoutBuffer {
    if (!(buf instanceof DmaBuf)) throw argTypeError('buf', 'a DmaBuf', buf);
    const fd = this.fd;
    if (buf.closed) throw new DmabufError('EBADF', 'KmsDisplay.importBuffer: the DmaBuf is closed; import it before closing it');
    const pitch = options.pitch ?? this.width * 4;
    const offset = options.offset ?? 0;
    for (const [name, v] of [['pitch', pitch], ['offset', offset]] as const) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw argRangeError(`options.${name}`, 'an integer in [0, 2^32)', v);
    }
    if (pitch < this.width * 4) throw argRangeError('options.pitch', `at least width × 4 = ${this.width * 4} bytes`, pitch);
    const needed = offset + pitch * (this.height - 1) + this.width * 4;
    if (buf.size < needed) {
      throw new DmabufError('EINVAL', `KmsDisplay.importBuffer: a ${buf.size}-byte dma-buf is too small for a ${this.width}x${this.height} ` +
        `XRGB8888 frame with pitch ${pitch} at offset ${offset} (needs ${needed} bytes); allocate at least that much`);
    }
    let handle: number;
    try {
      handle = native.drmPrimeFdToHandle(fd, buf.fd);
    } catch (err) {
      const e = fromNative(err, `KmsDisplay.importBuffer`) as DmabufError;
      throw new DmabufError(e.code, `${this.driver} cannot scan out a dma-buf from another device (${e.syscall ?? 'PRIME import'}: ${e.code}); ` +
        'draw into display.createBuffer() buffers instead, or use a display driver that imports dma-bufs', { errno: e.errno, syscall: e.syscall, cause: err });
    }
    this.#importRefs.set(handle, (this.#importRefs.get(handle) ?? 0) + 1);
    let dup: DmaBuf | undefined;
    try {
      dup = buf.dup();
      const fbId = this.#addFb(handle, pitch, offset);
      return this.#track(ScanoutBuffer.of(this.#owner, dup, { width: this.width, height: this.height, pitch, offset, fbId, handle, owned: false }));
    } catch (err) {
      dup?.close();
      this.#dropImport(handle);
      throw err;
    }
  }

  /**
   * Shows `buffer` from the next vblank: a non-blocking atomic commit (the first one also sets the mode)
   * with `inFence` as IN_FENCE_FD. Resolves with the flip's out-fence, which signals once the frame is on
   * screen and the previous one is no longer read; the caller owns it (close it, or `using`). If the
   * previous flip has not latched yet, waits for it first (bounded by timeoutMs/signal). The replaced
   * buffer gets the out-fence as a read fence. Calls run in order.
   */
  present(buffer: ScanoutBuffer, options: PresentOptions = {}): Promise<SyncFile> {
    this.#presenting++;
    // Nothing under way (the frame loop's case): start now, without a queue hop or a promise per call to
    // track it (#present counts itself down); otherwise start once the last one has settled.
    const run = this.#presenting === 1 ? this.#present(buffer, options) : this.#queue.then(() => this.#present(buffer, options), () => this.#present(buffer, options));
    this.#queue = run;
    return run;
  }

  async #present(buffer: ScanoutBuffer, options: PresentOptions): Promise<SyncFile> {
    // Counted in #presenting until settled (present() starts the next one at once when this was the last).
    try {
      if (this.closed) throw closedError('KmsDisplay');
      if (!(buffer instanceof ScanoutBuffer)) throw argTypeError('buffer', 'a ScanoutBuffer from createBuffer() or importBuffer()', buffer);
      if (buffer.closed) throw closedError('ScanoutBuffer');
      if (!this.#buffers.has(buffer)) throw new DmabufError('EINVAL', 'present() of a buffer made by another KmsDisplay; make it with this display');
      const inFence = options.inFence;
      if (inFence !== undefined && !(inFence instanceof SyncFile)) throw argTypeError('options.inFence', 'a SyncFile', inFence);
      if (inFence?.closed) throw new DmabufError('EBADF', 'present(): inFence is closed; keep it open until present() resolves');
      const deadline = deadlineOf(options);
      if (options.signal?.aborted) throw abortError(options.signal);
      // The previous flip's out-fence is in hand: one poll() says whether it latched; only if not, wait on it
      // (uv_poll, resolved from its callback).
      if (this.#lastFlip && !native.pollReady(this.#lastFlip.fd, native.constants.POLLIN)) {
        this.#stats.flipWaits++;
        const linked = linkSignals(options.signal, this.#closing.signal);
        try {
          await this.#lastFlip.wait({ deadline, signal: linked.signal });
        } catch (err) {
          if (this.closed) throw closedError('KmsDisplay');
          throw err;
        } finally {
          linked.dispose();
        }
        if (this.closed) throw closedError('KmsDisplay');
        if (buffer.closed) throw closedError('ScanoutBuffer');
      }
      const outFence = this.#commit(buffer, inFence);
      const replaced = this.#onScreen;
      this.#onScreen = buffer;
      this.#lastFlip?.close();
      this.#lastFlip = undefined;
      try {
        this.#lastFlip = outFence.dup();
        // The display reads `replaced` until this flip latches: writers of it must wait for the out-fence.
        if (replaced && replaced !== buffer && !replaced.closed) importFence(replaced.dmaBuf.fd, outFence, 'read');
      } catch (err) {
        outFence.close();
        throw err;
      }
      this.#stats.presents++;
      return outFence;
    } finally {
      this.#presenting--;
    }
  }

  /** One atomic commit; returns the out-fence. */
  #commit(buffer: ScanoutBuffer, inFence: SyncFile | undefined): SyncFile {
    if (this.#modeBlob !== 0) return this.#flip(buffer, inFence);
    const c = native.constants;
    const fd = this.fd;
    const p = this.#pipe.props;
    const objs: number[] = [];
    const counts: number[] = [];
    const props: number[] = [];
    const values: number[] = [];
    const object = (id: number, pairs: Array<[number, number]>): void => {
      objs.push(id);
      counts.push(pairs.length);
      for (const [prop, value] of pairs) {
        props.push(prop);
        values.push(value);
      }
    };
    let flags = c.DRM_MODE_ATOMIC_NONBLOCK;
    const modeset = this.#modeBlob === 0;
    if (modeset) {
      this.#modeBlob = kernelCall('KmsDisplay.present: creating the mode blob', () => native.kmsCreateModeBlob(fd, this.#pipe.mode));
      object(this.#pipe.connectorId, [[p.connector.CRTC_ID, this.#pipe.crtcId]]);
      flags |= c.DRM_MODE_ATOMIC_ALLOW_MODESET;
    }
    const crtcPairs: Array<[number, number]> = [[p.crtc.OUT_FENCE_PTR, 0]];
    if (modeset) crtcPairs.push([p.crtc.MODE_ID, this.#modeBlob], [p.crtc.ACTIVE, 1]);
    object(this.#pipe.crtcId, crtcPairs);
    const outFenceIndex = props.length - crtcPairs.length;
    const planePairs: Array<[number, number]> = [
      [p.plane.FB_ID, buffer.fbId], [p.plane.CRTC_ID, this.#pipe.crtcId],
      [p.plane.SRC_X, 0], [p.plane.SRC_Y, 0], [p.plane.SRC_W, this.width * 65536], [p.plane.SRC_H, this.height * 65536],
      [p.plane.CRTC_X, 0], [p.plane.CRTC_Y, 0], [p.plane.CRTC_W, this.width], [p.plane.CRTC_H, this.height],
    ];
    if (inFence) planePairs.push([p.plane.IN_FENCE_FD, inFence.fd]);
    object(this.#pipe.planeId, planePairs);
    let outFd: number;
    try {
      outFd = native.kmsAtomicCommit(fd, Uint32Array.from(objs), Uint32Array.from(counts), Uint32Array.from(props), Float64Array.from(values), flags, outFenceIndex);
    } catch (err) {
      if (modeset) {
        native.kmsDestroyBlob(fd, this.#modeBlob);
        this.#modeBlob = 0;
      }
      throw this.#commitError(err);
    }
    return this.#adoptOutFence(outFd);
  }

  /** The error of a failed atomic commit; EACCES/EPERM name the likely cause (another DRM master). */
  #commitError(err: unknown): Error {
    const e = fromNative(err, `KmsDisplay.present (${this.driver})`);
    if ((e as DmabufError).code === 'EACCES' || (e as DmabufError).code === 'EPERM') {
      return new DmabufError((e as DmabufError).code, `${e.message} — another process is DRM master of ${this.path} (a compositor or another test); stop it or use another card`, { cause: err });
    }
    return e;
  }

  /** The commit's out-fence fd as a SyncFile (EIO if the driver gave none). */
  #adoptOutFence(outFd: number): SyncFile {
    if (outFd < 0) throw new DmabufError('EIO', `KmsDisplay.present: ${this.driver} returned no out-fence`);
    return SyncFile.adopt(outFd);
  }

  /** A page flip (the mode is set): the commit's arrays are built once and reused. */
  #flip(buffer: ScanoutBuffer, inFence: SyncFile | undefined): SyncFile {
    const args = (this.#flipArgs ??= [this.#makeFlipArgs(false), this.#makeFlipArgs(true)])[inFence ? 1 : 0];
    args.values[FLIP_FB_INDEX] = buffer.fbId;
    if (inFence) args.values[args.values.length - 1] = inFence.fd;
    let outFd: number;
    try {
      outFd = native.kmsAtomicCommit(this.fd, args.objs, args.counts, args.props, args.values, native.constants.DRM_MODE_ATOMIC_NONBLOCK, 0);
    } catch (err) {
      throw this.#commitError(err);
    }
    return this.#adoptOutFence(outFd);
  }

  /** The arrays of a page-flip commit: CRTC {OUT_FENCE_PTR}, plane {FB_ID, CRTC_ID, SRC_*, CRTC_*[, IN_FENCE_FD]}. */
  #makeFlipArgs(fenced: boolean): FlipArgs {
    const p = this.#pipe.props;
    const props = [p.crtc.OUT_FENCE_PTR, p.plane.FB_ID, p.plane.CRTC_ID, p.plane.SRC_X, p.plane.SRC_Y, p.plane.SRC_W, p.plane.SRC_H,
      p.plane.CRTC_X, p.plane.CRTC_Y, p.plane.CRTC_W, p.plane.CRTC_H];
    const values = [0, 0, this.#pipe.crtcId, 0, 0, this.width * 65536, this.height * 65536, 0, 0, this.width, this.height];
    if (fenced) {
      props.push(p.plane.IN_FENCE_FD);
      values.push(-1);
    }
    return {
      objs: Uint32Array.of(this.#pipe.crtcId, this.#pipe.planeId),
      counts: Uint32Array.of(1, props.length - 1),
      props: Uint32Array.from(props),
      values: Float64Array.from(values),
    };
  }

  #addFb(handle: number, pitch: number, offset: number): number {
    return kernelCall(`KmsDisplay: DRM_IOCTL_MODE_ADDFB2 (${this.width}x${this.height} XRGB8888, pitch ${pitch})`, () =>
      native.kmsAddFb2(this.fd, this.width, this.height, native.constants.DRM_FORMAT_XRGB8888, handle, pitch, offset));
  }

  #track(buffer: ScanoutBuffer): ScanoutBuffer {
    this.#buffers.add(buffer);
    return buffer;
  }

  #dropImport(handle: number): void {
    const n = (this.#importRefs.get(handle) ?? 1) - 1;
    if (n > 0) {
      this.#importRefs.set(handle, n);
      return;
    }
    this.#importRefs.delete(handle);
    native.drmGemClose(this.fd, handle);
  }

  /** ScanoutBuffer.close(): remove the framebuffer, drop the handle. */
  #release(buffer: ScanoutBuffer): void {
    if (!this.#buffers.delete(buffer)) return;
    const wasOnScreen = this.#onScreen === buffer;
    if (wasOnScreen) this.#onScreen = undefined;
    if (this.closed) return; // closing the card released everything
    const fd = this.fd;
    const errors: unknown[] = [];
    try {
      native.kmsRmFb(fd, buffer.fbId);
    } catch (err) {
      errors.push(err);
    }
    if (wasOnScreen && this.#modeBlob !== 0) {
      // RMFB of the primary plane's framebuffer turns the CRTC off too: the next present() sets the mode again.
      try {
        native.kmsDestroyBlob(fd, this.#modeBlob);
      } catch (err) {
        errors.push(err);
      }
      this.#modeBlob = 0;
    }
    try {
      if (buffer.owned) native.drmDumbDestroy(fd, buffer.handle);
      else this.#dropImport(buffer.handle);
    } catch (err) {
      errors.push(err);
    }
    if (errors.length > 0) throw fromNative(errors[0], 'ScanoutBuffer.close');
  }

  /**
   * Closes the display whatever state it is in; idempotent. In order: every open SwapChain on it (which
   * releases the chain's frames still out: their locks and views; see SwapChain.close()), every buffer of
   * the display, the mode blob and the card (which turns the output off). A present() waiting for the
   * previous flip rejects with EBADF. A flip still gated by an unsignalled in-fence makes the kernel wait
   * for it here; close after it latched.
   */
  close(): void {
    if (this.closed) return;
    const errors: unknown[] = [];
    for (const user of [...this.#users]) {
      try {
        user.close();
      } catch (err) {
        errors.push(err);
      }
    }
    this.#users.clear();
    for (const b of [...this.#buffers]) {
      try {
        b.close();
      } catch (err) {
        errors.push(err);
      }
    }
    this.#lastFlip?.close();
    this.#lastFlip = undefined;
    if (this.#modeBlob !== 0) {
      try {
        native.kmsDestroyBlob(this.fd, this.#modeBlob);
      } catch (err) {
        errors.push(err);
      }
      this.#modeBlob = 0;
    }
    this.#fd.close();
    this.#closing.abort(closedError('KmsDisplay'));
    if (errors.length > 0) throw fromNative(errors[0], 'KmsDisplay.close');
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
