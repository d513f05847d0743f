/**
 * The shared fence wait, per thread: waiters on the same dma-buf (same inode) with the same kind of access
 * (readers, which wait for the writers' fences; or writers, which wait for all fences) share one exported
 * sync_file and one libuv poll. When it fires, every sharer is resolved in that one callback. Each waiter
 * keeps its own deadline and AbortSignal: one leaving (aborted, timed out) leaves the others waiting, and
 * the last one to leave closes the sync_file. Ten tasks waiting for one device job cost one export, one
 * poll watcher and one wake instead of ten of each.
 *
 * A sync_file is a fixed set of fences, taken at export. A waiter that joins an export taken before it
 * asked may need fences attached since; when the shared wait fires, one poll() of the dma-buf (the
 * buffer's current fences) decides for those late joiners, and if a newer fence is still pending they wait
 * again on a fresh export. See docs/design.md, "Shared fence waits".
 */
import { native, type NativeFdWaiter } from './native';
import { setDeadlineTimer } from '../deadline-timer';
import { abortError, fromNative, optionsOf, timeoutError } from '../errors';
import { deadlineOf, type WaitOptions } from './fd-wait';
import { exportFences, pollEvents } from './implicit-fences';
import { writes, type Access } from './access';
import type { SyncFile } from './sync-file';
import { OwnedFd } from './owned-fd';

const RESOLVED: Promise<void> = Promise.resolve();

/** The buffer a fence wait is for: an fd of it and its identity. */
export interface FencedBuffer {
  /** An fd of the dma-buf, used during the call only (a group that needs one later keeps its own dup). */
  readonly fd: number;
  /** The dma-buf's inode: waits of one thread on the same inode share their export. */
  readonly inode: bigint;
}

/** One waiter of a group. */
interface Sharer {
  deadline: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** The group's current export (or live poll) was taken after this waiter asked: it covers its fences. */
  covered: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** The waiters of one thread on one buffer and one kind of access, and what they wait on together. */
interface Group {
  readonly inode: bigint;
  readonly access: Access;
  /** The groups map the group is in (readers' or writers'). */
  readonly map: Map<bigint, Group>;
  /** poll() events of the dma-buf meaning "no conflicting fence pending". */
  readonly events: number;
  readonly what: string;
  sharers: Sharer[];
  /** Some sharer is not covered by the current export. */
  uncovered: boolean;
  /**
   * The group's own dup of the dma-buf: what it polls without EXPORT_SYNC_FILE; with it, taken when the first
   * late joiner joins, for the re-check and a re-export. Callers' fds are not used after their call: one
   * closing its fd while waiting cannot make the group poll another file.
   */
  buffer: OwnedFd | undefined;
  /** The exported fences; undefined on kernels without EXPORT_SYNC_FILE (the dma-buf itself is polled). */
  sf: SyncFile | undefined;
  /** The libuv poll on sf (or on the dma-buf); undefined once it fired or was cancelled. */
  waiter: NativeFdWaiter | undefined;
  readonly onPoll: (err: Error | null) => void;
  readonly onTimer: () => void;
  /** The deadline the group's timer is armed for (Infinity: none). */
  timerDue: number;
  cancelTimer: () => void;
}

/** This thread's groups, by inode: readers' and writers' (a writer waits for every fence, a reader for writers). */
const readGroups = new Map<bigint, Group>();
const writeGroups = new Map<bigint, Group>();

function noop(): void {}

/**
 * Waits (async) until no pending device fence on `buf` conflicts with `access`, sharing the export and the
 * poll with this thread's other waiters on the same buffer and kind of access. Rejects with ETIMEDOUT at
 * the deadline, with an AbortError on abort, or with the kernel's error; nothing is left open either way.
 * On kernels without EXPORT_SYNC_FILE the shared wait polls the dma-buf itself.
 */
export function waitForFences(buf: FencedBuffer, access: Access, options?: WaitOptions): Promise<void> {
  let deadline: number;
  let signal: AbortSignal | undefined;
  try {
    deadline = deadlineOf(options);
    signal = optionsOf(options).signal;
  } catch (err) {
    return Promise.reject(err);
  }
  if (signal?.aborted) return Promise.reject(abortError(signal));
  const map = writes(access) ? writeGroups : readGroups;
  const group = map.get(buf.inode);
  if (group !== undefined) return joinLate(group, buf, deadline, signal);
  const what = `device fences on a dma-buf (${writes(access) ? 'write' : 'read'})`;
  const events = pollEvents(access);
  let fd = -1;
  let sf: SyncFile | undefined;
  try {
    fd = buf.fd;
    sf = exportFences(fd, access);
    const ready = sf !== undefined ? native.pollReady(sf.fd, native.constants.POLLIN) : native.pollReady(fd, events);
    if (ready || deadline <= Date.now()) {
      sf?.close();
      return ready ? RESOLVED : Promise.reject(timeoutError(what));
    }
  } catch (err) {
    sf?.close();
    return Promise.reject(fromNative(err, `waiting for ${what}`));
  }
  const g: Group = {
    inode: buf.inode,
    access,
    map,
    events,
    what,
    sharers: [],
    uncovered: false,
    buffer: undefined,
    sf,
    waiter: undefined,
    onPoll: (err) => onPoll(g, err),
    onTimer: () => onTimer(g),
    timerDue: Infinity,
    cancelTimer: noop,
  };
  try {
    if (sf === undefined) g.buffer = OwnedFd.dup(fd, 'a shared fence wait\'s dma-buf');
    arm(g);
  } catch (err) {
    sf?.close();
    g.buffer?.close();
    return Promise.reject(fromNative(err, `waiting for ${what}`));
  }
  map.set(g.inode, g);
  return join(g, deadline, signal, true);
}

/**
 * A waiter for a buffer that already has a group. A live poll of the dma-buf (no export) covers every fence;
 * an export may miss fences attached since it was taken, so the group keeps a dup of the buffer to re-check.
 */
function joinLate(g: Group, buf: FencedBuffer, deadline: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    if (deadline <= Date.now()) return checkNow(buf.fd, g.events, g.what);
    if (g.sf !== undefined) g.buffer ??= OwnedFd.dup(buf.fd, 'a shared fence wait\'s dma-buf');
  } catch (err) {
    return Promise.reject(fromNative(err, `waiting for ${g.what}`));
  }
  // Joining costs no syscall after the first late joiner.
  return join(g, deadline, signal, g.sf === undefined);
}

