// The shared fence wait: lock() calls of one thread waiting for the same buffer's device fences share one
// exported sync_file and one poll, each keeping its own deadline and AbortSignal.
import { openFds, settle } from '../helpers/kernel-fds';
import { DmabufSync, VgemDevice, query, type DmaBuf, type VgemBuffer } from '../../lib';
import { setExportSyncFileSupport } from '../../lib/kernel/implicit-fences';
import { sharedFenceWaits } from '../../lib/kernel/shared-fence-wait';
import { needs } from './fixtures/kernel-features';
import { stateAfter } from './fixtures/until';

const PAGE = 4096;
const N = 10;

/** The fds open now that were not (or pointed elsewhere) in `before`. */
function newFds(before: Map<string, string>): string[] {
  return [...openFds()].filter(([fd, target]) => before.get(fd) !== target).map(([, target]) => target);
}

const isSyncFile = (target: string): boolean => target.includes('sync_file');

function expectNothingHeld(buf: DmaBuf): void {
  const busy = query().locks.filter((l) => l.key === buf.inode && (l.holders.length > 0 || l.waiters.length > 0));
  expect(busy).toEqual([]);
}

let dev: VgemDevice;
let bo: VgemBuffer;
beforeEach(() => {
  dev = VgemDevice.open();
  bo = dev.createBuffer(PAGE);
});
afterEach(() => {
  bo.close();
  dev.close();
});

describe.each([
  ['EXPORT_SYNC_FILE', undefined],
  ['dma-buf poll fallback', false],
] as const)('via %s', (_name, exportSupport) => {
  // Without EXPORT_SYNC_FILE the first block would run the fallback a second time: skipped there.
  const test = exportSupport === undefined ? needs('exportSyncFile') : needs();
  beforeEach(() => setExportSyncFileSupport(exportSupport));
  afterAll(() => setExportSyncFileSupport(undefined));

  test(`${N} lock() calls waiting for one fence share one wait; one aborted and one timed out leave the others waiting; all resolve on signal, nothing leaked or held`, async () => {
    const fence = bo.attachFence('write');
    const syncs = Array.from({ length: N }, (_, i) => {
      const s = DmabufSync.init({ name: `reader-${i}` });
      s.get(bo.dmaBuf, 'read');
      return s;
    });
    const before = openFds(); // after get(): the registry's dup of the buffer is not part of the wait
    const ac = new AbortController();
    const settled = new Array<boolean>(N).fill(false);
    const locks = syncs.map((s, i) => {
      const p = s.lock(i === 0 ? { signal: ac.signal } : i === 1 ? { timeoutMs: 300 } : { timeoutMs: 60_000 });
      p.then(() => (settled[i] = true), () => (settled[i] = true));
      return p;
    });
    // Every lock() is waiting now (the waits are armed synchronously): one export and one poll for all.
    const waiting = newFds(before);
    expect(waiting.length).toBeGreaterThanOrEqual(1);
    // The export (or, without one, the wait's dup of the buffer), the poll's dup of what it polls, and the
    // dup through which late joiners are re-checked: not one or two per waiter.
    expect(waiting.length).toBeLessThanOrEqual(3);
    expect(sharedFenceWaits()).toEqual({ groups: 1, waiters: N });
    if (exportSupport === undefined) {
      expect(waiting.filter(isSyncFile).length).toBeGreaterThanOrEqual(1);
      expect(waiting.filter(isSyncFile).length).toBeLessThan(N);
    }

    ac.abort();
    await expect(locks[0]).rejects.toMatchObject({ name: 'AbortError' });
    expect(syncs[0]!.locked).toBe(false);
    await expect(locks[1]).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(syncs[1]!.locked).toBe(false);
    await settle();
    expect(settled.slice(2)).toEqual(new Array(N - 2).fill(false));
    expect(newFds(before)).toEqual(waiting); // the shared wait is still there for the others
    expect(sharedFenceWaits()).toEqual({ groups: 1, waiters: N - 2 });

    fence.signal();
    await Promise.all(locks.slice(2));
    for (const s of syncs.slice(2)) {
      expect(s.locked).toBe(true);
      expect(s.stats.fenceWaits).toBe(1);
      await s.unlock();
    }
    for (const s of syncs) s.fini();
    expectNothingHeld(bo.dmaBuf);
    expect(sharedFenceWaits()).toEqual({ groups: 0, waiters: 0 });
    await settle();
    expect(newFds(before)).toEqual([]);
  });

  test('the last waiter leaving closes the shared wait; a new waiter afterwards waits on its own', async () => {
    const fence = bo.attachFence('write');
    const before = openFds();
    const acs = [new AbortController(), new AbortController()];
    const waits = acs.map((ac) => bo.dmaBuf.waitIdle('read', { signal: ac.signal }));
    expect(newFds(before).length).toBeLessThanOrEqual(3);
    expect(sharedFenceWaits()).toEqual({ groups: 1, waiters: 2 });
    acs[0]!.abort();
    await expect(waits[0]).rejects.toMatchObject({ name: 'AbortError' });
    expect(sharedFenceWaits()).toEqual({ groups: 1, waiters: 1 });
    acs[1]!.abort();
    await expect(waits[1]).rejects.toMatchObject({ name: 'AbortError' });
    expect(sharedFenceWaits()).toEqual({ groups: 0, waiters: 0 });
    await settle();
    expect(newFds(before)).toEqual([]);
    const again = bo.dmaBuf.waitIdle('read');
    expect(await stateAfter(again, 100)).toBe('pending');
    fence.signal();
    await again;
    await settle();
    expect(newFds(before)).toEqual([]);
  });
});

