/**
 * ScanoutBuffer: a dma-buf a KMS display can show — its GEM handle on the display's card and the
 * framebuffer (ADDFB2, XRGB8888: one 32-bit word per pixel, 0x00RRGGBB in CPU order) made from it. Either the
 * display's own memory (a dumb buffer exported with PRIME) or any dma-buf the driver can import. Made by
 * KmsDisplay.createBuffer() and KmsDisplay.importBuffer(); closed by close() or when the display closes.
 */
import type { DmaBuf } from './dma-buf';
import { closedError } from '../errors';

/** What the display does when a buffer closes (remove the framebuffer, drop the handle). @internal */
export interface ScanoutOwner {
  release(buffer: ScanoutBuffer): void;
}

/** @internal Where a framebuffer lies in its dma-buf and what the display calls it. */
export interface ScanoutGeometry {
  width: number;
  height: number;
  pitch: number;
  offset: number;
  fbId: number;
  handle: number;
  owned: boolean;
}

/** A framebuffer on a KMS display and the dma-buf behind it. */
export class ScanoutBuffer {
  readonly #owner: ScanoutOwner;
  readonly #dmaBuf: DmaBuf;
  #closed = false;
  /** Width in pixels (the display's mode). */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** Bytes from one row to the next. */
  readonly pitch: number;
  /** Byte offset of the first pixel in the dma-buf. */
  readonly offset: number;
  /** The pixel format: 32-bit XRGB, little endian (the fourcc XR24). */
  readonly format = 'XRGB8888';
  /** @internal The framebuffer id (DRM_IOCTL_MODE_ADDFB2). */
  readonly fbId: number;
  /** @internal The GEM handle on the display's card. */
  readonly handle: number;
  /** @internal true for a dumb buffer of the display (destroyed with it), false for an imported dma-buf. */
  readonly owned: boolean;

  private constructor(owner: ScanoutOwner, dmaBuf: DmaBuf, geometry: ScanoutGeometry) {
    this.#owner = owner;
    this.#dmaBuf = dmaBuf;
    this.width = geometry.width;
    this.height = geometry.height;
    this.pitch = geometry.pitch;
    this.offset = geometry.offset;
    this.fbId = geometry.fbId;
    this.handle = geometry.handle;
    this.owned = geometry.owned;
  }

  /** @internal A framebuffer of `owner` (KmsDisplay.createBuffer() and importBuffer() are the public way). */
  static of(owner: ScanoutOwner, dmaBuf: DmaBuf, geometry: ScanoutGeometry): ScanoutBuffer {
    return new ScanoutBuffer(owner, dmaBuf, geometry);
  }

  /**
   * The dma-buf behind the framebuffer (the library's own; for an import, a dup of the caller's). Lock it
   * with DmabufSync to write pixels; do not close it, close the ScanoutBuffer.
   */
  get dmaBuf(): DmaBuf {
    if (this.#closed) throw closedError('ScanoutBuffer');
    return this.#dmaBuf;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Removes the framebuffer and releases the buffer; idempotent. Closing the buffer on screen turns the
   * plane off (the kernel's RMFB rule).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#owner.release(this);
    } finally {
      this.#dmaBuf.close();
    }
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
