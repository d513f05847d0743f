// Property (issue 16, "close() closes"): whatever valid and invalid calls a DmaBuf, SyncFile, VgemDevice,
// DmabufSync or WwMutex/AcquireContext went through, every invalid call fails with the typed error the model
// names, and after the sequence's own cleanup (close()/fini()) no dma-buf, sync_file or card fd of ours is open
// and query() shows no holder or waiter of our buffers and keys. Short sequences, few runs: the VM is slow.
import * as fs from 'node:fs';
import fc from 'fast-check';
import {
  AcquireContext,
  DmaBuf,
  DmabufSync,
  query,
  SyncFile,
  VgemDevice,
  WwClass,
  WwMutex,
  type Access,
  type LockMode,
  type Mapping,
  type VgemBuffer,
  type VgemFence,
} from '../../lib';
import { kernelFds, settle } from '../helpers/kernel-fds';
import { cpuBuffer, kernel, needs } from './fixtures/kernel-features';

const RUNS = 40;
/** Per property: 40 short runs under TCG emulation take tens of seconds. */
const TIMEOUT_MS = 300_000;
const access: fc.Arbitrary<Access> = fc.constantFrom<Access>('read', 'write', 'rw');

/** An Error with a string `code`, and that code (undefined: it must have worked). */
function checkError(err: unknown, code: string | undefined): void {
  if (code === undefined) throw err;
  expect(err).toBeInstanceOf(Error);
  expect(err).toMatchObject({ code });
}

/** Runs a synchronous call expecting `code` (undefined: success); returns its result. */
function call<T>(code: string | undefined, f: () => T): T | undefined {
  let result: T;
  try {
    result = f();
  } catch (err) {
    checkError(err, code);
    return undefined;
  }
  if (code !== undefined) throw new Error(`expected ${code}, the call succeeded`);
  return result;
}

/** Runs a promise-returning call expecting `code`: it must reject (never throw synchronously). */
async function callAsync<T>(code: string | undefined, f: () => Promise<T>): Promise<T | undefined> {
  const p = f(); // a synchronous throw fails the test: the API returns a promise
  expect(p).toBeInstanceOf(Promise);
  try {
    const result = await p;
    if (code !== undefined) throw new Error(`expected ${code}, the call succeeded`);
    return result;
  } catch (err) {
    checkError(err, code);
    return undefined;
  }
}

/** The locks that still have a holder or waiter among `keys`. */
function busyLocks(keys: bigint[]): unknown[] {
  return query().locks.filter((l) => keys.includes(l.key) && (l.holders.length > 0 || l.waiters.length > 0));
}

// ---------------------------------------------------------------------------------------------------------
// DmaBuf: allocate, wrap, dup, map (views), cache brackets, fences, close, double close, use after close.

type BufCmd =
  | { op: 'alloc' | 'fromFdBad' }
  | { op: 'dup' | 'fromFd' | 'close' | 'bracket' | 'export' | 'idle' | 'waitIdle' | 'badAccess'; b: number }
  | { op: 'map'; b: number; writable: boolean }
  | { op: 'write' | 'view' | 'release'; m: number };

const bufCmd: fc.Arbitrary<BufCmd> = fc.oneof(
  fc.constant<BufCmd>({ op: 'alloc' }),
  fc.constant<BufCmd>({ op: 'fromFdBad' }),
  fc.record({
    op: fc.constantFrom('dup' as const, 'fromFd' as const, 'close' as const, 'bracket' as const, 'export' as const, 'idle' as const, 'waitIdle' as const, 'badAccess' as const),
    b: fc.nat(3),
  }),
  fc.record({ op: fc.constant('map' as const), b: fc.nat(3), writable: fc.boolean() }),
  fc.record({ op: fc.constantFrom('write' as const, 'view' as const, 'release' as const), m: fc.nat(3) }),
);

interface MapModel {
  m: Mapping;
  view: Uint8Array;
  size: number;
  writable: boolean;
  /** A store into the read-only view was caught and not yet reported by release(). */
  caught: boolean;
}

