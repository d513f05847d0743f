/**
 * The buffers this thread's sync objects hold: for each ww class and buffer (inode), one dup() of the fd and
 * one WwMutex, shared by every DmabufSync of the thread and reference-counted. Tasks typically create a sync
 * per job over the same few buffers; sharing makes get()/put() a map lookup instead of a dup()/close() and a
 * lock-table slot each.
 *
 * When the last sync puts a buffer, the main thread keeps the registration idle for a while (with its kept
 * mappings) instead of closing it at once: a task that puts and gets the same buffers from job to job would
 * otherwise dup, map, unmap and close them every time, which cost more than the lock under emulation. An idle
 * registration is closed when the buffer's DmaBuf is closed in this thread (so closing your buffer still
 * frees it), after IDLE_MS without use, or when more than IDLE_MAX are idle. Worker threads close at once:
 * a terminated worker runs no JavaScript to close what it kept, and the fds are the process's.
 */
import { isMainThread } from 'node:worker_threads';
import { setTimeout } from 'node:timers';
import { setDmaBufCloseHook, type DmaBuf } from '../kernel/dma-buf';
import { KeptMapping } from '../kernel/mapping';
import { WwMutex } from '../ww/ww-mutex';
import type { WwClass } from '../ww/ww-class';

/** How long an unused registration stays idle (ms). */
const IDLE_MS = 1000;
/** How many registrations may be idle at once. */
const IDLE_MAX = 256;

/** One registered buffer. */
export interface RegisteredBuffer {
  /** The library's own dup: valid while registered, whatever the caller does with theirs. */
  readonly buf: DmaBuf;
  /** The buffer's ww mutex in this class (keyed by inode: the same lock in every thread). */
  readonly mutex: WwMutex;
  refs: number;
  /** CPU mappings kept across locks (see keptMappingFor): mmap/munmap cost far more than a lock. */
  readonly kept: KeptMapping[];
  /** The class it is registered in. */
  readonly cls: WwClass;
  /** When it became idle (Date.now()), if it is. */
  idleSince: number;
  /** The caller closed a DmaBuf of it while a sync still had it: close it at the last put, not idle. */
  closeWhenIdle: boolean;
}

const registry = new Map<WwClass, Map<bigint, RegisteredBuffer>>();
/** Idle registrations (refs 0), least recently used first. */
const idle = new Set<RegisteredBuffer>();
let sweepTimer: NodeJS.Timeout | undefined;

/** The registrations' own dups: closing one of them is not the caller closing the buffer. */
const ownDups = new WeakSet<DmaBuf>();

setDmaBufCloseHook((closed) => {
  if (ownDups.has(closed)) return;
  for (const byInode of registry.values()) {
    const r = byInode.get(closed.inode);
    if (r === undefined) continue;
    if (r.refs === 0) close(r);
    else r.closeWhenIdle = true;
  }
});

/** Takes a reference on `buf` in class `cls`, registering it (dup + mutex) on first use. */
export function registerBuffer(cls: WwClass, buf: DmaBuf): RegisteredBuffer {
  let byInode = registry.get(cls);
  if (!byInode) registry.set(cls, (byInode = new Map()));
  let r = byInode.get(buf.inode);
  if (!r) {
    const own = buf.dup();
    ownDups.add(own);
    r = { buf: own, mutex: new WwMutex(cls, own.inode), refs: 0, kept: [], cls, idleSince: 0, closeWhenIdle: false };
    byInode.set(own.inode, r);
  } else {
    if (r.refs === 0) idle.delete(r);
    r.closeWhenIdle = false; // the caller has an open DmaBuf of it again
  }
  r.refs++;
  return r;
}

/** Drops a reference; after the last one the registration goes idle (main thread) or is closed. */
export function unregisterBuffer(r: RegisteredBuffer): void {
  if (--r.refs > 0) return;
  if (!isMainThread || r.closeWhenIdle) {
    close(r);
    return;
  }
  r.idleSince = Date.now();
  idle.add(r);
  if (idle.size > IDLE_MAX) close(idle.values().next().value as RegisteredBuffer);
  if (sweepTimer === undefined) {
    // node:timers (test fake clocks leave it alone); unref'd: an idle buffer never keeps the process alive.
    sweepTimer = setTimeout(sweep, IDLE_MS);
    sweepTimer.unref();
  }
}

/** Closes the registrations idle for IDLE_MS; re-arms while any stay idle. */
function sweep(): void {
  sweepTimer = undefined;
  const now = Date.now();
  for (const r of idle) {
    if (now - r.idleSince < IDLE_MS) break; // least recently used first: the rest are younger
    close(r);
  }
  if (idle.size > 0) {
    sweepTimer = setTimeout(sweep, IDLE_MS);
    sweepTimer.unref();
  }
}

/** Ends a registration: its mappings, its mutex and its dup. */
function close(r: RegisteredBuffer): void {
  idle.delete(r);
  const byInode = registry.get(r.cls);
  byInode?.delete(r.buf.inode);
  if (byInode?.size === 0) registry.delete(r.cls);
  for (const k of r.kept) k.close();
  r.kept.length = 0;
  r.mutex.dispose();
  r.buf.close();
}

/**
 * The mapping this thread keeps for `r`'s buffer that will lend the next CPU view (KeptMapping.lend: one
 * view per lock, released at unlock), mapped on first need. Several holders of the thread (readers) each get
 * their own mapping, so forcing one off scratches only its view.
 */
export function keptMappingFor(r: RegisteredBuffer, writable: boolean): KeptMapping {
  let found: KeptMapping | undefined;
  for (let i = r.kept.length - 1; i >= 0; i--) {
    const k = r.kept[i] as KeptMapping;
    if (k.available && k.writable === writable) {
      found = k;
      break;
    }
    if (k.spent) {
      // Scratched, or written through read-only: not lent again.
      k.close();
      r.kept.splice(i, 1);
    }
  }
  if (found === undefined) {
    found = KeptMapping.open(r.buf.fd, r.buf.size, writable, `dma-buf inode ${r.buf.inode} (${r.buf.exporter})`);
    r.kept.push(found);
  }
  return found;
}
