/**
 * The process's kernel-object fds as their /proc/self/fd link targets: dma-bufs ("/dmabuf:"), sync_files
 * and other anon inodes ("anon_inode:") and DRM device nodes ("/dev/dri/"). Tests of close() compare the
 * list before and after: whatever close() was called in, nothing may stay open.
 */
import * as fs from 'node:fs';

/** The event loop's own anon inodes (libuv opens and closes these on its own schedule). */
const LOOP_INODES = /^anon_inode:\[?(eventfd|eventpoll|io_uring|timerfd|signalfd|inotify)\]?$/;

/** Every open fd of this process and its /proc/self/fd link target. */
export function openFds(): Map<string, string> {
  const fds = new Map<string, string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      fds.set(fd, fs.readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // The directory fd readdir used is gone by now.
    }
  }
  return fds;
}

/** The sorted link targets of every open dma-buf, anon-inode and /dev/dri fd of this process. */
export function kernelFds(): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the directory fd readdir used is gone by now
    }
    if (target.startsWith('anon_inode:') && LOOP_INODES.test(target)) continue;
    if (target.includes('/dmabuf:') || target.startsWith('anon_inode:') || target.startsWith('/dev/dri/')) out.push(target);
  }
  return out.sort();
}

/** Lets finished and cancelled uv_poll waiters run their close callbacks (they close their dups). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}
