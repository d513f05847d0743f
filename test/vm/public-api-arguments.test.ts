// The dma-buf paths of the public API, given any JavaScript value for any one argument (the others valid):
// a typed error naming the argument, or success — never a raw TypeError from inside the library. Also:
// several failures in one unlock() come back together, naming the buffers.
import { DmaBuf, DmabufError, DmabufSync, SyncFile, VgemDevice, type Access } from '../../lib';
import { checkArgument } from '../helpers/any-argument';
import { cpuBuffer, needs } from './fixtures/kernel-features';

jest.setTimeout(600_000);

const RUNS = 30;
let buf: DmaBuf;
beforeEach(() => {
  buf = cpuBuffer(4096);
});
afterEach(() => buf.close());

test('DmaBuf methods', async () => {
  await checkArgument('options', (v) => buf.map(v as never), RUNS);
  for (const method of ['syncStart', 'syncEnd'] as const) {
    await checkArgument('access', (v) => {
      buf[method](v as Access);
      // Whatever opened must be closed again.
      if (method === 'syncStart') buf.syncEnd(v as Access);
    }, RUNS);
  }
  await checkArgument('access', (v) => buf.isIdle(v as Access), RUNS);
  await checkArgument('access', (v) => buf.waitIdle(v as Access), RUNS);
  await checkArgument('options', (v) => buf.waitIdle('read', v as never), RUNS);
});

// EXPORT/IMPORT_SYNC_FILE exist from Linux 6.0 on: on older kernels every valid call is ENOTTY.
needs('exportSyncFile')('DmaBuf sync_file methods', async () => {
  await checkArgument('access', (v) => buf.exportSyncFile(v as Access), RUNS);
  await checkArgument('fence', (v) => buf.importSyncFile(v as SyncFile, 'read'), RUNS);
  const sf = buf.exportSyncFile('write');
  try {
    await checkArgument('access', (v) => buf.importSyncFile(sf, v as Access), RUNS);
    await checkArgument('options', (v) => sf.wait(v as never), RUNS);
    await checkArgument('other', (v) => sf.merge(v as SyncFile), RUNS);
    await checkArgument('name', (v) => sf.merge(sf, v as string), RUNS);
  } finally {
    sf.close();
  }
});

test('vgem device, buffer and fence', async () => {
  const dev = VgemDevice.open();
  try {
    await checkArgument('size', (v) => (typeof v === 'number' && v > 1 << 24 ? undefined : dev.createBuffer(v as number)), RUNS);
    const bo = dev.createBuffer(4096);
    try {
      await checkArgument('access', (v) => bo.attachFence(v as Access).signal(), RUNS);
    } finally {
      bo.close();
    }
  } finally {
    dev.close();
  }
});

test('DmabufSync with a buffer: get, map, unlock', async () => {
  const each = (f: (s: DmabufSync, v: unknown) => unknown) => async (v: unknown) => {
    const s = DmabufSync.init({ name: 'args' });
    try {
      return await f(s, v);
    } finally {
      if (s.locked) await s.unlock().catch(() => undefined);
      s.fini();
    }
  };
  await checkArgument('access', each((s, v) => s.get(buf, v as Access)), RUNS);
  await checkArgument('options', each((s, v) => s.get(buf, 'read', v as never)), RUNS);
  await checkArgument('buf', each(async (s, v) => {
    s.get(buf, 'read');
    await s.lock();
    return s.map(v as DmaBuf);
  }), RUNS);
  await checkArgument('options', each(async (s, v) => {
    s.get(buf, 'read');
    await s.lock();
    await s.unlock({ fence: v as number });
  }), RUNS);
});

test('a bad fence fd is named as the caller passed it, and the locks are released all the same', async () => {
  const s = DmabufSync.init({ name: 'bad-fence' });
  s.get(buf, 'write');
  await s.lock();
  const err = await s.unlock({ fence: 0 }).then(() => undefined, (e: unknown) => e);
  expect(err).toMatchObject({ code: 'ENOTTY', message: expect.stringContaining('options.fence 0 is not a sync_file') });
  expect(s.state).toBe('idle');
  s.fini();
});

test('DmaBuf.fromFd names the caller\'s fd, not the library\'s dup', () => {
  expect(() => DmaBuf.fromFd(0)).toThrow(expect.objectContaining({ code: 'ENOTTY', message: expect.stringMatching(/^fd 0 is not a dma-buf/) }));
});

test('several failures in one unlock() are reported together, each naming its buffer', async () => {
  const other = cpuBuffer(4096);
  const s = DmabufSync.init({ name: 'two-faults' });
  s.get(buf, 'read');
  s.get(other, 'read');
  await s.lock();
  s.map(buf).bytes[0] = 1; // caught writes into two read-only views
  s.map(other).bytes[0] = 1;
  const err = (await s.unlock().then(() => undefined, (e: unknown) => e)) as DmabufError;
  expect(err).toBeInstanceOf(DmabufError);
  expect(err.code).toBe('EACCES');
  expect(err.errors).toHaveLength(2);
  expect(err.message).toContain(`inode ${buf.inode}`);
  expect(err.message).toContain(`inode ${other.inode}`);
  expect(err.errors!.map((e) => (e as DmabufError).code)).toEqual(['EACCES', 'EACCES']);
  expect(s.state).toBe('idle');
  s.fini();
  other.close();
});
