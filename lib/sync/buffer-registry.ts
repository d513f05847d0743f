/**
 * The buffers this thread's sync objects hold: for each ww class and buffer (inode), one dup() of the fd and
 * one WwMutex, shared by every DmabufSync of the thread and reference-counted. Tasks typically create a sync
 * per job over the same few buffers; sharing makes get()/put() a map lookup instead of a dup()/close() and a
 * lock-table slot each. The dup is closed and the mutex disposed when the last sync puts the buffer.
 */
import type { DmaBuf } from '../kernel/dma-buf';
import { KeptMapping, type Mapping } from '../kernel/mapping';
import { WwMutex } from '../ww/ww-mutex';
import type { WwClass } from '../ww/ww-class';

/** One registered buffer. */
export interface RegisteredBuffer {
  /** The library's own dup: valid while registered, whatever the caller does with theirs. */
  readonly buf: DmaBuf;
  /** The buffer's ww mutex in this class (keyed by inode: the same lock in every thread). */
  readonly mutex: WwMutex;
  refs: number;
  /** CPU mappings kept across locks (see lendMapping): mmap/munmap cost far more than a lock. */
  readonly kept: KeptMapping[];
}

const registry = new Map<WwClass, Map<bigint, RegisteredBuffer>>();

/** Takes a reference on `buf` in class `cls`, registering it (dup + mutex) on first use. */
export function registerBuffer(cls: WwClass, buf: DmaBuf): RegisteredBuffer {
  let byInode = registry.get(cls);
  if (!byInode) registry.set(cls, (byInode = new Map()));
  let r = byInode.get(buf.inode);
  if (!r) {
    const own = buf.dup();
    r = { buf: own, mutex: new WwMutex(cls, own.inode), refs: 0, kept: [] };
    byInode.set(own.inode, r);
  }
  r.refs++;
  return r;
}

/** Drops a reference; the last one closes the dup and disposes the mutex. */
export function unregisterBuffer(cls: WwClass, r: RegisteredBuffer): void {
  if (--r.refs > 0) return;
  const byInode = registry.get(cls);
  byInode?.delete(r.buf.inode);
  if (byInode?.size === 0) registry.delete(cls);
  for (const k of r.kept) k.close();
  r.kept.length = 0;
  r.mutex.dispose();
  r.buf.close();
}

/**
 * A CPU view of `r`'s buffer for one lock, revocable with `token` (the lock's view token): lent by a mapping
 * this thread keeps for the buffer, mapped on first need. Several holders of the thread (readers) each get
 * their own mapping, so forcing one off scratches only its view. Release the view at unlock.
 */
export function lendMapping(r: RegisteredBuffer, writable: boolean, token: bigint): Mapping {
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
  return found.lend(token);
}