/** @internal How many shared fence waits this thread has under way (groups), and how many waiters share them. */
export function sharedFenceWaits(): { groups: number; waiters: number } {
  let waiters = 0;
  for (const g of readGroups.values()) waiters += g.sharers.length;
  for (const g of writeGroups.values()) waiters += g.sharers.length;
  return { groups: readGroups.size + writeGroups.size, waiters };
}

/** A waiter whose deadline has passed on arrival: settled by one poll of the dma-buf. */
function checkNow(fd: number, events: number, what: string): Promise<void> {
  return native.pollReady(fd, events) ? RESOLVED : Promise.reject(timeoutError(what));
}

/** Adds a waiter to `g`: its promise, its abort listener, and the group timer if its deadline is the earliest. */
function join(g: Group, deadline: number, signal: AbortSignal | undefined, covered: boolean): Promise<void> {
  const s: Sharer = { deadline, signal, onAbort: undefined, covered, resolve: noop, reject: noop };
  const p = new Promise<void>((resolve, reject) => {
    s.resolve = resolve;
    s.reject = reject;
  });
  g.sharers.push(s);
  if (!covered) g.uncovered = true;
  if (signal !== undefined) {
    s.onAbort = () => leave(g, s, abortError(signal));
    signal.addEventListener('abort', s.onAbort, { once: true });
  }
  if (deadline < g.timerDue) {
    g.cancelTimer();
    g.timerDue = deadline;
    g.cancelTimer = setDeadlineTimer(deadline, g.onTimer);
  }
  return p;
}

/** Starts the libuv poll of `g`: on its sync_file, or on its dup of the dma-buf without one. */
function arm(g: Group): void {
  g.waiter = g.sf !== undefined ? native.waitFd(g.sf.fd, native.constants.POLLIN, g.onPoll) : native.waitFd(g.buffer!.fd, g.events, g.onPoll);
}

/** Settles one sharer (already taken out of the group's list). */
function settle(s: Sharer, err: Error | null): void {
  if (s.onAbort !== undefined) s.signal!.removeEventListener('abort', s.onAbort);
  if (err === null) s.resolve();
  else s.reject(err);
}

/** One sharer leaves (abort, timeout): the others keep waiting; the last one closes everything. */
function leave(g: Group, s: Sharer, err: Error): void {
  const i = g.sharers.indexOf(s);
  if (i < 0) return;
  g.sharers.splice(i, 1);
  settle(s, err);
  if (g.sharers.length === 0) dispose(g);
}

