/**
 * The doctor's checks: what this machine offers the library (device nodes, their permissions, the kernel's
 * dma-buf features) probed on real objects, each with plain advice when something is missing. The library
 * can run here when at least one dma-buf source (udmabuf or a dma-heap) allocates a buffer.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DmaBuf } from '../kernel/dma-buf';
import { native } from '../kernel/native';
import { VgemDevice } from '../kernel/vgem';
import type { SyncFile } from '../kernel/sync-file';

/** One finding. `ok` null: information only (neither needed nor missing). */
export interface Finding {
  /** What was checked, e.g. '/dev/udmabuf'. */
  what: string;
  /** true: present and usable; false: missing or unusable; null: information. */
  ok: boolean | null;
  /** What was found, in plain words. */
  found: string;
  /** How to get it, when it is missing or unusable. */
  advice?: string;
}

/** The doctor's report. */
export interface DoctorReport {
  /** The running kernel (uname -r). */
  kernel: string;
  /** Whether the library can run here: some dma-buf source allocated a buffer. */
  usable: boolean;
  /** The dma-buf sources that allocated a buffer ('udmabuf', 'dma-heap system', …). */
  sources: string[];
  /** Every finding, in the order checked. */
  findings: Finding[];
}

function errorText(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  return typeof e.code === 'string' ? e.code : typeof e.message === 'string' ? e.message : String(err);
}

/** "read and write" / "read only" / "no access" for the current user, by access(2). */
function accessOf(node: string): { rw: boolean; words: string } {
  const can = (mode: number): boolean => {
    try {
      fs.accessSync(node, mode);
      return true;
    } catch {
      return false;
    }
  };
  const r = can(fs.constants.R_OK);
  const w = can(fs.constants.W_OK);
  return { rw: r && w, words: r && w ? 'read and write' : r ? 'read only' : w ? 'write only' : 'no access' };
}

/** Advice for a node the current user may not open read-write: the group that owns it. */
function permissionAdvice(node: string): string {
  let group = '';
  try {
    const gid = fs.statSync(node).gid;
    const line = fs.readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.split(':')[2] === String(gid));
    group = line?.split(':')[0] ?? String(gid);
  } catch {
    // No /etc/group or no node: give the generic advice.
  }
  const user = os.userInfo().username;
  return group
    ? `add your user to the group owning ${node}: sudo usermod -aG ${group} ${user} (then log in again), or add a udev rule`
    : `give your user read-write access to ${node} (a udev rule, or its owning group)`;
}

