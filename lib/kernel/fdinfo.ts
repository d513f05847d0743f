/**
 * What the kernel says about an fd in /proc/self/fdinfo. A dma-buf's entry names its exporter (exp_name)
 * and size; other files (a memfd, a pipe, a sync_file) have no exp_name line, which is how we tell a
 * dma-buf from anything else without an ioctl.
 */
import * as fs from 'node:fs';
import { DmabufError } from '../errors';

/**
 * A dma-buf's size and exporter. Throws EBADF for a closed fd and ENOTTY for an fd that is not a dma-buf.
 * `shownFd` is the fd named in those errors: the caller's, when `fd` is our dup of it.
 */
export function dmaBufInfo(fd: number, shownFd = fd): { size: number; exporter: string } {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch (err) {
    throw new DmabufError('EBADF', `fd ${shownFd} is not open — pass an open dma-buf fd`, { cause: err });
  }
  const exporter = /^exp_name:\s*(\S+)/m.exec(text)?.[1];
  const size = /^size:\s*(\d+)/m.exec(text)?.[1];
  if (exporter === undefined || size === undefined) {
    throw new DmabufError('ENOTTY', `fd ${shownFd} is not a dma-buf — pass an fd from udmabuf, a dma-heap or a DRM PRIME export`);
  }
  return { size: Number(size), exporter };
}

/** Whether `fd` is an open dma-buf. */
export function isDmaBuf(fd: number): boolean {
  try {
    dmaBufInfo(fd);
    return true;
  } catch {
    return false;
  }
}