test('DmaBuf: any call sequence, then close(): typed errors, no fd open', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(bufCmd, { maxLength: 12 }), async (cmds) => {
      const baseline = kernelFds();
      const bufs: DmaBuf[] = [cpuBuffer(4096)];
      const maps: MapModel[] = [];
      const pickB = (i: number): DmaBuf => bufs[i % bufs.length]!;
      const pickM = (i: number): MapModel | undefined => (maps.length === 0 ? undefined : maps[i % maps.length]);
      const closedCode = (b: DmaBuf): string | undefined => (b.closed ? 'EBADF' : undefined);
      try {
        for (const c of cmds) {
          switch (c.op) {
            case 'alloc':
              if (bufs.length < 4) bufs.push(cpuBuffer(4096 * (bufs.length + 1)));
              break;
            case 'fromFdBad': {
              const fd = fs.openSync('/dev/null', 'r');
              try {
                call('ENOTTY', () => DmaBuf.fromFd(fd));
              } finally {
                fs.closeSync(fd);
              }
              call('ERR_OUT_OF_RANGE', () => DmaBuf.fromFd(-1));
              call('ERR_INVALID_ARG_TYPE', () => DmaBuf.fromFd('3' as unknown as number));
              break;
            }
            case 'dup':
            case 'fromFd': {
              const b = pickB(c.b);
              const d = call(closedCode(b), () => (c.op === 'dup' ? b.dup() : DmaBuf.fromFd(b.fd)));
              if (d) {
                expect(d.inode).toBe(b.inode);
                if (bufs.length < 6) bufs.push(d);
                else d.close();
              }
              break;
            }
            case 'close': {
              const b = pickB(c.b);
              b.close();
              b.close();
              expect(b.closed).toBe(true);
              break;
            }
            case 'bracket': {
              const b = pickB(c.b);
              call(closedCode(b), () => b.syncStart('rw'));
              call(closedCode(b), () => b.syncEnd('rw'));
              break;
            }
            case 'badAccess': {
              const b = pickB(c.b);
              call('ERR_INVALID_ARG_TYPE', () => b.syncStart('x' as Access));
              call('ERR_INVALID_ARG_TYPE', () => b.map({ writable: 1 as unknown as boolean }));
              await callAsync('ERR_INVALID_ARG_TYPE', () => b.waitIdle('readwrite' as Access));
              break;
            }
            case 'export': {
              const b = pickB(c.b);
              const sf = call(b.closed ? 'EBADF' : kernel.exportSyncFile ? undefined : 'ENOTTY', () => b.exportSyncFile('rw'));
              if (sf) {
                expect(sf.isSignaled()).toBe(true); // nobody attached a device fence
                sf.close();
              }
              break;
            }
            case 'idle': {
              const b = pickB(c.b);
              const idle = call(closedCode(b), () => b.isIdle('write'));
              if (!b.closed) expect(idle).toBe(true);
              break;
            }
            case 'waitIdle': {
              const b = pickB(c.b);
              await callAsync(closedCode(b), () => b.waitIdle('rw', { timeoutMs: 10_000 }));
              break;
            }
            case 'map': {
              const b = pickB(c.b);
              const m = call(closedCode(b), () => b.map({ writable: c.writable }));
              if (m) {
                maps.push({ m, view: m.bytes, size: b.size, writable: c.writable, caught: false });
                expect(m.writable).toBe(c.writable);
              }
              break;
            }
            case 'write': {
              const mm = pickM(c.m);
              if (!mm) break;
              if (mm.m.released) {
                call('EBADF', () => mm.m.bytes);
                break;
              }
              // A mapping outlives its DmaBuf's close(): the kernel keeps the buffer while it is mapped.
              const before = mm.view[7]!;
              mm.view[7] = (before + 1) & 0xff;
              if (mm.writable) expect(mm.view[7]).toBe((before + 1) & 0xff);
              else mm.caught = true;
              break;
            }
            case 'view': {
              const mm = pickM(c.m);
              if (!mm) break;
              // A view made before release() reads as length 0 after it: nothing can reach the unmapped memory.
              expect(mm.view.length).toBe(mm.m.released ? 0 : mm.size);
              break;
            }
            case 'release': {
              const mm = pickM(c.m);
              if (!mm) break;
              call(mm.caught ? 'EACCES' : undefined, () => mm.m.release());
              mm.caught = false;
              mm.m.release(); // idempotent
              expect(mm.view.length).toBe(0);
              break;
            }
          }
        }
      } finally {
        for (const mm of maps) {
          call(mm.caught ? 'EACCES' : undefined, () => mm.m.release());
        }
        for (const b of bufs) {
          b.close();
          b.close();
        }
      }
      await settle();
      expect(kernelFds()).toEqual(baseline);
    }),
    { numRuns: RUNS },
  );
}, TIMEOUT_MS);

// ---------------------------------------------------------------------------------------------------------
// SyncFile: from vgem fences (EXPORT_SYNC_FILE): wait, isSignaled, info, merge, dup, fromFd, close.

type SyncCmd =
  | { op: 'attach' | 'export'; access: Access }
  | { op: 'signal'; f: number }
  | { op: 'wait' | 'poll' | 'info' | 'dup' | 'fromFd' | 'close' | 'closeWaiting'; s: number }
  | { op: 'merge'; s: number; t: number }
  | { op: 'closeDevice' };

