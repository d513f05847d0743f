// A DMABUF import the queue refuses: vivid's second instance (scripts/vm.sh loads vivid with n_devs=2,
// allocators=0,1) has one capture node whose queue uses videobuf2-dma-contig, which needs physically
// contiguous memory; a udmabuf of scattered pages cannot be mapped for it. QBUF's EFAULT comes back as a typed
// error naming the buffer and the cause; the device hold taken before QBUF is released, nothing leaked.
import { DeviceQueue, DmaBuf, DmabufSync, V4l2Device, query } from '../../lib';
import { needs } from './fixtures/kernel-features';
import { releaseVivid, tracked } from './fixtures/vivid';

jest.setTimeout(process.arch === 'x64' ? 120_000 : 600_000);

const C = V4l2Device.constants;

/** The capture node of vivid's dma-contig instance (bus "platform:vivid-001"), or undefined without one. */
function contigNodePath(): string | undefined {
  for (const n of ['/dev/video4', '/dev/video5', '/dev/video6', '/dev/video7', '/dev/video8']) {
    let dev: V4l2Device;
    try {
      dev = V4l2Device.open({ path: n });
    } catch {
      continue;
    }
    try {
      const c = dev.capability;
      if (c.driver === 'vivid' && c.busInfo.endsWith('vivid-001') && c.deviceCaps & C.V4L2_CAP_VIDEO_CAPTURE) return n;
    } finally {
      dev.close();
    }
  }
  return undefined;
}

afterEach(releaseVivid);

/**
 * A udmabuf whose pages are not physically contiguous. A fresh VM hands out a udmabuf's pages in ascending
 * physical order (the per-CPU free lists are filled from one split high-order block), which a dma-contig queue
 * happily maps. Pages freed go back to the head of those lists, so a udmabuf of the same size allocated right
 * after one was freed gets its pages in descending order: every next page below the last one.
 */
function scatteredUdmabuf(size: number): DmaBuf {
  DmaBuf.allocUdmabuf(size).close(); // its pages are freed when the dma-buf is released, at this close
  return DmaBuf.allocUdmabuf(size);
}

function lockState(buf: DmaBuf): { holders: number; waiters: number } {
  const l = query().locks.find((x) => x.key === buf.inode);
  return { holders: l ? l.holders.length : 0, waiters: l ? l.waiters.length : 0 };
}

needs('udmabuf')('a udmabuf queued on a dma-contig capture queue: EFAULT naming the buffer and the cause, the device hold released, nothing kept', async () => {
  const path = contigNodePath();
  // scripts/vm.sh loads the second instance on every machine: its absence is a broken VM, not a skip.
  expect(path).toBeDefined();
  using cam = V4l2Device.open({ path });
  cam.setInput(0);
  const fmt = cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'XR24' });
  const size = Math.ceil(fmt.planes[0]!.sizeimage / 4096) * 4096;
  // The node is dma-contig and works with the memory it can map: the device's own (MMAP, contiguous) buffers.
  const mm = tracked(new DeviceQueue(cam, 'capture', { maxHoldMs: 600_000 }));
  const [b0] = mm.allocate(2);
  expect(b0!.exporter).toBe('videobuf2_dma_contig');
  await mm.queue(0);
  await mm.queue(1);
  mm.streamOn();
  const d = await mm.dequeue({ timeoutMs: 120_000 });
  expect(d.index).toBe(0);
  expect(d.info.planes[0]!.bytesused).toBe(fmt.planes[0]!.sizeimage);
  await mm.close();

  using buf = scatteredUdmabuf(size);
  expect(buf.exporter).toBe('udmabuf');
  const q = tracked(new DeviceQueue(cam, 'capture', { memory: 'dmabuf', maxHoldMs: 600_000 }));
  try {
    q.attach([buf]);
    await expect(q.queue(0)).rejects.toMatchObject({
      code: 'EFAULT',
      syscall: 'ioctl(VIDIOC_QBUF)',
      message: expect.stringMatching(new RegExp(`refused dma-buf inode ${buf.inode} \\(udmabuf\\) as capture buffer #0.*physically contiguous`)),
    });
    expect(q.queued).toEqual([]);
    expect(lockState(buf)).toEqual({ holders: 0, waiters: 0 });
    // The buffer is free for anyone: a CPU writer locks it at once.
    const w = await DmabufSync.single(buf, 'write', { wait: false });
    await w.unlock();
    w.fini();
  } finally {
    await q.close();
  }
});
