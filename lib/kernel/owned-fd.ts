/**
 * An fd the library owns: always its own dup() (or an fd the kernel just handed it), closed exactly once.
 * Callers keep and close their own fds; ours never alias theirs, so neither side can close the other's.
 * An object dropped without close() has its fd closed by the garbage collector, with a process warning,
 * because a leaked fd pins kernel memory (a dma-buf) until exit.
 */
import { native } from './native';
import { argRangeError, argTypeError, closedError, kernelCall } from '../errors';

const leaks = new FinalizationRegistry<{ fd: number; what: string }>(({ fd, what }) => {
  try {
    native.close(fd);
    process.emitWarning(`${what} (fd ${fd}) was garbage-collected without close(); close it explicitly`, 'DmabufSyncWarning');
  } catch {
    // Already gone: nothing to release.
  }
});

/** Checks that `fd` is a non-negative integer; throws TypeError / RangeError like Node's fs does. */
export function checkFd(fd: unknown, name = 'fd'): number {
  if (typeof fd !== 'number' || !Number.isInteger(fd)) {
    throw argTypeError(name, 'an integer file descriptor', fd);
  }
  if (fd < 0 || fd > 0x7fffffff) {
    throw argRangeError(name, 'a file descriptor >= 0', fd);
  }
  return fd;
}

/** One owned fd. */
export class OwnedFd {
  #fd: number;
  readonly #what: string;

  /** Takes ownership of `fd` (already ours: a dup or a fresh kernel fd). */
  constructor(fd: number, what: string) {
    this.#fd = fd;
    this.#what = what;
    leaks.register(this, { fd, what }, this);
  }

  /** dup()s a caller's fd (close-on-exec) and owns the copy. */
  static dup(fd: number, what: string): OwnedFd {
    checkFd(fd);
    return new OwnedFd(kernelCall(`${what}: dup(${fd})`, () => native.dup(fd)), what);
  }

  /** The fd number; throws EBADF once closed. */
  get fd(): number {
    if (this.#fd < 0) throw closedError(this.#what);
    return this.#fd;
  }

  /** True once close() ran. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Closes the fd; later calls do nothing. */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    leaks.unregister(this);
    kernelCall(`${this.#what}: close`, () => native.close(fd));
  }
}
