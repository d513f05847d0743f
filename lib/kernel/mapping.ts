/**
 * A CPU mapping of a dma-buf: mmap(MAP_SHARED) exposed as an ArrayBuffer. release() munmaps and detaches
 * the ArrayBuffer, so every view of it reads as length 0 and nothing can reach freed memory; a mapping left
 * unreleased is unmapped when garbage-collected. The sync layer can also "scratch" a mapping: replace it in
 * place with private anonymous memory, so a holder that was forced off writes into nothing.
 *
 * A read-only view (PROT_READ) is guarded by the addon: JavaScript has no read-only typed array, so a store
 * into one would kill the process with SIGSEGV. Instead the faulting page is replaced by a private copy (the
 * store lands there, never in the dma-buf), the JS goes on, and release() reports the write (EACCES).
 */
import { native } from './native';
import { closedError, DmabufError, kernelCall } from '../errors';

/** native.unmap's result for a read-only view into which a write was caught. */
const UNMAPPED_WRITTEN = 2;

/** A live mapping of a dma-buf. */
export class Mapping {
  readonly #buffer: ArrayBuffer;
  readonly #writable: boolean;
  readonly #label: string;
  #released = false;

  /** For a view lent by a KeptMapping: ends the loan instead of munmapping (returns native.returnView's code). */
  readonly #giveBack: ((view: ArrayBuffer) => number) | undefined;
  /** For a lent view: its registry address, known to the KeptMapping (0n: ask the addon). */
  readonly #address: bigint;

  private constructor(buffer: ArrayBuffer, writable: boolean, label: string, giveBack?: (view: ArrayBuffer) => number, address = 0n) {
    this.#buffer = buffer;
    this.#writable = writable;
    this.#label = label;
    this.#giveBack = giveBack;
    this.#address = address;
  }

  /**
   * @internal A Mapping over a view lent by a KeptMapping: release() gives the view back (see KeptMapping).
   * `address` is the kept mapping's registry address, which the view shares.
   */
  static lent(view: ArrayBuffer, writable: boolean, label: string, giveBack: (view: ArrayBuffer) => number, address: bigint): Mapping {
    return new Mapping(view, writable, label, giveBack, address);
  }

  /**
   * @internal Maps `size` bytes of dma-buf `fd` (DmaBuf.map() is the public way); `label` names the buffer in
   * errors.
   */
  static open(fd: number, size: number, writable: boolean, label: string): Mapping {
    return new Mapping(kernelCall('DmaBuf.map', () => native.map(fd, size, writable)), writable, label);
  }