const syncCmd: fc.Arbitrary<SyncCmd> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('attach' as const, 'export' as const), access }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('signal' as const), f: fc.nat(3) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constantFrom('wait' as const, 'poll' as const, 'info' as const, 'dup' as const, 'fromFd' as const, 'close' as const, 'closeWaiting' as const),
      s: fc.nat(4),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('merge' as const), s: fc.nat(4), t: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.constant<SyncCmd>({ op: 'closeDevice' }) },
);

/**
 * Attaches a vgem fence to a buffer whose fences are `fences`: EBADF when closed; EBUSY (vgem's rule) when
 * a conflicting fence is pending — a write fence needs every fence signalled, a read fence every write
 * fence. Success despite a pending conflict means vgem signalled those itself (10 s after attaching).
 */
function attach(closed: boolean, fences: Array<{ write: boolean; signaled: boolean }>, write: boolean, f: () => VgemFence): VgemFence | undefined {
  if (closed) return call('EBADF', f);
  const conflicting = fences.filter((x) => !x.signaled && (write || x.write));
  if (conflicting.length === 0) return call(undefined, f);
  try {
    const fence = f();
    for (const x of conflicting) x.signaled = true;
    return fence;
  } catch (err) {
    checkError(err, 'EBUSY');
    return undefined;
  }
}

interface FenceModel {
  f: VgemFence;
  write: boolean;
  signaled: boolean;
}

needs('vgem', 'exportSyncFile')('SyncFile: any call sequence, then close(): typed errors, no fd open', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(syncCmd, { maxLength: 12 }), async (cmds) => {
      const baseline = kernelFds();
      const dev = VgemDevice.open();
      const bo = dev.createBuffer(4096);
      const fences: FenceModel[] = [];
      /** Each SyncFile with the fences it waits for (vgem also signals a fence itself after 10 s). */
      const files: Array<{ s: SyncFile; fences: FenceModel[] }> = [];
      const waits: Promise<void>[] = [];
      const pickS = (i: number): { s: SyncFile; fences: FenceModel[] } | undefined => (files.length === 0 ? undefined : files[i % files.length]);
      const signaled = (e: { fences: FenceModel[] }): boolean => e.fences.every((f) => f.signaled);
      const add = (s: SyncFile, fs: FenceModel[]): void => {
        files.push({ s, fences: fs });
      };
      try {
        for (const c of cmds) {
          switch (c.op) {
            case 'attach': {
              if (fences.length >= 4) break;
              const write = c.access !== 'read';
              const f = attach(dev.closed, fences, write, () => bo.attachFence(c.access));
              if (f) fences.push({ f, write, signaled: false });
              break;
            }
            case 'signal': {
              const fm = fences.length === 0 ? undefined : fences[c.f % fences.length];
              if (!fm) break;
              if (dev.closed) call('EBADF', () => fm.f.signal());
              else if (fm.signaled) call('ENOENT', () => fm.f.signal());
              else {
                // ETIMEDOUT: vgem signalled it by itself (10 s after attaching); still a typed error.
                try {
                  fm.f.signal();
                } catch (err) {
                  checkError(err, 'ETIMEDOUT');
                }
                fm.signaled = true;
              }
              break;
            }
            case 'export': {
              if (files.length >= 5) break;
              // 'read' waits for the writers only; 'write'/'rw' for every job.
              const waitsFor = fences.filter((f) => !f.signaled && (c.access !== 'read' || f.write));
              const s = bo.dmaBuf.exportSyncFile(c.access);
              add(s, waitsFor);
              break;
            }
            case 'wait': {
              const e = pickS(c.s);
              if (!e) break;
              if (e.s.closed) await callAsync('EBADF', () => e.s.wait());
              else if (signaled(e)) await callAsync(undefined, () => e.s.wait({ timeoutMs: 10_000 }));
              else waits.push(e.s.wait()); // settles once its fences signal (at the latest at cleanup)
              break;
            }
            case 'poll': {
              const e = pickS(c.s);
              if (!e) break;
              if (e.s.closed) {
                call('EBADF', () => e.s.isSignaled());
                await callAsync('EBADF', () => e.s.wait({ timeoutMs: 0 }));
              } else if (signaled(e)) {
                expect(e.s.isSignaled()).toBe(true);
              } else {
                // Pending (unless vgem's own 10 s timeout fired): a zero wait times out with the typed error.
                try {
                  await e.s.wait({ timeoutMs: 0 });
                } catch (err) {
                  checkError(err, 'ETIMEDOUT');
                }
              }
              break;
            }
            case 'info': {
              const e = pickS(c.s);
              if (!e) break;
              const info = call(e.s.closed ? 'EBADF' : undefined, () => e.s.info());
              if (info && signaled(e)) expect(info.status).toBe('signaled');
              break;
            }
            case 'dup':
            case 'fromFd': {
              const e = pickS(c.s);
              if (!e || files.length >= 6) break;
              const d = call(e.s.closed ? 'EBADF' : undefined, () => (c.op === 'dup' ? e.s.dup() : SyncFile.fromFd(e.s.fd)));
              if (d) add(d, e.fences);
              break;
            }
            case 'merge': {
              const a = pickS(c.s);
              const b = pickS(c.t);
              if (!a || !b || files.length >= 6) break;
              const m = call(a.s.closed || b.s.closed ? 'EBADF' : undefined, () => a.s.merge(b.s, 'prop'));
              if (m) add(m, [...a.fences, ...b.fences]);
              break;
            }
            case 'close': {
              const e = pickS(c.s);
              if (!e) break;
              e.s.close();
              e.s.close();
              break;
            }
            case 'closeWaiting': {
              // Closed while a wait is pending: the wait keeps its own dup and still settles.
              const e = pickS(c.s);
              if (!e || e.s.closed) break;
              waits.push(e.s.wait());
              e.s.close();
              break;
            }
            case 'closeDevice':
              // Closing the device signals the fences it still has (vgem's postclose).
              dev.close();
              dev.close();
              for (const f of fences) f.signaled = true;
              break;
          }
        }
      } finally {
        for (const e of files) e.s.close();
        bo.close();
        bo.close();
        dev.close();
      }
      for (const f of fences) f.signaled = true;
      await Promise.all(waits);
      await settle();
      expect(kernelFds()).toEqual(baseline);
    }),
    { numRuns: RUNS },
  );
}, TIMEOUT_MS);

