// A real V4L2 device: vivid, the kernel's virtual camera (loaded in every test VM by scripts/vm.sh).
import { DmaBuf, V4l2Device } from '../../lib';
import { cpuBuffer } from './fixtures/kernel-features';
import { openVivid, releaseVivid } from './fixtures/vivid';

// Frames arrive slowly under TCG (arm64 most): the 5 s default would time a capture out.
jest.setTimeout(process.arch === 'x64' ? 120_000 : 600_000);

const C = V4l2Device.constants;

/** vivid's capture node, released after the test (STREAMOFF, REQBUFS 0, close) whatever the test left. */
function openCamera(): V4l2Device {
  return openVivid();
}

// A failed test must not leave vivid busy (EBUSY) for the next.
afterEach(releaseVivid);

describe('V4l2Device on vivid', () => {
  test('capabilities and formats of the capture node', () => {
    using cam = openCamera();
    const cap = cam.capability;
    expect(cap.driver).toBe('vivid');
    expect(cap.deviceCaps & C.V4L2_CAP_VIDEO_CAPTURE).toBeTruthy();
    const formats = cam.formats('capture').map((f) => f.pixelformat);
    expect(formats).toContain(C.V4L2_PIX_FMT_XRGB32);
    expect(cam.inputs().length).toBeGreaterThan(0);
    expect(cam.controls().some((c) => c.name === 'Brightness')).toBe(true);
    const b = cam.getControl('Brightness');
    expect(cam.setControl('Brightness', b)).toBe(b);
  });

  test('captures frames into exported MMAP buffers (EXPBUF → DmaBuf) through libuv waits', async () => {
    using cam = openCamera();
    cam.setInput(0);
    const fmt = cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'XR24' });
    expect(fmt.planes[0].sizeimage).toBeGreaterThanOrEqual(640 * 480 * 4);
    cam.setFrameInterval('capture', 1, 60);
    expect(cam.requestBuffers('capture', 'mmap', 2)).toBeGreaterThanOrEqual(2);
    const bufs = [cam.exportBuffer('capture', 0), cam.exportBuffer('capture', 1)];
    try {
      expect(bufs[0].exporter).toMatch(/videobuf2/);
      cam.queueBuffer('capture', 'mmap', 0);
      cam.queueBuffer('capture', 'mmap', 1);
      cam.streamOn('capture');
      const got = await cam.dequeue('capture', 'mmap', { timeoutMs: 20_000 });
      expect(got.planes[0].bytesused).toBe(fmt.planes[0].sizeimage);
      const m = bufs[got.index].map({ writable: false });
      try {
        const px = new Uint32Array(m.buffer, 0, 640 * 480);
        expect(px.some((v) => (v & 0xffffff) !== 0)).toBe(true); // vivid's colour bars, not an empty buffer
      } finally {
        m.release();
      }
      cam.streamOff('capture');
      expect(cam.requestBuffers('capture', 'mmap', 0)).toBe(0);
    } finally {
      for (const b of bufs) b.close();
    }
  });

  test('DMABUF import of a CPU dma-buf on the capture queue', async () => {
    using cam = openCamera();
    const fmt = cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'XR24' });
    cam.setFrameInterval('capture', 1, 60);
    // Two buffers: vivid starts the stream only with 2 queued on Linux 5.10 (vb2 min_buffers_needed).
    cam.requestBuffers('capture', 'dmabuf', 2);
    const size = Math.ceil(fmt.planes[0].sizeimage / 4096) * 4096;
    using buf = cpuBuffer(size);
    using other = cpuBuffer(size);
    cam.queueBuffer('capture', 'dmabuf', 0, { dmabufs: [buf] });
    cam.queueBuffer('capture', 'dmabuf', 1, { dmabufs: [other] });
    cam.streamOn('capture');
    const got = await cam.dequeue('capture', 'dmabuf', { timeoutMs: 20_000 });
    expect(got.index).toBe(0);
    expect(got.planes[0].bytesused).toBe(fmt.planes[0].sizeimage);
    cam.streamOff('capture');
    cam.requestBuffers('capture', 'dmabuf', 0);
  });

  describe('bad input: typed errors, nothing leaked', () => {
    test('a node that is not V4L2 is ENOTTY', () => {
      expect(() => V4l2Device.open({ path: '/dev/null' })).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    });

    test('no matching node is ENOENT', () => {
      expect(() => V4l2Device.open({ driver: 'no-such-driver' })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    });

    test('a format the device refuses is EINVAL naming both formats', () => {
      using cam = openCamera();
      expect(() => cam.setFormat('capture', { width: 123, height: 45, pixelformat: 'XR24' })).toThrow(
        expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/refused format 123x45 XR24/) }),
      );
      expect(() => cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'ABCD' })).toThrow(
        expect.objectContaining({ code: 'EINVAL' }),
      );
    });

    test('a buffer too small for the format is EINVAL at QBUF', () => {
      using cam = openCamera();
      cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'XR24' });
      cam.requestBuffers('capture', 'dmabuf', 1);
      using small = cpuBuffer(4096);
      expect(() => cam.queueBuffer('capture', 'dmabuf', 0, { dmabufs: [small] })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      cam.requestBuffers('capture', 'dmabuf', 0);
    });

    test('QBUF of a buffer already queued is EINVAL', () => {
      using cam = openCamera();
      cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'XR24' });
      cam.requestBuffers('capture', 'mmap', 2);
      cam.queueBuffer('capture', 'mmap', 0);
      expect(() => cam.queueBuffer('capture', 'mmap', 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      cam.requestBuffers('capture', 'mmap', 0);
    });

    test('dequeue with nothing queued is EINVAL, not a hang', async () => {
      using cam = openCamera();
      cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'XR24' });
      await expect(cam.dequeue('capture', 'mmap', { timeoutMs: 5000 })).rejects.toMatchObject({ code: 'EINVAL' });
    });

    test('use after close is EBADF; close is idempotent', () => {
      const cam = openCamera();
      cam.close();
      cam.close();
      expect(cam.closed).toBe(true);
      expect(() => cam.formats('capture')).toThrow(expect.objectContaining({ code: 'EBADF' }));
      expect(() => cam.exportBuffer('capture', 0)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    });

    test('bad arguments are TypeError/RangeError', () => {
      using cam = openCamera();
      expect(() => cam.formats('sideways' as never)).toThrow(TypeError);
      expect(() => cam.requestBuffers('capture', 'userptr' as never, 1)).toThrow(TypeError);
      expect(() => cam.queueBuffer('capture', 'dmabuf', 0, { dmabufs: [3 as unknown as DmaBuf] })).toThrow(TypeError);
      expect(() => cam.setFrameInterval('capture', 0, 60)).toThrow(RangeError);
    });
  });
});
