/**
 * The lock store's file: where it lives, who may open it, and who formats it.
 *
 * One file per domain, `<dir>/<domain>.store`, on tmpfs: `$DMABUF_SYNC_STORE_DIR` if set, else
 * `$XDG_RUNTIME_DIR/dmabuf-sync`, else `/dev/shm/dmabuf-sync-<uid>`. The directory is created 0700 and the
 * file 0600, so only the same user can open them; both are refused unless they are what we would have
 * created (a real directory / regular file with one link, owned by us, no group or world bits on the
 * directory, no world bits on the file). The file is opened O_NOFOLLOW|O_CLOEXEC.
 *
 * A group-shared domain (opt-in: several uids in one unix group lock the same buffers) lives in
 * `<base>-g<gid>/<domain>.store`, `<base>` being `$DMABUF_SYNC_STORE_DIR` or `/dev/shm/dmabuf-sync`; its
 * directory is 02770 and its file 0660, both of that group. Their owner may be any member, but they are
 * refused unless they are of that group with no world bits; only members may open them.
 *
 * Formatting is decided race-free with an OFD lock on byte 0, as SQLite's dead-man switch: every attached
 * thread holds it shared; an opener that gets it exclusively is alone, so the file is unused (new, or left
 * by a dead run) and it (re)formats it, then downgrades to shared. An opener that cannot get it exclusively
 * waits for it shared (a formatter holds it exclusively for milliseconds), then checks magic, version and
 * size: a mismatch is a typed error, never a reformat of a table in use.
 * @internal
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DmabufError } from '../errors';
import { native } from '../kernel/native';
import {
  CAPACITY_ENV,
  C_NEXT_FREE,
  CTX_WORDS,
  FORMAT_BYTE,
  HEADER_WORDS,
  H_FREE_CTX,
  H_FREE_REC,
  H_MAGIC,
  H_NCTX,
  H_NMUTEX,
  H_NPART,
  H_NREC,
  H_VERSION,
  MAGIC,
  MUTEX_WORDS,
  PART_WORDS,
  REC_WORDS,
  R_NEXT,
  VERSION,
  parseCapacity,
  storeBytes,
  type Capacity,
} from './layout';

/** Environment variable naming the directory of the stores (tests, containers). */
export const STORE_DIR_ENV = 'DMABUF_SYNC_STORE_DIR';

/** Name of the store everybody uses unless a domain is given. */
export const DEFAULT_DOMAIN = 'default';

/** An opened store: the mapping (owned by the addon, with the fd) and its capacities. */
export interface StoreFile {
  path: string;
  fd: number;
  buffer: ArrayBuffer;
  capacity: Capacity;
  /** This opener formatted it (new file, or one left by a run that is gone). */
  formatted: boolean;
}

function uid(): number {
  return process.geteuid?.() ?? 0;
}

/** The directory of the stores (not created). */
export function storeDir(): string {
  const forced = process.env[STORE_DIR_ENV];
  if (forced !== undefined && forced !== '') return forced;
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg !== undefined && xdg !== '' && path.isAbsolute(xdg)) return path.join(xdg, 'dmabuf-sync');
  return `/dev/shm/dmabuf-sync-${uid()}`;
}

/** The directory of a group-shared domain's store (see the file comment). */
export function groupStoreDir(gid: number): string {
  const forced = process.env[STORE_DIR_ENV];
  return `${forced !== undefined && forced !== '' ? forced : '/dev/shm/dmabuf-sync'}-g${gid}`;
}

/**
 * A unix group (name or gid) as a gid this process is a member of (EACCES otherwise: it could not open the
 * group's store anyway), for a group-shared domain.
 */
