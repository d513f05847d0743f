/**
 * A CPU mapping of a dma-buf: mmap(MAP_SHARED) exposed as an ArrayBuffer. release() munmaps and detaches
 * the ArrayBuffer, so every view of it reads as length 0 and nothing can reach freed memory; a mapping left
 * unreleased is unmapped when garbage-collected. The sync layer can also "scratch" a mapping: replace it in
 * place with private anonymous memory, so a holder that was forced off writes into nothing.
 */
import { native } from './native';
import { closedError, kernelCall } from '../errors';

/** A live mapping of a dma-buf. */
export class Mapping {
  readonly #buffer: ArrayBuffer;
  readonly #writable: boolean;
  #released = false;

  private constructor(buffer: ArrayBuffer, writable: boolean) {
    this.#buffer = buffer;
    this.#writable = writable;
  }

  /** @internal Maps `size` bytes of dma-buf `fd` (DmaBuf.map() is the public way). */
  static open(fd: number, size: number, writable: boolean): Mapping {
    return new Mapping(kernelCall('DmaBuf.map', () => native.map(fd, size, writable)), writable);
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

  /** munmaps and detaches the ArrayBuffer; idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    native.unmap(this.#buffer);
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