needs('exportSyncFile')('a waiter that joins after the shared export still waits for a fence attached after it', async () => {
  const first = bo.attachFence('write');
  const early = bo.dmaBuf.waitIdle('read');
  // A second device job writing the buffer, attached after the first wait exported its fences: a vgem fence
  // of another buffer, imported into this one as a write fence (vgem would refuse a second write fence).
  const bo2 = dev.createBuffer(PAGE);
  const second = bo2.attachFence('write');
  const sf = bo2.dmaBuf.exportSyncFile('write');
  bo.dmaBuf.importSyncFile(sf, 'write');
  sf.close();
  const lateWait = bo.dmaBuf.waitIdle('read');
  const sync = DmabufSync.init({ name: 'late-reader' });
  sync.get(bo.dmaBuf, 'read');
  const lateLock = sync.lock();

  expect(sharedFenceWaits()).toEqual({ groups: 1, waiters: 3 });
  first.signal();
  await early; // it asked before the second job existed: the first fence was all it had to wait for
  expect(await stateAfter(lateWait, 200)).toBe('pending');
  expect(await stateAfter(lateLock, 0)).toBe('pending');
  second.signal();
  await lateWait;
  await lateLock;
  expect(sync.locked).toBe(true);
  await sync.unlock();
  sync.fini();
  expectNothingHeld(bo.dmaBuf);
  expect(sharedFenceWaits()).toEqual({ groups: 0, waiters: 0 });
  bo2.close();
});

needs('exportSyncFile')('a writer does not join the readers\' wait: it also waits for read fences', async () => {
  const writeJob = bo.attachFence('write');
  const reader = bo.dmaBuf.waitIdle('read');
  // A device job reading the buffer (another buffer's vgem fence, imported as a read fence).
  const bo2 = dev.createBuffer(PAGE);
  const readJob = bo2.attachFence('read');
  const sf = bo2.dmaBuf.exportSyncFile('write');
  bo.dmaBuf.importSyncFile(sf, 'read');
  sf.close();
  const writer = bo.dmaBuf.waitIdle('write');
  expect(sharedFenceWaits()).toEqual({ groups: 2, waiters: 2 });
  writeJob.signal();
  await reader;
  expect(await stateAfter(writer, 200)).toBe('pending');
  readJob.signal();
  await writer;
  bo2.close();
});