export function resolveGroup(group: unknown): number {
  let gid: number | undefined;
  if (typeof group === 'number' && Number.isInteger(group) && group >= 0 && group < 2 ** 32) gid = group;
  else if (typeof group === 'string' && /^[A-Za-z0-9_][A-Za-z0-9._-]*\$?$/.test(group)) {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name === group && id !== undefined) gid = Number(id);
    }
    if (gid === undefined) throw new DmabufError('ENOENT', `unix group '${group}' is not in /etc/group: give an existing group's name or gid`);
  } else {
    throw new DmabufError('EINVAL', `lock group ${JSON.stringify(String(group))} is not valid: give a unix group name or a gid`);
  }
  const member = process.getegid?.() === gid || (process.getgroups?.() ?? []).includes(gid) || process.geteuid?.() === 0;
  if (!member) {
    throw new DmabufError('EACCES', `this process is not a member of group ${String(group)} (gid ${gid}): add its user to the group to share its lock domain`);
  }
  return gid;
}

/** Checks a domain name: it becomes a file name. */
export function checkDomain(domain: unknown): string {
  if (typeof domain !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(domain)) {
    throw new DmabufError(
      'EINVAL',
      `lock domain ${JSON.stringify(String(domain))} is not valid: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'`,
    );
  }
  return domain;
}

function refused(file: string, why: string): DmabufError {
  return new DmabufError(
    'EACCES',
    `refusing the lock store ${file}: ${why}. Remove it (nobody must be using it) or point ${STORE_DIR_ENV} at a ` +
      'directory of your own',
  );
}

