// Device fences on real dma-bufs: vgem fences stand in for a GPU job reading or writing the buffer.
import { SyncFile, VgemDevice, type VgemBuffer } from '../../lib';
import { setExportSyncFileSupport } from '../../lib/kernel/implicit-fences';
import { cpuBuffer, needs } from './fixtures/kernel-features';
import { stateAfter } from './fixtures/until';

let dev: VgemDevice;
let bo: VgemBuffer;
beforeEach(() => {
  dev = VgemDevice.open();
  bo = dev.createBuffer(64 * 1024);
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

  test('a write fence keeps a read wait pending until it is signalled, then the wait resolves', async () => {
    const fence = bo.attachFence('write');
    expect(bo.dmaBuf.isIdle('read')).toBe(false);
    const wait = bo.dmaBuf.waitIdle('read');
    expect(await stateAfter(wait, 200)).toBe('pending');
    fence.signal();
    await expect(wait).resolves.toBeUndefined();
    expect(bo.dmaBuf.isIdle('read')).toBe(true);
  });

  test('a read fence blocks a writer but not a reader', async () => {
    const fence = bo.attachFence('read');
    expect(bo.dmaBuf.isIdle('read')).toBe(true);
    expect(bo.dmaBuf.isIdle('write')).toBe(false);
    await expect(bo.dmaBuf.waitIdle('read', { timeoutMs: 1000 })).resolves.toBeUndefined();
    const w = bo.dmaBuf.waitIdle('write');
    expect(await stateAfter(w, 100)).toBe('pending');
    fence.signal();
    await w;
  });

  test('timeout rejects with ETIMEDOUT and abort with AbortError, leaving no fd open', async () => {
    const fence = bo.attachFence('write');
    await expect(bo.dmaBuf.waitIdle('read', { timeoutMs: 50 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    const ac = new AbortController();
    const p = bo.dmaBuf.waitIdle('write', { signal: ac.signal });
    setTimeout(() => ac.abort(), 30);
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    const pre = new AbortController();
    pre.abort();
    await expect(bo.dmaBuf.waitIdle('write', { signal: pre.signal })).rejects.toMatchObject({ name: 'AbortError' });
    fence.signal();
  });
});

needs('exportSyncFile')('an exported read sync_file is pending under a write fence; its async wait resolves on signal and not before', async () => {
  const fence = bo.attachFence('write');
  const sf = bo.dmaBuf.exportSyncFile('read');
  try {
    expect(sf.isSignaled()).toBe(false);
    const info = sf.info();
    expect(info.status).toBe('active');
    expect(info.fences.length).toBeGreaterThanOrEqual(1);
    expect(info.fences.some((f) => f.status === 'active')).toBe(true);
    const wait = sf.wait();
    expect(await stateAfter(wait, 200)).toBe('pending');
    fence.signal();
    await wait;
    const after = sf.info();
    expect(after.status).toBe('signaled');
    expect(after.fences.every((f) => f.status === 'signaled' && typeof f.timestampNs === 'bigint' && f.timestampNs > 0n)).toBe(true);
  } finally {
    sf.close();
  }
});

needs('exportSyncFile')('info names the vgem fence driver; merge waits for both', async () => {
  const bo2 = dev.createBuffer(4096);
  const f1 = bo.attachFence('write');
  const f2 = bo2.attachFence('write');
  const s1 = bo.dmaBuf.exportSyncFile('write');
  const s2 = bo2.dmaBuf.exportSyncFile('write');
  const merged = s1.merge(s2, 'both');
  try {
    expect(s1.info().fences.map((f) => f.driver)).toContain('vgem');
    expect(merged.info().name).toBe('both');
    expect(merged.info().fences).toHaveLength(2);
    f1.signal();
    expect(await stateAfter(merged.wait(), 100)).toBe('pending');
    expect(s1.isSignaled()).toBe(true);
    f2.signal();
    await merged.wait({ timeoutMs: 2000 });
    expect(merged.info().status).toBe('signaled');
  } finally {
    merged.close();
    s1.close();
    s2.close();
    bo2.close();
  }
});

needs('exportSyncFile')('an imported sync_file is seen by a later export (the device job now owns the buffer)', async () => {
  const target = cpuBuffer(4096);
  const fence = bo.attachFence('write');
  const job = bo.dmaBuf.exportSyncFile('write'); // "the device job's fence"
  try {
    expect(target.isIdle('read')).toBe(true);
    target.importSyncFile(job, 'write');
    expect(target.isIdle('read')).toBe(false);
    const wait = target.waitIdle('read');
    expect(await stateAfter(wait, 100)).toBe('pending');
    fence.signal();
    await wait;
    // A read fence blocks writers only.
    const f2 = bo.attachFence('write');
    const job2 = bo.dmaBuf.exportSyncFile('write');
    target.importSyncFile(job2, 'read');
    expect(target.isIdle('read')).toBe(true);
    expect(target.isIdle('write')).toBe(false);
    f2.signal();
    job2.close();
  } finally {
    job.close();
    target.close();
  }
});

needs('exportSyncFile')('SyncFile.fromFd keeps its own dup; the caller closes theirs', () => {
  const sf = bo.dmaBuf.exportSyncFile('read');
  const copy = SyncFile.fromFd(sf.fd);
  expect(copy.fd).not.toBe(sf.fd);
  sf.close();
  expect(copy.isSignaled()).toBe(true);
  copy.close();
  expect(() => copy.fd).toThrow(expect.objectContaining({ code: 'EBADF' }));
});