describe('regressions found by the properties', () => {
  needs('vgem')('VgemBuffer.close() twice is a no-op, and attachFence() after close() is EBADF, never a newer buffer', () => {
    const dev = VgemDevice.open();
    try {
      const old = dev.createBuffer(4096);
      old.close();
      // The device hands the freed handle number to the next buffer: a second GEM_CLOSE, or a fence attached
      // through the old object, would hit this one.
      const next = dev.createBuffer(4096);
      expect(() => old.close()).not.toThrow();
      expect(old.closed).toBe(true);
      expect(() => old.attachFence('write')).toThrow(expect.objectContaining({ code: 'EBADF' }));
      expect(next.dmaBuf.isIdle('read')).toBe(true); // no fence landed on the newer buffer
      next.attachFence('read').signal(); // its handle is still open
      next.close();
    } finally {
      dev.close();
    }
  });

  needs('vgem', 'exportSyncFile')('SyncFile.wait() after close() rejects with EBADF instead of throwing', async () => {
    const dev = VgemDevice.open();
    const bo = dev.createBuffer(4096);
    try {
      const s = bo.dmaBuf.exportSyncFile('rw');
      s.close();
      let p: Promise<void> | undefined;
      expect(() => (p = s.wait())).not.toThrow();
      await expect(p).rejects.toMatchObject({ code: 'EBADF' });
    } finally {
      bo.close();
      dev.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// VgemDevice: open, create buffers, attach and signal fences, close with buffers and fences out.

type VgemCmd =
  | { op: 'open' }
  | { op: 'create'; d: number; size: number }
  | { op: 'attach'; b: number; access: Access }
  | { op: 'signal'; f: number }
  | { op: 'map' | 'closeBuffer'; b: number }
  | { op: 'closeDevice'; d: number };

const vgemCmd: fc.Arbitrary<VgemCmd> = fc.oneof(
  fc.constant<VgemCmd>({ op: 'open' }),
  fc.record({ op: fc.constant('create' as const), d: fc.nat(1), size: fc.constantFrom(4096, 65536, 0, 1.5) }),
  fc.record({ op: fc.constant('attach' as const), b: fc.nat(3), access }),
  fc.record({ op: fc.constant('signal' as const), f: fc.nat(3) }),
  fc.record({ op: fc.constantFrom('map' as const, 'closeBuffer' as const), b: fc.nat(3) }),
  fc.record({ op: fc.constant('closeDevice' as const), d: fc.nat(1) }),
);

needs('vgem')('VgemDevice: any call sequence, then close(): typed errors, no fd open', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(vgemCmd, { maxLength: 12 }), async (cmds) => {
      const baseline = kernelFds();
      const devs: VgemDevice[] = [VgemDevice.open()];
      const bufs: Array<{ bo: VgemBuffer; dev: VgemDevice; closed: boolean }> = [];
      const fences: Array<{ f: VgemFence; dev: VgemDevice; bo: VgemBuffer; write: boolean; signaled: boolean }> = [];
      try {
        for (const c of cmds) {
          switch (c.op) {
            case 'open':
              if (devs.length < 2) devs.push(VgemDevice.open());
              break;
            case 'create': {
              const dev = devs[c.d % devs.length]!;
              if (bufs.length >= 4) break;
              const code = !Number.isInteger(c.size) || c.size <= 0 ? 'ERR_OUT_OF_RANGE' : dev.closed ? 'EBADF' : undefined;
              const bo = call(code, () => dev.createBuffer(c.size));
              if (bo) {
                expect(bo.dmaBuf.size).toBeGreaterThanOrEqual(c.size);
                bufs.push({ bo, dev, closed: false });
              }
              break;
            }
            case 'attach': {
              const b = bufs.length === 0 ? undefined : bufs[c.b % bufs.length];
              if (!b || fences.length >= 4) break;
              const write = c.access !== 'read';
              const mine = fences.filter((f) => f.bo === b.bo);
              const f = attach(b.closed || b.dev.closed, mine, write, () => b.bo.attachFence(c.access));
              if (f) fences.push({ f, dev: b.dev, bo: b.bo, write, signaled: false });
              break;
            }
            case 'signal': {
              const fm = fences.length === 0 ? undefined : fences[c.f % fences.length];
              if (!fm) break;
              if (fm.dev.closed) call('EBADF', () => fm.f.signal());
              else if (fm.signaled) call('ENOENT', () => fm.f.signal());
              else {
                try {
                  fm.f.signal();
                } catch (err) {
                  checkError(err, 'ETIMEDOUT'); // vgem signalled it by itself after 10 s
                }
                fm.signaled = true;
                expect(fm.f.signaled).toBe(true);
              }
              break;
            }
            case 'map': {
              const b = bufs.length === 0 ? undefined : bufs[c.b % bufs.length];
              if (!b) break;
              // The dma-buf works without the device: it keeps the buffer object alive.
              const m = call(b.closed ? 'EBADF' : undefined, () => b.bo.dmaBuf.map());
              if (m) {
                m.bytes[0] = 0x5a;
                expect(m.bytes[0]).toBe(0x5a);
                m.release();
              }
              break;
            }
            case 'closeBuffer': {
              const b = bufs.length === 0 ? undefined : bufs[c.b % bufs.length];
              if (!b) break;
              b.bo.close();
              b.bo.close(); // idempotent, and never closes a handle the device has given to a newer buffer
              b.closed = true;
              expect(b.bo.dmaBuf.closed).toBe(true);
              break;
            }
            case 'closeDevice': {
              const dev = devs[c.d % devs.length]!;
              dev.close();
              dev.close();
              expect(dev.closed).toBe(true);
              break;
            }
          }
        }
      } finally {
        for (const b of bufs) b.bo.close();
        for (const d of devs) d.close();
      }
      await settle();
      expect(kernelFds()).toEqual(baseline);
    }),
    { numRuns: RUNS },
  );
}, TIMEOUT_MS);

// ---------------------------------------------------------------------------------------------------------
// DmabufSync: init/get/put/putAll/lock/map/unlock/fini in any order, the invalid ones included.

type SyncFwCmd =
  | { op: 'init' }
  | { op: 'get'; s: number; b: number; access: Access; cpu: boolean }
  | { op: 'put' | 'map'; s: number; b: number }
  | { op: 'putAll' | 'tryLock' | 'lockWait' | 'unlock' | 'fini'; s: number }
  | { op: 'closeBuf'; b: number };

const syncFwCmd: fc.Arbitrary<SyncFwCmd> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<SyncFwCmd>({ op: 'init' }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('get' as const), s: fc.nat(2), b: fc.nat(2), access, cpu: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('put' as const, 'map' as const), s: fc.nat(2), b: fc.nat(2) }) },
  {
    weight: 5,
    arbitrary: fc.record({ op: fc.constantFrom('putAll' as const, 'tryLock' as const, 'lockWait' as const, 'unlock' as const, 'fini' as const), s: fc.nat(2) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('closeBuf' as const), b: fc.nat(2) }) },
);