/** Creates (0700; a group's: 02770 of that group) or checks the store directory. */
function ensureDir(dir: string, gid: number | undefined): void {
  let created = false;
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if (created && gid !== undefined) {
    // Group first, then the mode (the umask may have masked mkdir's); setgid so files get the group.
    fs.chownSync(dir, -1, gid);
    fs.chmodSync(dir, 0o2770);
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw refused(dir, 'it is not a directory (a symlink?)');
  if (gid === undefined) {
    if (st.uid !== uid()) throw refused(dir, `it is owned by uid ${st.uid}, not by this process's uid ${uid()}`);
    if ((st.mode & 0o077) !== 0) throw refused(dir, `its mode is 0${(st.mode & 0o777).toString(8)}, group or others may enter it (want 0700)`);
  } else {
    if (st.gid !== gid) throw refused(dir, `it belongs to group ${st.gid}, not to the domain's group ${gid}`);
    if ((st.mode & 0o007) !== 0) throw refused(dir, `its mode is 0${(st.mode & 0o777).toString(8)}, others may enter it (want 02770)`);
  }
}

/**
 * Checks what we opened is a store we may use: a regular file with one link, ours (a group domain's: of
 * that group), no world bits.
 */
function checkFile(file: string, fd: number, gid: number | undefined): fs.Stats {
  const st = fs.fstatSync(fd);
  if (!st.isFile()) throw refused(file, 'it is not a regular file');
  if (st.nlink !== 1) throw refused(file, `it has ${st.nlink} links (want 1: a hard link could point it elsewhere)`);
  if (gid === undefined && st.uid !== uid()) throw refused(file, `it is owned by uid ${st.uid}, not by this process's uid ${uid()}`);
  if (gid !== undefined && st.gid !== gid) throw refused(file, `it belongs to group ${st.gid}, not to the domain's group ${gid}`);
  if ((st.mode & 0o007) !== 0) throw refused(file, `its mode is 0${(st.mode & 0o777).toString(8)}: others may read or write it`);
  return st;
}

/** Reads the header words that say which layout and capacities the file has. */
function readHeader(fd: number): Int32Array {
  const header = new Int32Array(HEADER_WORDS);
  fs.readSync(fd, header, 0, HEADER_WORDS * 4, 0);
  return header;
}

function versionError(file: string, header: Int32Array, size: number): DmabufError {
  const magic = header[H_MAGIC] as number;
  const what =
    magic !== MAGIC
      ? `it is not a dmabuf-sync lock store of this kind (magic 0x${(magic >>> 0).toString(16)}, want 0x${MAGIC.toString(16)})`
      : header[H_VERSION] !== VERSION
        ? `it has layout version ${header[H_VERSION]}, this dmabuf-sync uses version ${VERSION}`
        : `its size ${size} does not match its capacities`;
  return new DmabufError(
    'EPROTO',
    `the lock store ${file} is in use by another program and ${what}: processes that lock the same buffers must ` +
      'use the same dmabuf-sync version; stop the others, or use a separate domain (or directory) for this one',
  );
}

/** Writes an empty table: every context and record on its free list, magic and version last. */
function format(i32: Int32Array, cap: Capacity): void {
  i32.fill(0);
  i32[H_NPART] = cap.participants;
  i32[H_NMUTEX] = cap.mutexes;
  i32[H_NCTX] = cap.contexts;
  i32[H_NREC] = cap.records;
  const ctxBase = HEADER_WORDS + cap.participants * PART_WORDS + cap.mutexes * MUTEX_WORDS;
  const recBase = ctxBase + cap.contexts * CTX_WORDS;
  // Free lists in index order so that low slots are reused first (keeps the working set small).
  for (let c = 0; c < cap.contexts; c++) i32[ctxBase + c * CTX_WORDS + C_NEXT_FREE] = c + 1 < cap.contexts ? c + 2 : 0;
  for (let r = 0; r < cap.records; r++) i32[recBase + r * REC_WORDS + R_NEXT] = r + 1 < cap.records ? r + 2 : 0;
  i32[H_FREE_CTX] = 1;
  i32[H_FREE_REC] = 1;
  i32[H_VERSION] = VERSION;
  Atomics.store(i32, H_MAGIC, MAGIC);
}

/**
 * Opens (creating and formatting if unused) the store of `domain` and maps it. The returned fd belongs to the
 * addon (closed when this thread ends); it carries this thread's shared lock on the format byte.
 */
export function openStore(domain: string, gid?: number): StoreFile {
  const dir = gid === undefined ? storeDir() : groupStoreDir(gid);
  ensureDir(dir, gid);
  const file = path.join(dir, `${checkDomain(domain)}.store`);
  const { O_RDWR, O_CREAT, O_NOFOLLOW } = fs.constants;
  let fd: number;
  try {
    // libuv adds O_CLOEXEC to every open.
    fd = fs.openSync(file, O_RDWR | O_CREAT | O_NOFOLLOW, gid === undefined ? 0o600 : 0o660);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw refused(file, 'it is a symbolic link');
    if (code === 'EACCES' || code === 'EPERM') {
      throw new DmabufError(code, `cannot open the lock store ${file} (${code}): it belongs to another user`);
    }
    throw err;
  }
  let attached = false;
  try {
    if (gid !== undefined && fs.fstatSync(fd).uid === uid()) {
      // Ours (maybe just created under a umask): make it the group's, read-write for the group.
      fs.fchownSync(fd, -1, gid);
      fs.fchmodSync(fd, 0o660);
    }
    checkFile(file, fd, gid);
    let formatted = false;
    let capacity: Capacity;
    if (native.ofdLock(fd, 'write', FORMAT_BYTE, 1, false)) {
      // Alone: nobody is attached, whatever the file holds is ours to (re)format.
      capacity = parseCapacity(process.env[CAPACITY_ENV]);
      const size = storeBytes(capacity);
      fs.ftruncateSync(fd, 0);
      fs.ftruncateSync(fd, size);
      const buffer = native.storeAttach(fd, size);
      attached = true;
      format(new Int32Array(buffer), capacity);
      native.ofdLock(fd, 'read', FORMAT_BYTE, 1, false); // downgrade: others may attach now
      formatted = true;
      return { path: file, fd, buffer, capacity, formatted };
    }
    // In use (or being formatted right now): wait for the formatter, then check what it is.
    native.ofdLock(fd, 'read', FORMAT_BYTE, 1, true);
    const st = checkFile(file, fd, gid);
    const header = readHeader(fd);
    capacity = {
      participants: header[H_NPART] as number,
      mutexes: header[H_NMUTEX] as number,
      contexts: header[H_NCTX] as number,
      records: header[H_NREC] as number,
    };
    if (header[H_MAGIC] !== MAGIC || header[H_VERSION] !== VERSION || st.size !== storeBytes(capacity)) {
      throw versionError(file, header, st.size);
    }
    const buffer = native.storeAttach(fd, st.size);
    return { path: file, fd, buffer, capacity, formatted };
  } catch (err) {
    // Once attached, the fd belongs to the addon (closed when this thread ends).
    if (!attached) fs.closeSync(fd);
    throw err;
  }
}
