/**
 * Typed errors. Every failure the library reports is an `Error` with a Node-style string `code` (the errno
 * name for kernel failures: 'EBADF', 'ENOTTY', 'EDEADLK', 'ETIMEDOUT', …) and a message that says what to do.
 * Wrong arguments are TypeError / RangeError with Node's codes ('ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE'),
 * built by the helpers below so that every message names the argument and describes the value safely.
 */
import { inspect } from 'node:util';

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

/** Options of the DmabufError constructor. */
export interface DmabufErrorOptions {
  /** The positive errno, for kernel failures. */
  errno?: number;
  /** The failed system call. */
  syscall?: string;
  /** The underlying error. */
  cause?: unknown;
  /** Several failures reported together (as AggregateError's `errors`). */
  errors?: readonly unknown[];
}

/** The library's error: `code` is a Node-style string code; kernel failures also carry `errno` and `syscall`. */
export class DmabufError extends Error {
  /** Node-style error code, e.g. 'EBADF', 'EDEADLK', 'ETIMEDOUT'. */
  readonly code: string;
  /** The positive errno, for kernel failures. */
  readonly errno?: number;
  /** The failed system call, e.g. 'ioctl(DMA_BUF_IOCTL_SYNC)'. */
  readonly syscall?: string;
  /** When one call failed in several ways (e.g. unlock() on several buffers): every failure, in order. */
  readonly errors?: readonly unknown[];

  /**
   * @param code Node-style code.
   * @param message what happened and what to do.
   * @param options errno, syscall, cause, errors.
   */
  constructor(code: string, message: string, options?: DmabufErrorOptions) {
    if (typeof code !== 'string') throw argTypeError('code', 'a string', code);
    if (typeof message !== 'string') throw argTypeError('message', 'a string', message);
    const o = optionsOf(options);
    if (o.errno !== undefined && typeof o.errno !== 'number') throw argTypeError('options.errno', 'a number', o.errno);
    if (o.syscall !== undefined && typeof o.syscall !== 'string') throw argTypeError('options.syscall', 'a string', o.syscall);
    if (o.errors !== undefined && !Array.isArray(o.errors)) throw argTypeError('options.errors', 'an array', o.errors);
    super(message, o.cause !== undefined ? { cause: o.cause } : undefined);
    this.name = 'DmabufError';
    this.code = code;
    if (o.errno !== undefined) this.errno = o.errno;
    if (o.syscall !== undefined) this.syscall = o.syscall;
    if (o.errors !== undefined) this.errors = [...o.errors];
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
  if (err instanceof DmabufError || isArgumentError(err)) return err as Error;
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

/**
 * A TypeError/RangeError, also one made in another realm (jest runs the library in a vm context while the
 * addon's functions, and so the errors they throw, belong to the main one: `instanceof` is false there).
 */
function isArgumentError(err: unknown): boolean {
  if (err instanceof TypeError || err instanceof RangeError) return true;
  const e = err as { name?: unknown; code?: unknown } | null;
  return typeof e === 'object' && e !== null && (e.name === 'TypeError' || e.name === 'RangeError') && typeof e.code === 'string' && e.code.startsWith('ERR_');
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

/**
 * A short description of any JavaScript value for an error message. Never throws: symbols, bigints,
 * functions, proxies and objects whose toString throws are all described (formatting a message must not
 * raise an error of its own).
 */
export function describe(value: unknown): string {
  try {
    switch (typeof value) {
      case 'string':
        return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
      case 'number':
      case 'boolean':
      case 'undefined':
        return String(value);
      case 'bigint':
        return `${value}n`;
      case 'symbol':
        return value.toString();
      case 'function':
        return `a function${value.name ? ` (${value.name})` : ''}`;
      default:
        if (value === null) return 'null';
        return inspect(value, { depth: 0, breakLength: Infinity, maxArrayLength: 3, maxStringLength: 40, customInspect: false });
    }
  } catch {
    return `a value of type ${typeof value}`;
  }
}

/**
 * A TypeError with Node's code 'ERR_INVALID_ARG_TYPE' for argument `name` (e.g. 'fd', 'options.timeoutMs'):
 * "The "fd" argument must be an integer file descriptor (got "3")".
 */
export function argTypeError(name: string, expected: string, value: unknown): TypeError {
  return Object.assign(new TypeError(`The "${name}" argument must be ${expected} (got ${describe(value)})`), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
}

/** A RangeError with Node's code 'ERR_OUT_OF_RANGE' for argument `name`, of the right type but outside what the call can take. */
export function argRangeError(name: string, expected: string, value: unknown): RangeError {
  return Object.assign(new RangeError(`The "${name}" argument must be ${expected} (got ${describe(value)})`), {
    code: 'ERR_OUT_OF_RANGE',
  });
}

/** The options object of a call: undefined and null mean none; anything else but a plain object is a TypeError. */
export function optionsOf<T extends object>(options: T | null | undefined, name = 'options'): Partial<T> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw argTypeError(name, 'an object', options);
  return options;
}

/** Checks an optional AbortSignal option. */
export function checkSignal(signal: unknown, name = 'options.signal'): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw argTypeError(name, 'an AbortSignal', signal);
}

/** Checks an optional string option (a label). */
export function checkName(value: unknown, name: string): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  throw argTypeError(name, 'a string', value);
}

/** A DmabufError for a wrong use of the API (code chosen by the caller, e.g. 'EPERM', 'EBUSY'). */
export function usageError(code: string, message: string): DmabufError {
  return new DmabufError(code, message);
}

/** The EBADF error for use of a closed object. */
export function closedError(what: string): DmabufError {
  return new DmabufError('EBADF', `${what} is closed; it cannot be used after close()`);
}