interface SyncModel {
  sync: DmabufSync;
  /** The buffers added (by index into bufs) and how. */
  entries: Map<number, { access: Access; cpu: boolean }>;
  fini: boolean;
  /** A lock() that may still be waiting, and whether it has settled. */
  pending?: Promise<void>;
  settled: boolean;
  views: Uint8Array[];
}

needs()('DmabufSync: any call sequence, then unlock/fini: typed errors, no lock held, no fd open', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(syncFwCmd, { maxLength: 14 }), async (cmds) => {
      const baseline = kernelFds();
      const bufs = [cpuBuffer(4096), cpuBuffer(4096), cpuBuffer(8192)];
      const inodes = bufs.map((b) => b.inode);
      const syncs: SyncModel[] = [];
      const make = (): SyncModel => ({ sync: DmabufSync.init({ maxHoldMs: 600_000 }), entries: new Map(), fini: false, settled: true, views: [] });
      syncs.push(make());
      const pickS = (i: number): SyncModel => syncs[i % syncs.length]!;
      /** The real state, read where a pending lock() makes it depend on timing ('locking' or 'locked'). */
      const stateOf = (m: SyncModel): string => (m.fini ? 'fini' : m.sync.state);
      const writes = (a: Access): boolean => a !== 'read';
      /** How a try-lock of `m` must end: 'ok', 'EBUSY', or 'either' (a pending lock() is queued on a shared buffer). */
      const tryOutcome = (m: SyncModel): 'ok' | 'EBUSY' | 'either' => {
        let either = false;
        for (const o of syncs) {
          if (o === m || o.fini) continue;
          const st = o.sync.state;
          if (st !== 'locked' && st !== 'locking') continue;
          for (const [b, e] of m.entries) {
            const oe = o.entries.get(b);
            if (!oe) continue;
            if (st === 'locking') either = true;
            else if (writes(oe.access) || writes(e.access)) return 'EBUSY';
          }
        }
        return either ? 'either' : 'ok';
      };
      try {
        for (const c of cmds) {
          switch (c.op) {
            case 'init':
              if (syncs.length < 3) syncs.push(make());
              break;
            case 'get': {
              const m = pickS(c.s);
              const st = stateOf(m);
              const buf = bufs[c.b]!;
              const code = st === 'fini' ? 'EBADF' : st !== 'idle' ? 'EBUSY' : buf.closed ? 'EBADF' : undefined;
              call(code, () => m.sync.get(buf, c.access, { cpu: c.cpu }));
              if (code === undefined) {
                const known = m.entries.get(c.b);
                m.entries.set(c.b, known ? { access: known.access === c.access ? c.access : 'rw', cpu: known.cpu || c.cpu } : { access: c.access, cpu: c.cpu });
              }
              break;
            }
            case 'put': {
              const m = pickS(c.s);
              const st = stateOf(m);
              const code = st === 'fini' ? 'EBADF' : st !== 'idle' ? 'EBUSY' : m.entries.has(c.b) ? undefined : 'ENOENT';
              call(code, () => m.sync.put(bufs[c.b]!));
              if (code === undefined) m.entries.delete(c.b);
              break;
            }
            case 'putAll': {
              const m = pickS(c.s);
              const st = stateOf(m);
              const code = st === 'fini' ? 'EBADF' : st !== 'idle' ? 'EBUSY' : undefined;
              call(code, () => m.sync.putAll());
              if (code === undefined) m.entries.clear();
              break;
            }
            case 'tryLock':
            case 'lockWait': {
              const m = pickS(c.s);
              const st = stateOf(m);
              const early = st === 'fini' ? 'EBADF' : st !== 'idle' ? 'EBUSY' : m.entries.size === 0 ? 'EINVAL' : undefined;
              if (early !== undefined) {
                await callAsync(early, () => m.sync.lock({ wait: c.op === 'lockWait' }));
                break;
              }
              const outcome = tryOutcome(m);
              if (c.op === 'tryLock') {
                if (outcome === 'either') {
                  try {
                    await m.sync.lock({ wait: false });
                  } catch (err) {
                    checkError(err, 'EBUSY');
                  }
                } else {
                  await callAsync(outcome === 'ok' ? undefined : 'EBUSY', () => m.sync.lock({ wait: false }));
                }
                expect(m.sync.state).toBe(m.sync.locked ? 'locked' : 'idle');
              } else if (outcome === 'ok') {
                await callAsync(undefined, () => m.sync.lock({ timeoutMs: 60_000 }));
              } else {
                // Waits until the holders unlock (in a later command or at cleanup); a safety deadline only.
                m.settled = false;
                m.pending = m.sync.lock({ timeoutMs: 60_000 }).finally(() => {
                  m.settled = true;
                });
                expect(m.sync.state).toMatch(/^(locking|locked)$/);
              }
              break;
            }
            case 'map': {
              const m = pickS(c.s);
              const st = stateOf(m);
              const e = m.entries.get(c.b);
              const code = st === 'fini' ? 'EBADF' : st !== 'locked' ? 'EPERM' : !e ? 'ENOENT' : !e.cpu ? 'EPERM' : undefined;
              const view = call(code, () => m.sync.map(bufs[c.b]!));
              if (view) {
                const bytes = view.bytes;
                m.views.push(bytes);
                if (writes(e!.access)) bytes[1] = 0x42;
                else expect(bytes.length).toBe(bufs[c.b]!.size);
              }
              break;
            }
            case 'unlock': {
              const m = pickS(c.s);
              const st = stateOf(m);
              await callAsync(st === 'fini' ? 'EBADF' : st === 'locked' ? undefined : 'EPERM', () => m.sync.unlock());
              if (st === 'locked') {
                // Views of the lock end with it.
                for (const v of m.views) expect(v.length).toBe(0);
                m.views = [];
                expect(m.sync.state).toBe('idle');
              }
              break;
            }
            case 'fini': {
              const m = pickS(c.s);
              const st = stateOf(m);
              // fini() while locked (or locking) is EBUSY by design: unlock() first.
              call(st === 'locked' || st === 'locking' ? 'EBUSY' : undefined, () => m.sync.fini());
              if (st !== 'locked' && st !== 'locking') {
                m.fini = true;
                m.entries.clear();
                expect(m.sync.state).toBe('fini');
              }
              break;
            }
            case 'closeBuf':
              // The caller's DmaBuf: a sync that has it keeps its own dup; get() of it is EBADF from now on.
              bufs[c.b]!.close();
              break;
          }
        }
      } finally {
        // The proper sequence from any state: unlock what is locked, let pending lock()s get their turn
        // (each then unlocks), fini every sync, close the buffers.
        for (;;) {
          for (const m of syncs) if (!m.fini && m.sync.locked) await m.sync.unlock();
          const waiting = syncs.filter((m) => !m.settled);
          if (waiting.length === 0) break;
          await Promise.race(waiting.map((m) => m.pending));
        }
        for (const m of syncs) {
          m.sync.fini();
          m.sync.fini();
        }
        for (const b of bufs) b.close();
      }
      for (const m of syncs) {
        if (m.pending) await m.pending; // each resolved (nothing timed out)
        for (const v of m.views) expect(v.length).toBe(0);
      }
      await settle();
      expect(kernelFds()).toEqual(baseline);
      expect(busyLocks(inodes)).toEqual([]);
    }),
    { numRuns: RUNS },
  );
}, TIMEOUT_MS);

