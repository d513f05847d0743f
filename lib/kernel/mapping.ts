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

  private constructor(buffer: ArrayBuffer, writable: boolean, label: string) {
    this.#buffer = buffer;
    this.#writable = writable;
    this.#label = label;
  }

  /**
   * @internal Maps `size` bytes of dma-buf `fd` (DmaBuf.map() is the public way); `label` names the buffer in
   * errors; `token`: a revocation token (see native.map).
   */
  static open(fd: number, size: number, writable: boolean, label: string, token?: bigint): Mapping {
    return new Mapping(kernelCall('DmaBuf.map', () => native.map(fd, size, writable, token)), writable, label);
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
    return this.#released ? 0n : native.mappingAddress(this.#buffer);
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
    if (native.unmap(this.#buffer) === UNMAPPED_WRITTEN) {
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