  /** The mapped memory. Views made from it stop working (length 0) after release(). */
  get buffer(): ArrayBuffer {
    if (this.#released) throw closedError('Mapping');
    return this.#buffer;
  }

  /** A byte view of the whole mapping. */
  get bytes(): Uint8Array {
    return new Uint8Array(this.buffer);
  }

  /** Whether the mapping is writable (PROT_WRITE). */
  get writable(): boolean {
    return this.#writable;
  }

  /** True once released. */
  get released(): boolean {
    return this.#released;
  }

  /** @internal The registry address, for replacing the mapping from another thread. 0n once released. */
  get address(): bigint {
    if (this.#released) return 0n;
    // A lent view is attached only while its kept mapping is registered (KeptMapping.close() detaches it
    // before the munmap): then its address is the kept one's, with no addon call. Detached (byteLength 0:
    // a mapping is never empty), it is 0n, as the addon would answer.
    if (this.#address !== 0n) return this.#buffer.byteLength === 0 ? 0n : this.#address;
    return native.mappingAddress(this.#buffer);
  }

  /** @internal Replaces the pages with private scratch memory; returns false if already released/replaced. */
  scratch(): boolean {
    return !this.#released && native.replaceWithScratch(this.#buffer);
  }

  /**
   * munmaps and detaches the ArrayBuffer; idempotent. Throws EACCES (after unmapping) if the mapping is
   * read-only and something wrote into it: that write went to a private copy of the page, not to the buffer.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    const code = this.#giveBack ? this.#giveBack(this.#buffer) : native.unmap(this.#buffer);
    if (code === UNMAPPED_WRITTEN) {
      throw new DmabufError(
        'EACCES',
        `${this.#label}: a write into its read-only view was caught; it went to a private copy of the page and ` +
          'did not reach the buffer. Map it writable (or lock it for \'write\' or \'rw\') to change the buffer',
      );
    }
  }

  /** Same as release(), for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }
}

/**
 * Replaces the mapping that starts at `address` (a `Mapping.address`, possibly of another thread of this
 * process) with scratch memory. Returns false if it was already released or replaced.
 * @internal
 */
export function scratchMappingAt(address: bigint): boolean {
  return native.replaceWithScratch(address);
}

/** The property of a lent view that keeps its mapping reachable (the view itself has no finalizer). */
const OWNER = Symbol('dmabuf-sync mapping');

/**
 * A mapping kept across locks by the sync layer: mmap once, then lend a fresh view (a new ArrayBuffer over the
 * same memory, revocable with the lock's token) per lock and take it back (detached) at unlock. mmap and
 * munmap cost far more than a lock; a view detached at unlock still ends the holder's access, and a forced
 * holder's view is still replaced by scratch memory. A mapping that was scratched, or into whose read-only
 * view a write was caught, is not lent again: close it and map afresh.
 * @internal
 */
export class KeptMapping {
  /** Whether views of it are writable (PROT_WRITE). */
  readonly writable: boolean;
  readonly #owner: ArrayBuffer;
  /** The registry address of #owner, which every lent view shares (Mapping.address without an addon call). */
  readonly #address: bigint;
  readonly #label: string;
  /** The view lent out, if any. */
  #view: ArrayBuffer | undefined;
  #reusable = true;
  #closed = false;
  readonly #giveBack = (view: ArrayBuffer): number => {
    if (this.#view === view) this.#view = undefined;
    const code = native.returnView(view);
    if (code !== 1) this.#reusable = false;
    return code;
  };

  private constructor(owner: ArrayBuffer, writable: boolean, label: string) {
    this.#owner = owner;
    this.#address = native.mappingAddress(owner);
    this.writable = writable;
    this.#label = label;
  }

  /** Maps `size` bytes of dma-buf `fd`; `label` names the buffer in errors. */
  static open(fd: number, size: number, writable: boolean, label: string): KeptMapping {
    return new KeptMapping(kernelCall('DmaBuf.map', () => native.map(fd, size, writable)), writable, label);
  }

  /** True while it can lend a view: not lent out, not closed, never scratched or written through read-only. */
  get available(): boolean {
    return this.#view === undefined && this.#reusable && !this.#closed;
  }

  /** True once it is of no more use (scratched, written through read-only, or closed) and not lent out. */
  get spent(): boolean {
    return this.#view === undefined && (!this.#reusable || this.#closed);
  }

  /** The registry address of the mapping, which every view it lends shares (what a hold's tag names). */
  get address(): bigint {
    return this.#address;
  }

  /**
   * A view for one lock, revoked (scratch) with `token`; its release() gives it back. EIO if the mapping was
   * replaced by scratch memory while not lent (a forcer of this process scratched it by its address between
   * the hold's tag and the loan): it is spent from then on.
   */
  lend(token: bigint): Mapping {
    if (!this.available) throw new DmabufError('EBUSY', `${this.#label}: kept mapping lent twice or unusable`);
    let view: ArrayBuffer;
    try {
      view = kernelCall('DmaBuf.map', () => native.lendView(this.#owner, token));
    } catch (err) {
      this.#reusable = false;
      throw err;
    }
    Object.defineProperty(view, OWNER, { value: this.#owner });
    this.#view = view;
    return Mapping.lent(view, this.writable, this.#label, this.#giveBack, this.#address);
  }

  /** munmaps it (a lent view, if any, is detached first: it reads as length 0 from then on); idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#view !== undefined) native.returnView(this.#view);
    this.#view = undefined;
    native.unmap(this.#owner);
  }
}