// ---------------------------------------------------------------------------------------------------------
// WwMutex / AcquireContext: lock, tryLock, unlock (with and without a context), done, fini with locks held,
// dispose.

type WwCmd =
  | { op: 'ctx'; waitDie: boolean }
  | { op: 'mutex' }
  | { op: 'lock' | 'tryLock'; c: number; m: number; mode: LockMode }
  | { op: 'unlock'; c: number; m: number }
  | { op: 'lockPlain' | 'unlockPlain' | 'dispose'; m: number }
  | { op: 'done' | 'fini'; c: number };

const mode: fc.Arbitrary<LockMode> = fc.constantFrom<LockMode>('read', 'write');
const wwCmd: fc.Arbitrary<WwCmd> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ op: fc.constant('ctx' as const), waitDie: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant<WwCmd>({ op: 'mutex' }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constantFrom('lock' as const, 'tryLock' as const), c: fc.nat(2), m: fc.nat(2), mode }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('unlock' as const), c: fc.nat(2), m: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('lockPlain' as const, 'unlockPlain' as const, 'dispose' as const), m: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('done' as const, 'fini' as const), c: fc.nat(2) }) },
);

interface CtxModel {
  ctx: AcquireContext;
  waitDie: boolean;
  done: boolean;
  fini: boolean;
}
interface MutexModel {
  mu: WwMutex;
  disposed: boolean;
  /** Holders of the lock: a context model or the WwMutex object (ctx-less holds), with their modes. */
  holders: Array<{ by: CtxModel | 'plain'; write: boolean }>;
}