function readSmall(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** Allocates one page from `alloc`, runs `use` on it and frees it; the error text if allocation fails. */
function probe(alloc: () => DmaBuf, use?: (buf: DmaBuf) => void): string | undefined {
  let buf: DmaBuf;
  try {
    buf = alloc();
  } catch (err) {
    return errorText(err);
  }
  try {
    use?.(buf);
  } finally {
    buf.close();
  }
  return undefined;
}

function checkUdmabuf(findings: Finding[], names: string[]): void {
  const node = '/dev/udmabuf';
  if (!fs.existsSync(node)) {
    findings.push({
      what: node,
      ok: false,
      found: 'missing',
      advice: 'load the udmabuf module: sudo modprobe udmabuf (the kernel needs CONFIG_UDMABUF)',
    });
    return;
  }
  const acc = accessOf(node);
  const limit = readSmall('/sys/module/udmabuf/parameters/size_limit_mb');
  const limitWords = limit ? `, up to ${limit} MiB per buffer (size_limit_mb)` : '';
  const failure = acc.rw ? probe(() => DmaBuf.allocUdmabuf(native.constants.PAGE_SIZE)) : 'EACCES';
  if (failure === undefined) {
    findings.push({ what: node, ok: true, found: `present, ${acc.words}, allocates${limitWords}` });
    names.push('udmabuf');
    return;
  }
  findings.push({
    what: node,
    ok: false,
    found: `present, ${acc.words}, allocation failed (${failure})${limitWords}`,
    advice: acc.rw ? 'check dmesg for udmabuf errors (the memfd must be sealable: CONFIG_MEMFD_CREATE, shmem)' : permissionAdvice(node),
  });
}

function checkHeaps(findings: Finding[], names: string[]): void {
  const dir = '/dev/dma_heap';
  const heaps = listDir(dir);
  if (heaps.length === 0) {
    findings.push({
      what: dir,
      ok: false,
      found: 'no dma-heaps',
      advice: 'the kernel needs CONFIG_DMABUF_HEAPS and CONFIG_DMABUF_HEAPS_SYSTEM (or a board heap such as CMA)',
    });
    return;
  }
  for (const heap of heaps) {
    const node = path.join(dir, heap);
    const acc = accessOf(node);
    const failure = acc.rw ? probe(() => DmaBuf.allocHeap(native.constants.PAGE_SIZE, heap)) : 'EACCES';
    if (failure === undefined) {
      findings.push({ what: node, ok: true, found: `dma-heap '${heap}', ${acc.words}, allocates` });
      names.push(`dma-heap ${heap}`);
    } else {
      findings.push({
        what: node,
        ok: false,
        found: `dma-heap '${heap}', ${acc.words}, allocation failed (${failure})`,
        advice: acc.rw ? `the heap refused a one-page buffer; check dmesg` : permissionAdvice(node),
      });
    }
  }
}

/** EXPORT_SYNC_FILE and IMPORT_SYNC_FILE, probed on a real buffer of the first working source. */
function checkSyncFile(findings: Finding[], alloc: (() => DmaBuf) | undefined): void {
  const what = 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE';
  if (!alloc) {
    findings.push({ what, ok: null, found: 'not probed: no dma-buf source to probe on' });
    return;
  }
  let result: Finding = { what, ok: true, found: 'both work (Linux 6.0+): device fences are waited for and attached' };
  probe(alloc, (buf) => {
    let sf: SyncFile | undefined;
    try {
      sf = buf.exportSyncFile('write');
      buf.importSyncFile(sf, 'write');
    } catch (err) {
      const code = errorText(err);
      result = {
        what,
        ok: false,
        found: `${sf ? 'IMPORT' : 'EXPORT'}_SYNC_FILE failed (${code})`,
        advice:
          code === 'ENOTTY'
            ? 'a kernel before 6.0: lock() still works (it polls the dma-buf), but unlock({ fence }) cannot attach device fences; upgrade to Linux 6.0 or later'
            : 'unexpected; check dmesg',
      };
    } finally {
      sf?.close();
    }
  });
  findings.push(result);
}

function checkVgem(findings: Finding[]): void {
  try {
    const dev = VgemDevice.open();
    findings.push({ what: 'vgem', ok: true, found: `present at ${dev.path} (used by the tests and the demo)` });
    dev.close();
  } catch (err) {
    const code = errorText(err);
    findings.push({
      what: 'vgem',
      ok: null,
      found: `not available (${code}); only the tests and the demo need it`,
      advice: 'for the tests and the demo: sudo modprobe vgem (the kernel needs CONFIG_DRM_VGEM)',
    });
  }
}

/** The driver of a DRM node: DRM_IOCTL_VERSION if we may open it, else the sysfs driver link. */
function drmDriver(node: string): string | undefined {
  try {
    const fd = native.openDevice(node);
    try {
      return native.drmDriverName(fd);
    } finally {
      native.close(fd);
    }
  } catch {
    try {
      return path.basename(fs.readlinkSync(`/sys/class/drm/${path.basename(node)}/device/driver`));
    } catch {
      return undefined;
    }
  }
}

function checkDrm(findings: Finding[]): void {
  const nodes = listDir('/dev/dri').filter((n) => /^(card|renderD)\d+$/.test(n));
  if (nodes.length === 0) {
    findings.push({ what: '/dev/dri', ok: null, found: 'no DRM devices (GPU, display, vgem); not needed for CPU use' });
    return;
  }
  for (const n of nodes) {
    const node = `/dev/dri/${n}`;
    const acc = accessOf(node);
    const driver = drmDriver(node);
    findings.push({
      what: node,
      ok: null,
      found: `DRM device, driver ${driver ?? 'unknown'}, ${acc.words}`,
      ...(acc.rw ? {} : { advice: permissionAdvice(node) }),
    });
  }
}

/** Runs every check on this machine. */
export function runChecks(): DoctorReport {
  const kernel = os.release();
  const findings: Finding[] = [{ what: 'kernel', ok: null, found: `Linux ${kernel} (${os.arch()})` }];
  const names: string[] = [];
  checkUdmabuf(findings, names);
  checkHeaps(findings, names);
  const first = names[0];
  const alloc =
    first === undefined
      ? undefined
      : first === 'udmabuf'
        ? () => DmaBuf.allocUdmabuf(native.constants.PAGE_SIZE)
        : () => DmaBuf.allocHeap(native.constants.PAGE_SIZE, first.slice('dma-heap '.length));
  checkSyncFile(findings, alloc);
  checkVgem(findings);
  checkDrm(findings);
  return { kernel, usable: names.length > 0, sources: names, findings };
}
