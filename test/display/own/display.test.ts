// A real (emulated) KMS display that scans out its own buffers: virtio-gpu or bochs (scripts/test-display.sh
// runs this file once per device). Everything on screen is checked pixel by pixel with QEMU's screendump.
import { DmaBuf, KmsDisplay, SwapChain, VgemDevice, type ScanoutBuffer, type SyncFile } from '../../../lib';
import { snap } from '../../../examples/vm-screen';
import { drawLocked, expectScreen, firstDifference, flat, gradient, lockBusy, stateAfter } from '../helpers';

describe('a display with its own scanout buffers', () => {
  let display: KmsDisplay;
  let vgem: VgemDevice;
  beforeAll(() => {
    display = KmsDisplay.open();
    vgem = VgemDevice.open();
  });
  afterAll(() => {
    display.close();
    vgem.close();
  });

  /** A gate: an unsignalled vgem fence (a device job still running) as a SyncFile. */
  function gate(): { fence: SyncFile; open(): void; close(): void } {
    const bo = vgem.createBuffer(4096);
    const job = bo.attachFence('write');
    const fence = bo.dmaBuf.exportSyncFile('write');
    return {
      fence,
      open: () => job.signal(),
      close: () => {
        fence.close();
        bo.close();
      },
    };
  }

  test('opens the connected output and its mode', () => {
    expect(['virtio_gpu', 'bochs-drm']).toContain(display.driver);
    expect([display.width, display.height]).toEqual([640, 480]);
    expect(display.path).toMatch(/^\/dev\/dri\/card\d+$/);
  });

  test('pixels written through DmabufSync.map() appear exactly on the screen', async () => {
    const buf = display.createBuffer();
    try {
      await drawLocked(buf.dmaBuf, buf.width, buf.height, buf.pitch, gradient);
      const out = await display.present(buf);
      await out.wait({ timeoutMs: 10_000 });
      expect(out.info().fences[0]!.timeline).toMatch(/^CRTC:\d+/);
      out.close();
      await expectScreen(gradient, display.width, display.height);
    } finally {
      buf.close();
    }
  });

  test('a flip gated by an unsignalled vgem fence keeps the old frame on screen until the fence signals', async () => {
    const red = display.createBuffer();
    const blue = display.createBuffer();
    const g = gate();
    try {
      await drawLocked(red.dmaBuf, red.width, red.height, red.pitch, flat(0xff0000));
      await drawLocked(blue.dmaBuf, blue.width, blue.height, blue.pitch, flat(0x0000ff));
      const first = await display.present(red);
      await first.wait({ timeoutMs: 10_000 });
      first.close();
      const out = await display.present(blue, { inFence: g.fence });
      await new Promise((r) => setTimeout(r, 300));
      expect(out.isSignaled()).toBe(false);
      await expectScreen(flat(0xff0000), display.width, display.height);
      // The display still reads `red` until the gated flip latches: a writer of it must wait.
      expect(red.dmaBuf.isIdle('write')).toBe(false);
      g.open();
      await out.wait({ timeoutMs: 10_000 });
      out.close();
      await expectScreen(flat(0x0000ff), display.width, display.height);
      expect(red.dmaBuf.isIdle('write')).toBe(true);
    } finally {
      g.close();
      red.close();
      blue.close();
    }
  });

  test('the swap chain never hands out the buffer still scanned out: acquire waits for the gated flip', async () => {
    const chain = SwapChain.create(display);
    const g = gate();
    try {
      const [a, b] = chain.buffers as [ScanoutBuffer, ScanoutBuffer];
      const f1 = await chain.acquire({ timeoutMs: 10_000 });
      expect(f1.buffer).toBe(a);
      f1.pixels().fill(0x00ff00);
      (await chain.present(f1)).close();
      const f2 = await chain.acquire({ timeoutMs: 10_000 });
      expect(f2.buffer).toBe(b);
      f2.pixels().fill(0xff00ff);
      const out = await chain.present(f2, { inFence: g.fence });
      // `a` is on screen until the gated flip latches: acquire() must not hand it out.
      await expect(chain.acquire({ timeoutMs: 300 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
      expect(lockBusy(a.dmaBuf)).toBe(false); // the timed-out acquire holds nothing
      const pending = chain.acquire({ timeoutMs: 20_000 });
      expect(await stateAfter(pending, 300)).toBe('pending');
      await expectScreen(flat(0x00ff00), display.width, display.height);
      g.open();
      const f3 = await pending;
      expect(f3.buffer).toBe(a);
      expect(out.isSignaled()).toBe(true);
      await expectScreen(flat(0xff00ff), display.width, display.height);
      expect(chain.stats.fenceWaits).toBeGreaterThanOrEqual(1);
      out.close();
      await f3.cancel();
    } finally {
      g.close();
      chain.close();
    }
  });

  test('100 frames of a moving pattern: every screendump shows one whole frame', async () => {
    const { width, height } = display;
    // Row 0 carries the frame number in blue; a 32-pixel white bar moves right by 16 pixels a frame.
    const bg = (n: number): number => 0x204000 | ((n * 7) & 0xff);
    const barAt = (n: number): number => (n * 16) % width;
    const frame = (n: number) => (x: number, y: number): number => {
      if (y === 0) return 0x800000 | n;
      return x >= barAt(n) && x < barAt(n) + 32 ? 0xffffff : bg(n);
    };
    const chain = SwapChain.create(display, { count: 3 });
    const shots: Array<Awaited<ReturnType<typeof snap>>> = [];
    try {
      for (let n = 0; n < 100; n++) {
        const f = await chain.acquire({ timeoutMs: 10_000 });
        // Every 4th frame the screen is dumped while the CPU draws: it must show the previous frames, whole.
        const shot = n % 4 === 2 ? snap() : undefined; // from frame 2 on, frames 0 and 1 are presented
        const px = f.pixels();
        const row = f.pitch / 4;
        px.fill(0x800000 | n, 0, width);
        for (let y = 1; y < height; y++) {
          px.fill(bg(n), y * row, y * row + width);
          px.fill(0xffffff, y * row + barAt(n), y * row + Math.min(width, barAt(n) + 32));
          if (y % 60 === 0) await new Promise((r) => setImmediate(r)); // let the dump interleave with drawing
        }
        if (shot) shots.push(await shot);
        const out = await chain.present(f);
        if (n === 99) await out.wait({ timeoutMs: 10_000 });
        out.close();
      }
      shots.push(await snap());
      const seen = new Set<number>();
      for (const shot of shots) {
        const n = shot.rgb[2]!; // blue of pixel (0, 0)
        expect(n).toBeLessThan(100);
        expect(firstDifference(shot, frame(n))).toBeUndefined();
        seen.add(n);
      }
      expect(seen.size).toBeGreaterThan(10);
      expect(seen.has(99)).toBe(true); // the last frame, once its flip latched
      expect(chain.stats.frames).toBe(100);
    } finally {
      chain.close();
    }
  }, 600_000); // a hang guard, not a speed target: under TCG on a loaded host the 100 frames take minutes

  describe('bad input: typed errors, no fd leaked', () => {
    test('a driver that cannot import foreign dma-bufs says so with the kernel code', () => {
      const udmabuf = DmaBuf.allocUdmabuf(display.width * display.height * 4);
      try {
        let err: unknown;
        try {
          display.importBuffer(udmabuf);
        } catch (e) {
          err = e;
        }
        expect(err).toMatchObject({ name: 'DmabufError', code: display.driver === 'virtio_gpu' ? 'ENODEV' : 'EINVAL' });
        expect((err as Error).message).toMatch(/cannot scan out a dma-buf from another device.*createBuffer/);
      } finally {
        udmabuf.close();
      }
    });

    test('a buffer too small for the mode is EINVAL before the kernel sees it', () => {
      const small = DmaBuf.allocUdmabuf(4096);
      try {
        expect(() => display.importBuffer(small)).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/too small.*needs 1228800 bytes/) }));
      } finally {
        small.close();
      }
    });

    test('a closed DmaBuf is EBADF', () => {
      const buf = DmaBuf.allocUdmabuf(display.width * display.height * 4);
      buf.close();
      expect(() => display.importBuffer(buf)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    });

    test('present() of a closed buffer, with a closed in-fence, or of a foreign object', async () => {
      const buf = display.createBuffer();
      const g = gate();
      g.fence.close();
      await expect(display.present(buf, { inFence: g.fence })).rejects.toMatchObject({ code: 'EBADF' });
      g.open();
      g.close();
      buf.close();
      await expect(display.present(buf)).rejects.toMatchObject({ code: 'EBADF' });
      await expect(display.present({} as ScanoutBuffer)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    });
  });
});

describe('after close()', () => {
  test('present() is EBADF, buffers are closed with the display, close() is idempotent', async () => {
    const display = KmsDisplay.open();
    const buf = display.createBuffer();
    (await display.present(buf)).close();
    display.close();
    expect(buf.closed).toBe(true);
    await expect(display.present(buf)).rejects.toMatchObject({ code: 'EBADF' });
    expect(() => display.createBuffer()).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => display.close()).not.toThrow();
  });

  test('opening a driver that is not there is ENOENT with what to do', () => {
    expect(() => KmsDisplay.open({ driver: 'no-such-driver' })).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/no DRM card with driver "no-such-driver".*DMABUF_VM_DISPLAY/) }),
    );
  });
});
