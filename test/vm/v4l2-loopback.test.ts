// vivid's output → capture loopback, the stand-in for a mem2mem device on a stock kernel: the capture node on
// its HDMI input, the output node on its HDMI output, the input connected to that output, both 1280x720 XR24.
// What the CPU draws into the output's buffers (udmabuf, imported with V4L2_MEMORY_DMABUF) shows up in the
// captured frames, and an output buffer is read-locked for the device while queued: a CPU writer waits until
// it is dequeued.
import { DeviceQueue, DmaBuf, DmabufSync, V4l2Device, query } from '../../lib';
import { cpuBuffer } from './fixtures/kernel-features';
import { openVivid, openVividOutput, releaseVivid, tracked } from './fixtures/vivid';

jest.setTimeout(process.arch === 'x64' ? 300_000 : 900_000);
/** Bound on a frame's DQBUF (720p frames are slow under TCG). */
const FRAME_MS = 120_000;
/** The device holds' watchdog bound: output buffers stay queued across several capture frames. */
const HOLD_MS = 600_000;
const W = 1280;
const H = 720;
/** Captured frames to look through for the looped picture: the first may predate the output's stream. */
const MAX_FRAMES = 10;

/** The loopback's capture side: vivid's HDMI input (3) connected to its HDMI output, no OSD text. */
function openLoopCapture(): V4l2Device {
  return openVivid((cam) => {
    const hdmi = cam.inputs().find((i) => i.name.startsWith('HDMI'));
    if (!hdmi) throw new Error(`vivid has no HDMI input: ${JSON.stringify(cam.inputs())}`);
    cam.setInput(hdmi.index);
    const names = cam.controls().map((c) => c.name);
    // Linux 6.x: each HDMI input says which output it shows (0 test pattern, 1 none, 2 the first HDMI
    // output). Older vivid has one 'Loop Video' switch instead.
    if (names.includes('HDMI 000-0 Is Connected To')) cam.setControl('HDMI 000-0 Is Connected To', 2);
    else cam.setControl('Loop Video', 1);
    cam.setControl('OSD Text Mode', 2); // no counters drawn over the looped picture
    cam.setFormat('capture', { width: W, height: H, pixelformat: 'XR24' });
  });
}

/** The loopback's output side: vivid's HDMI output at the capture's format. */
function openLoopOutput(): V4l2Device {
  return openVividOutput((out) => {
    const hdmi = out.outputs().find((o) => o.name.startsWith('HDMI'));
    if (!hdmi) throw new Error(`vivid has no HDMI output: ${JSON.stringify(out.outputs())}`);
    out.setOutput(hdmi.index);
    out.setFormat('output', { width: W, height: H, pixelformat: 'XR24' });
  });
}

afterEach(async () => {
  // The OSD text is device-wide: other files' frames keep vivid's default.
  const cam = V4l2Device.open({ driver: 'vivid', capabilities: V4l2Device.constants.V4L2_CAP_VIDEO_CAPTURE });
  try {
    cam.setControl('OSD Text Mode', 0);
  } finally {
    cam.close();
  }
  await releaseVivid();
});

/** The picture drawn into the output: a different RGB value at every pixel, so a shift or scale would show. */
function pattern(x: number, y: number): number {
  return ((x * 7 + y * 3) & 0xff) | (((x >> 3) & 0xff) << 8) | (((y * 5) & 0xff) << 16);
}

/** Draws pattern() into `buf` under a CPU write lock. */
async function draw(buf: DmaBuf): Promise<void> {
  const s = await DmabufSync.single(buf, 'write');
  try {
    const px = new Uint32Array(s.map(buf).buffer, 0, W * H);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) px[y * W + x] = pattern(x, y);
  } finally {
    await s.unlock();
    s.fini();
  }
}

/** The first pixel of `buf` (under a CPU read lock) that is not pattern()'s, as "x,y: got want", or null. */
async function mismatch(buf: DmaBuf): Promise<string | null> {
  const s = await DmabufSync.single(buf, 'read');
  try {
    const px = new Uint32Array(s.map(buf).buffer, 0, W * H);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const got = (px[y * W + x] as number) & 0xffffff; // XR24: the X byte is not part of the picture
        if (got !== pattern(x, y)) return `${x},${y}: 0x${got.toString(16)} instead of 0x${pattern(x, y).toString(16)}`;
      }
    }
    return null;
  } finally {
    await s.unlock();
    s.fini();
  }
}

function holders(buf: DmaBuf): string[] {
  const l = query().locks.find((x) => x.key === buf.inode);
  return l ? l.holders.map((h) => `${h.mode} ${h.ctxName}`) : [];
}

/** Resolves to 'resolved' or 'pending' after letting the event loop run for `ms`. */
async function stateAfter(p: Promise<unknown>, ms: number): Promise<'resolved' | 'pending'> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setTimeout(r, ms));
  return done ? 'resolved' : 'pending';
}

test('loopback: udmabufs drawn by the CPU and queued on the output show up in the captured frames; a queued output buffer is read-locked until DQBUF', async () => {
  using cam = openLoopCapture();
  using out = openLoopOutput();
  const size = Math.ceil(out.format('output').planes[0]!.sizeimage / 4096) * 4096;
  using src0 = cpuBuffer(size);
  using src1 = cpuBuffer(size);
  await draw(src0);
  await draw(src1);
  const output = tracked(new DeviceQueue(out, 'output', { memory: 'dmabuf', maxHoldMs: HOLD_MS }));
  const capture = tracked(new DeviceQueue(cam, 'capture', { maxHoldMs: HOLD_MS }));
  expect(output.access).toBe('read');
  output.attach([src0, src1]);
  const frames = [...capture.allocate(3)];

  // Queued on the output: read-locked on the device's behalf. CPU readers share it; a writer waits.
  await output.queue(0);
  expect(holders(src0)).toEqual([`read v4l2 ${out.path} output #0`]);
  const reader = await DmabufSync.single(src0, 'read', { wait: false });
  await reader.unlock();
  reader.fini();
  const writer = DmabufSync.single(src0, 'write', { timeoutMs: FRAME_MS + 60_000 });
  writer.catch(() => undefined); // awaited below
  // vivid's output hands a buffer back only while another is queued: the loop always has a picture.
  await output.queue(1);
  output.streamOn();
  for (let i = 0; i < frames.length; i++) await capture.queue(i);
  capture.streamOn();

  // The drawn picture arrives on the capture side, pixel for pixel.
  let last: string | null = 'no frame captured';
  for (let n = 0; n < MAX_FRAMES && last !== null; n++) {
    const f = await capture.dequeue({ timeoutMs: FRAME_MS });
    expect(f.info.planes[0]!.bytesused).toBe(W * H * 4);
    last = await mismatch(f.buf);
    await capture.queue(f.index);
  }
  expect(last).toBeNull();

  // The output has long shown buffer 0, but its device hold ends only at DQBUF: the writer still waits.
  expect(await stateAfter(writer, 300)).toBe('pending');
  expect(holders(src0)).toEqual([`read v4l2 ${out.path} output #0`]);
  const d = await output.dequeue({ timeoutMs: FRAME_MS });
  expect(d.index).toBe(0);
  const w = await writer;
  expect(holders(src0)).toEqual([`write ${w.name}`]);
  await w.unlock();
  w.fini();

  await capture.close();
  await output.close();
  for (const b of [src0, src1]) expect(holders(b)).toEqual([]);
  for (const b of frames) expect(holders(b)).toEqual([]);
});
