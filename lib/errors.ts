/**
 * Typed errors. Every failure the library reports is an `Error` with a Node-style string `code` (the errno
 * name for kernel failures: 'EBADF', 'ENOTTY', 'EDEADLK', 'ETIMEDOUT', …) and a message that says what to do.
 */

/** Advice appended to kernel errors, by errno name: what the caller can do about it. */
const ADVICE: Record<string, string> = {
  EBADF: 'the fd is closed or was never open; pass an fd you own and keep it open until the call returns',
  ENOTTY: 'the fd is not a dma-buf (or sync_file) or this kernel lacks the ioctl; pass a dma-buf fd from udmabuf, a dma-heap or a DRM PRIME export',
  EINVAL: 'the kernel rejected the arguments; check the flags and sizes',
  ENOENT: 'the device node does not exist; check that the kernel has the driver (see README: kernel requirements)',
  EACCES: 'no permission on the device node; add the user to the group owning it (often "video") or adjust udev rules',
  EPERM: 'the operation is not permitted here',
  ENOMEM: 'the kernel could not allocate the memory; use a smaller size',
  EFBIG: 'the size is over the driver\'s limit (udmabuf: the size_limit_mb module parameter, 64 MiB by default)',
  ENOSYS: 'this build or kernel lacks the feature',
};

/** The library's error: `code` is a Node-style string code; kernel failures also carry `errno` and `syscall`. */
export class DmabufError extends Error {
  /** Node-style error code, e.g. 'EBADF', 'EDEADLK', 'ETIMEDOUT'. */
  readonly code: string;
  /** The positive errno, for kernel failures. */
  readonly errno?: number;
  /** The failed system call, e.g. 'ioctl(DMA_BUF_IOCTL_SYNC)'. */
  readonly syscall?: string;

  /** @param code Node-style code; @param message what happened and what to do. */
  constructor(code: string, message: string, options?: { errno?: number; syscall?: string; cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'DmabufError';
    this.code = code;
    if (options?.errno !== undefined) this.errno = options.errno;
    if (options?.syscall !== undefined) this.syscall = options.syscall;
  }
}

interface NativeErrorLike {
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
  message?: unknown;
}

/**
 * Wraps an error thrown by the addon (or by node:fs) into a DmabufError whose message names the operation
 * and adds advice. Argument errors (TypeError/RangeError) are rethrown as they are.
 * @param what the library operation that failed, e.g. 'DmaBuf.syncStart'
 */
export function fromNative(err: unknown, what: string): Error {
  if (err instanceof DmabufError || err instanceof TypeError || err instanceof RangeError) return err;
  const e = (err ?? {}) as NativeErrorLike;
  const code = typeof e.code === 'string' ? e.code : 'EIO';
  const syscall = typeof e.syscall === 'string' ? e.syscall : undefined;
  const detail = typeof e.message === 'string' ? e.message : String(err);
  const advice = ADVICE[code];
  return new DmabufError(code, `${what}: ${detail}${advice ? ` — ${advice}` : ''}`, {
    errno: typeof e.errno === 'number' ? Math.abs(e.errno) : undefined,
    syscall,
    cause: err,
  });
}

/** Calls `fn`, turning addon errors into DmabufErrors for `what`. */
export function kernelCall<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err, what);
  }
}

/** The error a library call rejects with when its AbortSignal fires: name 'AbortError', code 'ABORT_ERR'. */
export function abortError(signal: AbortSignal): Error {
  const err = new DmabufError('ABORT_ERR', 'The operation was aborted', { cause: signal.reason });
  err.name = 'AbortError';
  return err;
}

/** The error for a deadline that passed while waiting for `what`. */
export function timeoutError(what: string): DmabufError {
  return new DmabufError('ETIMEDOUT', `timed out waiting for ${what}; raise timeoutMs, or find the holder with query()`);
}

/** A TypeError with Node's code 'ERR_INVALID_ARG_TYPE', for an argument of the wrong type. */
export function argTypeError(message: string): TypeError {
  return Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG_TYPE' });
}

/** A RangeError with Node's code 'ERR_OUT_OF_RANGE', for an argument outside what the call can take. */
export function argRangeError(message: string): RangeError {
  return Object.assign(new RangeError(message), { code: 'ERR_OUT_OF_RANGE' });
}

/** A DmabufError for a wrong use of the API (code chosen by the caller, e.g. 'EPERM', 'EBUSY'). */
export function usageError(code: string, message: string): DmabufError {
  return new DmabufError(code, message);
}

/** The EBADF error for use of a closed object. */
export function closedError(what: string): DmabufError {
  return new DmabufError('EBADF', `${what} is closed; it cannot be used after close()`);
}
