// A display that scans out any dma-buf (cirrus in the test VM): a udmabuf — memory no display driver
// allocated — imported with PRIME, drawn through DmabufSync, checked on the screen pixel by pixel.
import { DmaBuf, KmsDisplay, SwapChain } from '../../../lib';
import { drawLocked, expectScreen, flat, gradient } from '../helpers';

describe('a display that imports foreign dma-bufs', () => {
  let display: KmsDisplay;
  beforeAll(() => {
    display = KmsDisplay.open();
  });
  afterAll(() => display.close());

  test('pixels written into a udmabuf through DmabufSync.map() appear exactly on the screen', async () => {
    expect(display.driver).toBe('cirrus');
    const udmabuf = DmaBuf.allocUdmabuf(display.width * display.height * 4);
    const scanout = display.importBuffer(udmabuf);
    try {
      expect(scanout.dmaBuf.inode).toBe(udmabuf.inode); // the same buffer, not a copy
      await drawLocked(udmabuf, display.width, display.height, scanout.pitch, gradient);
      const out = await display.present(scanout);
      await out.wait({ timeoutMs: 10_000 });
      out.close();
      await expectScreen(gradient, display.width, display.height);
    } finally {
      scanout.close();
      udmabuf.close();
    }
  });

  test('a padded pitch and an offset are honoured', async () => {
    const pitch = display.width * 4 + 256;
    const offset = 4096;
    const udmabuf = DmaBuf.allocUdmabuf(offset + pitch * display.height);
    const scanout = display.importBuffer(udmabuf, { pitch, offset });
    try {
      await drawLocked(udmabuf, display.width, display.height, pitch, gradient, offset);
      const out = await display.present(scanout);
      await out.wait({ timeoutMs: 10_000 });
      out.close();
      await expectScreen(gradient, display.width, display.height);
    } finally {
      scanout.close();
      udmabuf.close();
    }
  });

  test('a swap chain over imported udmabufs shows each frame', async () => {
    const bufs = [0, 1].map(() => DmaBuf.allocUdmabuf(display.width * display.height * 4));
    const chain = SwapChain.create(display, { buffers: bufs });
    try {
      for (const colour of [0xff0000, 0x00ff00, 0x0000ff]) {
        const f = await chain.acquire({ timeoutMs: 10_000 });
        f.pixels().fill(colour);
        const out = await chain.present(f);
        await out.wait({ timeoutMs: 10_000 });
        out.close();
        await expectScreen(flat(colour), display.width, display.height);
      }
    } finally {
      chain.close();
      for (const b of bufs) b.close();
    }
  });

  test('importing the same dma-buf twice gives two framebuffers that close independently', async () => {
    const udmabuf = DmaBuf.allocUdmabuf(display.width * display.height * 4);
    const a = display.importBuffer(udmabuf);
    const b = display.importBuffer(udmabuf);
    try {
      a.close();
      await drawLocked(udmabuf, display.width, display.height, b.pitch, flat(0x123456));
      const out = await display.present(b); // b's GEM handle survived a's close
      await out.wait({ timeoutMs: 10_000 });
      out.close();
      await expectScreen(flat(0x123456), display.width, display.height);
    } finally {
      b.close();
      udmabuf.close();
    }
  });

  test('too small, bad pitch, closed: typed errors, nothing leaked', () => {
    const small = DmaBuf.allocUdmabuf(display.width * 4 * (display.height - 1));
    try {
      expect(() => display.importBuffer(small)).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/too small/) }));
      expect(() => display.importBuffer(small, { pitch: 4 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    } finally {
      small.close();
    }
    expect(() => display.importBuffer(small)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => display.importBuffer({} as DmaBuf)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