/** Ends the group: stops its poll and timer, closes its sync_file and its dup (once each) and forgets it. */
function dispose(g: Group): void {
  if (g.map.get(g.inode) === g) g.map.delete(g.inode);
  g.waiter?.cancel();
  g.waiter = undefined;
  g.cancelTimer();
  g.cancelTimer = noop;
  g.timerDue = Infinity;
  const sf = g.sf;
  g.sf = undefined;
  sf?.close();
  const buffer = g.buffer;
  g.buffer = undefined;
  buffer?.close();
}

/** Settles every sharer with `err` (null: resolved) in one pass, and ends the group. */
function settleAll(g: Group, err: Error | null): void {
  const sharers = g.sharers;
  g.sharers = [];
  dispose(g);
  for (let i = 0; i < sharers.length; i++) settle(sharers[i] as Sharer, err);
}

/** The libuv poll fired: the export (or the dma-buf) is ready, or the poll failed. */
function onPoll(g: Group, err: Error | null): void {
  g.waiter = undefined;
  if (err !== null) settleAll(g, fromNative(err, `waiting for ${g.what}`));
  else ready(g);
}

/**
 * The export has signalled. Sharers it covers are done; if some joined after it was taken, one poll() of
 * the dma-buf says whether a fence attached since is still pending: if so, those wait again on a new export.
 */
function ready(g: Group): void {
  if (!g.uncovered || g.sharers.length === 0) {
    settleAll(g, null);
    return;
  }
  let idle: boolean;
  try {
    idle = native.pollReady(g.buffer!.fd, g.events);
  } catch (err) {
    settleAll(g, fromNative(err, `waiting for ${g.what}`));
    return;
  }
  if (idle) {
    settleAll(g, null);
    return;
  }
  const late: Sharer[] = [];
  const done: Sharer[] = [];
  for (const s of g.sharers) (s.covered ? done : late).push(s);
  g.sharers = late;
  // The late joiner that set the flag may have left meanwhile: then nobody waits any more.
  if (late.length === 0) dispose(g);
  else reexport(g);
  for (const s of done) settle(s, null);
}

/** Waits again for the group's remaining sharers on a fresh export, which covers all of them. */
function reexport(g: Group): void {
  g.waiter?.cancel();
  g.waiter = undefined;
  const old = g.sf;
  g.sf = undefined;
  old?.close();
  const fd = g.buffer!.fd;
  try {
    g.sf = exportFences(fd, g.access);
    const isReady = g.sf !== undefined ? native.pollReady(g.sf.fd, native.constants.POLLIN) : native.pollReady(fd, g.events);
    for (const s of g.sharers) s.covered = true;
    g.uncovered = false;
    if (isReady) {
      settleAll(g, null);
      return;
    }
    arm(g);
  } catch (err) {
    settleAll(g, fromNative(err, `waiting for ${g.what}`));
    return;
  }
  if (g.timerDue === Infinity) armTimer(g);
}

/** Arms the group's timer for its sharers' earliest deadline (none when every deadline is Infinity). */
function armTimer(g: Group): void {
  let next = Infinity;
  for (const s of g.sharers) if (s.deadline < next) next = s.deadline;
  if (next === Infinity) return;
  g.timerDue = next;
  g.cancelTimer = setDeadlineTimer(next, g.onTimer);
}

/**
 * The group's earliest deadline came due. Timers run before the poll phase of the same loop turn, so the
 * fences may have signalled meanwhile: look once first. Otherwise the sharers whose deadline has passed time
 * out and the timer is armed for the next one.
 */
function onTimer(g: Group): void {
  const due = g.timerDue;
  g.timerDue = Infinity;
  g.cancelTimer = noop;
  if (g.sharers.length === 0) return;
  let isReady = false;
  try {
    isReady = native.pollReady(g.sf !== undefined ? g.sf.fd : g.buffer!.fd, g.sf !== undefined ? native.constants.POLLIN : g.events);
  } catch {
    // The fd went bad meanwhile: report the timeouts the callers asked for.
  }
  if (isReady) {
    g.waiter?.cancel();
    g.waiter = undefined;
    ready(g);
    return;
  }
  const now = Math.max(Date.now(), due);
  const left: Sharer[] = [];
  const late: Sharer[] = [];
  for (const s of g.sharers) (s.deadline <= now ? late : left).push(s);
  g.sharers = left;
  if (left.length === 0) dispose(g);
  else armTimer(g);
  for (const s of late) settle(s, timeoutError(g.what));
}