test('WwMutex and AcquireContext: any call sequence, then unlock/fini: typed errors, nothing held', async () => {
  const cls = new WwClass('wound-wait', 'close-property');
  const waitDie = new WwClass('wait-die', 'close-property');
  await fc.assert(
    fc.asyncProperty(fc.array(wwCmd, { maxLength: 14 }), async (cmds) => {
      const ctxs: CtxModel[] = [{ ctx: cls.acquireContext({ name: 'p0' }), waitDie: false, done: false, fini: false }];
      const mus: MutexModel[] = [{ mu: new WwMutex(cls), disposed: false, holders: [] }];
      const keys = (): bigint[] => mus.map((m) => m.mu.key);
      const pickC = (i: number): CtxModel => ctxs[i % ctxs.length]!;
      const pickM = (i: number): MutexModel => mus[i % mus.length]!;
      const conflicts = (m: MutexModel, write: boolean): boolean => m.holders.some((h) => write || h.write);
      /** The error lock() of `c` on `m` must fail with before looking at the lock state (undefined: none). */
      const ctxCode = (c: CtxModel, m: MutexModel): string | undefined =>
        m.disposed ? 'EBADF' : c.waitDie ? 'EINVAL' : c.fini ? 'EBADF' : c.done ? 'EPERM' : undefined;
      try {
        for (const c of cmds) {
          switch (c.op) {
            case 'ctx':
              if (ctxs.length < 3) {
                const k = c.waitDie ? waitDie : cls;
                ctxs.push({ ctx: k.acquireContext({ name: `p${ctxs.length}` }), waitDie: c.waitDie, done: false, fini: false });
              }
              break;
            case 'mutex':
              if (mus.length < 3) mus.push({ mu: new WwMutex(cls), disposed: false, holders: [] });
              break;
            case 'lock':
            case 'tryLock': {
              const cm = pickC(c.c);
              const m = pickM(c.m);
              const write = c.mode === 'write';
              const early = ctxCode(cm, m);
              const mine = m.holders.some((h) => h.by === cm);
              if (c.op === 'lock' && early === undefined && !mine && conflicts(m, write)) {
                // lock() would wait (and maybe wound): the contended case is tryLock's, which never waits.
                expect(m.mu.tryLock(c.mode, cm.ctx)).toBe(false);
                break;
              }
              if (c.op === 'lock') {
                await callAsync(early ?? (mine ? 'EALREADY' : undefined), () => m.mu.lock(cm.ctx, c.mode));
                if (early === undefined && !mine) m.holders.push({ by: cm, write });
              } else {
                const got = call(early, () => m.mu.tryLock(c.mode, cm.ctx));
                if (early === undefined) {
                  expect(got).toBe(!mine && !conflicts(m, write));
                  if (got) m.holders.push({ by: cm, write });
                }
              }
              break;
            }
            case 'unlock': {
              const cm = pickC(c.c);
              const m = pickM(c.m);
              const mine = m.holders.findIndex((h) => h.by === cm);
              call(m.disposed ? 'EBADF' : cm.fini ? 'EBADF' : mine < 0 ? 'EPERM' : undefined, () => m.mu.unlock(cm.ctx));
              if (!m.disposed && !cm.fini && mine >= 0) m.holders.splice(mine, 1);
              break;
            }
            case 'lockPlain': {
              const m = pickM(c.m);
              if (m.disposed) {
                await callAsync('EBADF', () => m.mu.lock(null));
              } else if (conflicts(m, true)) {
                expect(m.mu.tryLock('write', null)).toBe(false);
              } else {
                await callAsync(undefined, () => m.mu.lock(null));
                m.holders.push({ by: 'plain', write: true });
              }
              break;
            }
            case 'unlockPlain': {
              const m = pickM(c.m);
              const i = m.holders.findIndex((h) => h.by === 'plain');
              call(m.disposed ? 'EBADF' : i < 0 ? 'EPERM' : undefined, () => m.mu.unlock());
              if (!m.disposed && i >= 0) m.holders.splice(i, 1);
              break;
            }
            case 'dispose': {
              const m = pickM(c.m);
              // EBUSY while a ctx-less hold through it is held; holds of contexts belong to the contexts.
              const busy = !m.disposed && m.holders.some((h) => h.by === 'plain');
              call(busy ? 'EBUSY' : undefined, () => m.mu.dispose());
              if (!busy) m.disposed = true;
              break;
            }
            case 'done': {
              const cm = pickC(c.c);
              cm.ctx.done();
              cm.done = true;
              break;
            }
            case 'fini': {
              const cm = pickC(c.c);
              const holds = mus.some((m) => m.holders.some((h) => h.by === cm));
              call(holds ? 'EBUSY' : undefined, () => cm.ctx.fini());
              if (!holds) cm.fini = true;
              expect(cm.ctx.id).toBe(cm.fini ? -1 : cm.ctx.id);
              break;
            }
          }
        }
      } finally {
        // The proper sequence: unlock every hold (a disposed mutex's through a new object of its key), then
        // fini every context and dispose every mutex.
        for (const m of mus) {
          for (const h of m.holders) {
            const mu = m.disposed ? new WwMutex(cls, m.mu.key) : m.mu;
            if (h.by === 'plain') mu.unlock();
            else mu.unlock(h.by.ctx);
            if (mu !== m.mu) mu.dispose();
          }
          m.holders = [];
        }
        for (const cm of ctxs) {
          cm.ctx.fini();
          cm.ctx.fini();
        }
        for (const m of mus) m.mu.dispose();
      }
      expect(busyLocks(keys())).toEqual([]);
      for (const cm of ctxs) expect(cm.ctx.acquired).toBe(0);
    }),
    { numRuns: RUNS },
  );
}, TIMEOUT_MS);
