/**
 * Access modes and their kernel flag sets. A CPU or device task declares how it will touch a buffer:
 * 'read', 'write' or 'rw' (read and write). The mode picks the DMA_BUF_SYNC_* flags of the cache bracket,
 * which fences to wait for (a reader waits for writers only; a writer waits for everyone), and which kind of
 * fence an imported device job becomes (write fences are exclusive, read fences shared).
 */
import { native } from './native';
import { argTypeError } from '../errors';

/** How a task will touch a buffer. */
export type Access = 'read' | 'write' | 'rw';

/** Throws a TypeError (code ERR_INVALID_ARG_TYPE) unless `access` is 'read', 'write' or 'rw'. */
export function checkAccess(access: unknown, name = 'access'): Access {
  if (access === 'read' || access === 'write' || access === 'rw') return access;
  throw argTypeError(name, "'read', 'write' or 'rw'", access);
}

/** The DMA_BUF_SYNC_READ/WRITE/RW bits for an access mode. */
export function syncFlags(access: Access): number {
  const c = native.constants;
  return access === 'read' ? c.DMA_BUF_SYNC_READ : access === 'write' ? c.DMA_BUF_SYNC_WRITE : c.DMA_BUF_SYNC_RW;
}

/** True when the mode writes (so it excludes every other user, and waits for all fences). */
export function writes(access: Access): boolean {
  return access !== 'read';
}
