/**
 * Waiting for an fd to become ready without blocking the event loop: a zero-timeout poll first (the common,
 * already-signalled case costs one syscall), then a libuv poll watcher in the addon, bounded by a deadline
 * and an AbortSignal. Used for sync_file fds (POLLIN when all fences signalled) and for the dma-buf fd
 * itself on kernels without EXPORT_SYNC_FILE (POLLIN: no pending writers; POLLOUT: no pending fences).
 */
import { native } from './native';
import { setDeadlineTimer } from '../deadline-timer';
import { abortError, argRangeError, argTypeError, checkSignal, fromNative, kernelCall, optionsOf, timeoutError } from '../errors';

/** Bounds for a wait. `deadline` is absolute (Date.now() ms) and wins over `timeoutMs` when both are set. */
export interface WaitOptions {
  /** Give up after this many milliseconds (rejects with code 'ETIMEDOUT'). */
  timeoutMs?: number;
  /** Absolute deadline in Date.now() milliseconds; used by callers that share one deadline across waits. */
  deadline?: number;
  /** Rejects with an AbortError when aborted. */
  signal?: AbortSignal;
}

/** The absolute deadline (Date.now() ms, or Infinity) of a set of wait options; validates them. */
export function deadlineOf(options: WaitOptions | null | undefined): number {
  const o = optionsOf(options);
  checkSignal(o.signal);
  if (o.deadline !== undefined) {
    if (typeof o.deadline !== 'number' || Number.isNaN(o.deadline)) {
      throw argTypeError('options.deadline', 'a Date.now() time in ms', o.deadline);
    }
    return o.deadline;
  }
  const t = o.timeoutMs;
  if (t === undefined) return Infinity;
  if (typeof t !== 'number') throw argTypeError('options.timeoutMs', 'a number of ms', t);
  if (Number.isNaN(t) || t < 0) throw argRangeError('options.timeoutMs', 'a number of ms >= 0', t);
  return Date.now() + t;
}

/** @internal An AbortSignal that follows two others; dispose() removes its listeners from them. */
export interface LinkedSignal {
  signal: AbortSignal;
  dispose(): void;
}

/**
 * @internal A signal aborted when `caller` or `owner` aborts (with that one's reason): an object's close()
 * aborts its pending waits through `owner`. Dispose it when the wait ends.
 */
export function linkSignals(caller: AbortSignal | undefined, owner: AbortSignal): LinkedSignal {
  if (!caller) return { signal: owner, dispose: () => undefined };
  if (caller.aborted) return { signal: caller, dispose: () => undefined };
  const both = new AbortController();
  const onCaller = (): void => both.abort(caller.reason);
  const onOwner = (): void => both.abort(owner.reason);
  if (owner.aborted) onOwner();
  caller.addEventListener('abort', onCaller, { once: true });
  owner.addEventListener('abort', onOwner, { once: true });
  return {
    signal: both.signal,
    dispose: () => {
      caller.removeEventListener('abort', onCaller);
      owner.removeEventListener('abort', onOwner);
    },
  };
}

/**
 * Resolves when `fd` is ready for `events` (POLLIN/POLLOUT bits). Rejects with ETIMEDOUT at the deadline,
 * with an AbortError on abort, or with the poll error; in every case the watcher and its dup are gone.
 * @param what names the awaited thing in error messages.
 */
export function waitFdReady(fd: number, events: number, what: string, options?: WaitOptions): Promise<void> {
  let ready: boolean;
  let deadline: number;
  let signal: AbortSignal | undefined;
  try {
    deadline = deadlineOf(options);
    signal = optionsOf(options).signal;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    ready = kernelCall(`waiting for ${what}`, () => native.pollReady(fd, events));
  } catch (err) {
    return Promise.reject(err);
  }
  if (ready) return Promise.resolve();
  if (deadline <= Date.now()) return Promise.reject(timeoutError(what));
  return new Promise<void>((resolve, reject) => {
    const finish = (err: Error | null): void => {
      cancelTimer();
      signal?.removeEventListener('abort', onAbort);
      waiter.cancel();
      if (err) reject(err);
      else resolve();
    };
    const onAbort = (): void => finish(abortError(signal!));
    let waiter: { cancel(): void };
    try {
      waiter = native.waitFd(fd, events, (err) => finish(err ? fromNative(err, `waiting for ${what}`) : null));
    } catch (err) {
      reject(fromNative(err, `waiting for ${what}`));
      return;
    }
    // Timers run before the poll phase of the same loop turn: after a long synchronous stretch, the deadline
    // can come due while the fd has long been ready. Look once more before calling it a timeout.
    const onDeadline = (): void => {
      let ready = false;
      try {
        ready = native.pollReady(fd, events);
      } catch {
        // The fd went bad meanwhile: report the timeout the caller asked for.
      }
      finish(ready ? null : timeoutError(what));
    };
    const cancelTimer = setDeadlineTimer(deadline, onDeadline);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
