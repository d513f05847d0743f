// Real dma-bufs on a real kernel: udmabuf, the system dma-heap and vgem allocate, map, keep bytes, and take
// the cache bracket with every flag.
import { DmaBuf, DmabufError, VgemDevice } from '../../lib';
import { native } from '../../lib/kernel/native';
import { cpuBuffer, needs } from './fixtures/kernel-features';

const PAGE = native.constants.PAGE_SIZE;

function allocators(): Array<[string, () => { buf: DmaBuf; close(): void }]> {
  return [
    ['udmabuf', () => { const buf = DmaBuf.allocUdmabuf(4 * PAGE); return { buf, close: () => buf.close() }; }],
    ['dma-heap system', () => { const buf = DmaBuf.allocHeap(4 * PAGE, 'system'); return { buf, close: () => buf.close() }; }],
    ['vgem', () => {
      const dev = VgemDevice.open();
      const bo = dev.createBuffer(4 * PAGE);
      return { buf: bo.dmaBuf, close: () => { bo.close(); dev.close(); } };
    }],
  ];
}

/** What each allocator needs from the kernel. */
const NEEDS = { udmabuf: ['udmabuf'], 'dma-heap system': ['heap'], vgem: ['vgem'] } as const;

describe.each(allocators())('%s buffer', (name, make) => {
  const test = needs(...NEEDS[name as keyof typeof NEEDS]);
  const testExport = needs(...NEEDS[name as keyof typeof NEEDS], 'exportSyncFile');
  test('allocates with a size, an inode and its exporter name', () => {
    const b = make();
    try {
      expect(b.buf.size).toBeGreaterThanOrEqual(4 * PAGE);
      expect(typeof b.buf.inode).toBe('bigint');
      expect(b.buf.inode).toBeGreaterThan(0n);
      // A PRIME export is named by the DRM core, not the driver.
      expect(b.buf.exporter).toBe({ udmabuf: 'udmabuf', 'dma-heap system': 'system', vgem: 'drm' }[name]);
    } finally {
      b.close();
    }
  });

  test('holds written bytes across mappings', () => {
    const b = make();
    try {
      const m1 = b.buf.map();
      b.buf.syncStart('write');
      m1.bytes.set([1, 2, 3, 250], 100);
      b.buf.syncEnd('write');
      m1.release();
      const m2 = b.buf.map({ writable: false });
      b.buf.syncStart('read');
      expect([...m2.bytes.subarray(100, 104)]).toEqual([1, 2, 3, 250]);
      b.buf.syncEnd('read');
      m2.release();
    } finally {
      b.close();
    }
  });

  test.each(['read', 'write', 'rw'] as const)('SYNC start/end succeed with %s', (access) => {
    const b = make();
    try {
      expect(() => b.buf.syncStart(access)).not.toThrow();
      expect(() => b.buf.syncEnd(access)).not.toThrow();
    } finally {
      b.close();
    }
  });

  test('SYNC with flags the kernel rejects is a typed EINVAL', () => {
    const b = make();
    try {
      let err: unknown;
      try {
        native.dmaBufSync(b.buf.fd, 0xff);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'EINVAL', syscall: 'ioctl(DMA_BUF_IOCTL_SYNC)' });
      expect(() => b.buf.syncStart('sideways' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    } finally {
      b.close();
    }
  });

  testExport('an idle buffer exports signalled sync_files for read and write', () => {
    const b = make();
    try {
      for (const access of ['read', 'write'] as const) {
        const sf = b.buf.exportSyncFile(access);
        expect(sf.isSignaled()).toBe(true);
        sf.close();
      }
      expect(b.buf.isIdle('rw')).toBe(true);
    } finally {
      b.close();
    }
  });
});

test('identity is the inode: two fds of one buffer are the same buffer, other buffers differ', () => {
  const a = cpuBuffer(PAGE);
  const b = cpuBuffer(PAGE);
  const a2 = DmaBuf.fromFd(a.fd);
  try {
    expect(a2.fd).not.toBe(a.fd);
    expect(a2.inode).toBe(a.inode);
    expect(b.inode).not.toBe(a.inode);
  } finally {
    a.close();
    a2.close();
    b.close();
  }
});

test('a released mapping cannot be used through the library', () => {
  const buf = cpuBuffer(PAGE);
  try {
    const m = buf.map();
    const view = m.bytes;
    view[0] = 7;
    m.release();
    expect(view.length).toBe(0); // detached: the view no longer reaches the memory
    expect(() => m.bytes).toThrow(DmabufError);
    expect(() => m.buffer).toThrow(expect.objectContaining({ code: 'EBADF' }));
    m.release(); // idempotent
  } finally {
    buf.close();
  }
});

needs('udmabuf')('sizes are rounded up to pages; udmabuf over its 64 MiB limit is a typed error', () => {
  const buf = DmaBuf.allocUdmabuf(1);
  expect(buf.size).toBe(PAGE);
  buf.close();
  expect(() => DmaBuf.allocUdmabuf(128 * 1024 * 1024)).toThrow(
    expect.objectContaining({ name: 'DmabufError', code: expect.stringMatching(/^E(INVAL|FBIG|NOMEM)$/) }),
  );
});

test('a non-existent heap is ENOENT with the path in the message', () => {
  expect(() => DmaBuf.allocHeap(PAGE, 'no-such-heap')).toThrow(
    expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('/dev/dma_heap/no-such-heap') }),
  );
});
