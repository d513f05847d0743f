/**
 * npm run demo: the 2013 dmabuf sync framework's scenarios on real dma-bufs.
 *  1. Two tasks lock sets of buffers in a loop. First sets that overlap in one buffer (A locks {a, b}; B
 *     locks {c, a}): contention on a, no cycle. Then the textbook ABBA cycle (A locks {a, b}; B locks
 *     {b, a}), a deadlock with plain mutexes: wound/wait backoff makes both progress. Counters inside the
 *     buffers prove no lost update.
 *  2. A CPU → device → CPU pipeline: the CPU writes a frame, a "device" job (vgem fences: a real kernel
 *     fence, signalled later by a timer standing in for the GPU interrupt) reads it and writes a result;
 *     the CPU reader's lock() waits for that fence before it reads.
 *  3. A holder that never unlocks: the watchdog forces it off, the next user goes on, and the late holder
 *     learns ETIMEDOUT; its late write lands in scratch memory, not in the buffer.
 *  4. A KMS display as a device reader: N frames animated through a SwapChain (the CPU draws a frame while
 *     the display scans out another; each flip's out-fence orders the next write into the replaced buffer),
 *     then the emulated screen is saved as a PNG (in the test VM with DMABUF_VM_DISPLAY set).
 *  5. Camera → CPU → display with no copy: vivid's capture buffers are the framebuffers. The camera holds a
 *     buffer's write lock from before QBUF until DQBUF (it has no fences: only our locks order it), the CPU
 *     locks the captured frame and draws an overlay into it in place, the display scans it out, and the
 *     buffer goes back to the camera only after the next flip. Needs a display that imports dma-bufs
 *     (cirrus in the test VM); the screen is saved as demo-camera.png.
 */
import { subscribe } from 'node:diagnostics_channel';
import * as path from 'node:path';
import { DeviceQueue, DmaBuf, DmabufSync, DmabufError, KmsDisplay, SwapChain, V4l2Device, VgemDevice, WwClass, type ScanoutBuffer, type WwClassKind } from '../lib';
import { canSnap, pixelAt, snap } from './vm-screen';
import { writePng } from './png';

const ITERATIONS = Number(process.env.DEMO_ITERATIONS ?? 200);

async function abba(kind: WwClassKind, order: 'overlap' | 'abba'): Promise<void> {
  const [a, b, c] = [DmaBuf.allocUdmabuf(4096), DmaBuf.allocUdmabuf(4096), DmaBuf.allocUdmabuf(4096)];
  const wwClass = new WwClass(kind);
  const task = async (name: string, bufs: DmaBuf[]): Promise<DmabufSync> => {
    const sync = DmabufSync.init({ name, wwClass });
    for (const buf of bufs) sync.get(buf, 'rw');
    for (let i = 0; i < ITERATIONS; i++) {
      await sync.lock();
      for (const buf of bufs) {
        const view = new Uint32Array(sync.map(buf).buffer);
        const v = view[0];
        await new Promise((r) => setImmediate(r)); // hold across a turn of the event loop: invites conflicts
        view[0] = v + 1;
      }
      await sync.unlock();
    }
    return sync;
  };
  const started = Date.now();
  // Overlap: A locks {a, b}, B locks {c, a} (one shared buffer, no cycle). ABBA: A locks {a, b}, B locks {b, a}.
  const [sa, sb] = await Promise.all([task('task-A', [a, b]), task('task-B', order === 'overlap' ? [c, a] : [b, a])]);
  const counts = [a, b, c].map((buf) => {
    const m = buf.map({ writable: false });
    const v = new Uint32Array(m.buffer)[0];
    m.release();
    return v;
  });
  const expected = order === 'overlap' ? [2 * ITERATIONS, ITERATIONS, ITERATIONS] : [2 * ITERATIONS, 2 * ITERATIONS, 0];
  console.log(`1. ${order === 'overlap' ? 'overlapping sets A{a,b} B{c,a}' : 'ABBA A{a,b} B{b,a}'} (${kind}) on udmabufs: ` +
    `${ITERATIONS} iterations per task in ${Date.now() - started} ms`);
  console.log(`   counters a=${counts[0]} b=${counts[1]} c=${counts[2]} (expected ${expected.join(', ')}); ` +
    `backoffs: task-A ${sa.stats.backoffs}, task-B ${sb.stats.backoffs}`);
  if (counts.some((v, i) => v !== expected[i])) throw new Error('lost update');
  for (const s of [sa, sb]) s.fini();
  for (const buf of [a, b, c]) buf.close();
}

async function pipeline(): Promise<void> {
  const dev = VgemDevice.open();
  const src = dev.createBuffer(4096);
  const dst = dev.createBuffer(4096);
  let fenceWaits = 0;
  const frames = 5;
  for (let frame = 1; frame <= frames; frame++) {
    // CPU producer writes the frame.
    const producer = DmabufSync.init({ name: 'cpu-producer' });
    producer.get(src.dmaBuf, 'write');
    await producer.lock();
    producer.map(src.dmaBuf).bytes.fill(frame);
    await producer.unlock();
    producer.fini();

    // Device job: reads src, writes dst. Its fences are real vgem fences; the timer is the "interrupt".
    const job = DmabufSync.init({ name: 'device-job' });
    job.get(src.dmaBuf, 'read', { cpu: false });
    job.get(dst.dmaBuf, 'write', { cpu: false });
    await job.lock();
    const readFence = src.attachFence('read');
    const writeFence = dst.attachFence('write');
    const jobFence = dst.dmaBuf.exportSyncFile('write'); // the job's out-fence, as a sync_file
    await job.unlock({ fence: jobFence });
    jobFence.close();
    job.fini();
    setTimeout(() => {
      // The "GPU" does its work, then signals: copy src*2 into dst through the device's own view.
      const s = src.dmaBuf.map({ writable: false });
      const d = dst.dmaBuf.map();
      for (let i = 0; i < 4096; i++) d.bytes[i] = s.bytes[i] * 2;
      s.release();
      d.release();
      readFence.signal();
      writeFence.signal();
    }, 50);

    // CPU consumer: lock() waits for the device's write fence before it reads.
    const consumer = DmabufSync.init({ name: 'cpu-consumer' });
    consumer.get(dst.dmaBuf, 'read');
    await consumer.lock({ timeoutMs: 5000 });
    const got = consumer.map(dst.dmaBuf).bytes[100];
    await consumer.unlock();
    fenceWaits += consumer.stats.fenceWaits;
    consumer.fini();
    if (got !== frame * 2) throw new Error(`frame ${frame}: read ${got}, expected ${frame * 2}`);
  }
  console.log(`2. CPU→device→CPU pipeline on vgem: ${frames} frames, all correct; consumer waited on the device fence ${fenceWaits} times`);
  src.close();
  dst.close();
  dev.close();
}

async function watchdog(): Promise<void> {
  const buf = DmaBuf.allocUdmabuf(4096);
  let forced = 0;
  const onForced = (): void => void forced++;
  subscribe('dmabuf-sync:forced-unlock', onForced);
  const stuck = DmabufSync.init({ name: 'forgetful', maxHoldMs: 200 });
  stuck.get(buf, 'write');
  await stuck.lock();
  const lateView = stuck.map(buf).bytes;
  const next = DmabufSync.init({ name: 'next' });
  next.get(buf, 'rw');
  const t0 = Date.now();
  await next.lock();
  const waited = Date.now() - t0;
  lateView[0] = 0xee; // the forced-off holder writes late: it must not reach the buffer
  const seen = next.map(buf).bytes[0];
  await next.unlock();
  let code = '';
  try {
    await stuck.unlock();
  } catch (err) {
    code = (err as { code: string }).code;
  }
  console.log(`3. watchdog: a holder kept its lock; after ${waited} ms it was forced off (${forced} forced unlock), ` +
    `the next user went on and saw byte ${seen} (not 0xee); the late holder's unlock() said ${code}`);
  stuck.fini();
  next.fini();
  buf.close();
}

/** Draws frame `n` of the animation: a drifting colour field, a ball bouncing off the edges, a progress bar. */
function drawFrame(px: Uint32Array, width: number, height: number, pitch: number, n: number, frames: number): void {
  const row = pitch / 4;
  const bx = Math.abs(((n * 7) % (2 * (width - 60))) - (width - 60)) + 30;
  const by = Math.abs(((n * 5) % (2 * (height - 60))) - (height - 60)) + 30;
  for (let y = 0; y < height; y++) {
    const g = (y * 255) / height;
    for (let x = 0; x < width; x++) {
      const dx = x - bx;
      const dy = y - by;
      const r = (x * 255) / width;
      px[y * row + x] = dx * dx + dy * dy < 900 ? 0xffffff : ((r + n * 2) & 0xff) << 16 | (g & 0xff) << 8 | ((255 - r) & 0xff);
    }
  }
  const done = Math.round(((n + 1) / frames) * width);
  for (let y = height - 12; y < height; y++) px.fill(0xffd000, y * row, y * row + done);
}

async function display(): Promise<void> {
  const frames = Number(process.env.DEMO_FRAMES ?? 60);
  let kms: KmsDisplay;
  try {
    kms = KmsDisplay.open();
  } catch (err) {
    console.log(`4. display: skipped — ${(err as Error).message}`);
    return;
  }
  const chain = SwapChain.create(kms);
  const started = Date.now();
  let latencyMs = 0;
  const onScreen: Array<Promise<void>> = [];
  try {
    for (let n = 0; n < frames; n++) {
      const frame = await chain.acquire({ timeoutMs: 10_000 });
      drawFrame(frame.pixels(), frame.width, frame.height, frame.pitch, n, frames);
      const t0 = process.hrtime.bigint();
      const out = await chain.present(frame);
      // Not awaited: the next acquire() draws while this flip is pending; the out-fence orders the reuse.
      onScreen.push(out.wait({ timeoutMs: 10_000 }).then(() => {
        latencyMs += Number(process.hrtime.bigint() - t0) / 1e6;
      }).finally(() => out.close()));
      await new Promise((r) => setImmediate(r)); // one event-loop turn a frame: fence callbacks, I/O
    }
    await Promise.all(onScreen);
    const elapsed = Date.now() - started;
    const s = chain.stats;
    console.log(`4. display ${kms.driver} ${kms.width}x${kms.height}@${kms.refreshHz}Hz (${kms.path}): ${s.frames} frames through a ` +
      `double-buffered swap chain in ${elapsed} ms (${((s.frames * 1000) / elapsed).toFixed(1)} frames/s); flips: ${kms.stats.presents}; ` +
      `fence waits: ${s.fenceWaits} (acquire waited for the display to let go of a buffer); present→on screen ${(latencyMs / frames).toFixed(2)} ms on average`);
    if (canSnap()) {
      const shot = await snap('demo-final');
      const file = path.join(process.env.DMABUF_VM_SNAPDIR!, 'demo-screen.png');
      writePng(file, shot);
      console.log(`   the emulated screen after the last frame: ${file} (${shot.width}x${shot.height} PNG)`);
    } else {
      console.log('   (no screendump outside the test VM: run "npm run demo" on a host without a display to get a PNG)');
    }
  } finally {
    chain.close();
    kms.close();
  }
}

/** The overlay step 5 draws into a captured frame: a dark panel with a bar per frame, bits of the frame number. */
const OVERLAY = { x: 16, y: 16, w: 256, h: 48, panel: 0x202020, bar: 0x00ff60 };

function drawOverlay(px: Uint32Array, pitch: number, n: number): void {
  const row = pitch / 4;
  for (let y = OVERLAY.y; y < OVERLAY.y + OVERLAY.h; y++) {
    for (let x = OVERLAY.x; x < OVERLAY.x + OVERLAY.w; x++) {
      const bit = Math.floor((x - OVERLAY.x) / 16); // 16 bits of the frame number, most significant first
      px[y * row + x] = y >= OVERLAY.y + 8 && y < OVERLAY.y + OVERLAY.h - 8 && (n >> (15 - bit)) & 1 ? OVERLAY.bar : OVERLAY.panel;
    }
  }
}

async function camera(): Promise<void> {
  const frames = Number(process.env.DEMO_CAMERA_FRAMES ?? 60);
  const skip = (why: string): void => console.log(`5. camera → display: skipped — ${why}`);
  let kms: KmsDisplay;
  try {
    kms = KmsDisplay.open();
  } catch (err) {
    skip((err as Error).message);
    return;
  }
  let cam: V4l2Device | undefined;
  let queue: DeviceQueue | undefined;
  const screens: ScanoutBuffer[] = [];
  const syncs: DmabufSync[] = [];
  try {
    try {
      cam = V4l2Device.open({ driver: 'vivid', capabilities: V4l2Device.constants.V4L2_CAP_VIDEO_CAPTURE });
    } catch (err) {
      skip(`${(err as Error).message} (modprobe vivid)`);
      return;
    }
    // The camera's frames are the framebuffers: the display's size, or the smallest size the camera offers
    // that covers it (vivid's webcam has 1280x720 and 1920x1080, not cirrus's 1024x768), shown top-left.
    let format = cam.setFormat('capture', { width: kms.width, height: kms.height, pixelformat: 'XR24' }, { exact: false });
    if (format.width < kms.width || format.height < kms.height) {
      format = cam.setFormat('capture', { width: 1920, height: 1080, pixelformat: 'XR24' }, { exact: false });
    }
    if (format.width < kms.width || format.height < kms.height) {
      skip(`the camera captures at most ${format.width}x${format.height}, smaller than the ${kms.width}x${kms.height} screen`);
      return;
    }
    cam.setFrameInterval('capture', 1, 60); // vivid's webcam input defaults to 5 frames/s
    const pitch = format.planes[0]!.bytesperline;
    queue = new DeviceQueue(cam, 'capture');
    const bufs = queue.allocate(3);
    try {
      for (const b of bufs) screens.push(kms.importBuffer(b, { pitch }));
    } catch (err) {
      if (!(err instanceof DmabufError)) throw err;
      skip(`${err.message} (in the test VM: DMABUF_VM_DISPLAY=cirrus)`);
      return;
    }
    for (const b of bufs) {
      const s = DmabufSync.init({ name: 'overlay' });
      s.get(b, 'rw');
      syncs.push(s);
    }
    for (let i = 0; i < bufs.length; i++) await queue.queue(i, { timeoutMs: 5000 });
    queue.streamOn();
    const started = Date.now();
    let shown = -1;
    let lockWaits = 0;
    for (let n = 0; n < frames; n++) {
      const { index, buf } = await queue.dequeue({ timeoutMs: 5000 }); // the camera's lock ends with DQBUF
      const sync = syncs[index]!;
      try {
        await sync.lock({ wait: false });
      } catch (err) {
        if ((err as DmabufError).code !== 'EBUSY') throw err;
        lockWaits++;
        await sync.lock({ timeoutMs: 5000 });
      }
      drawOverlay(new Uint32Array(sync.map(buf).buffer), pitch, n); // in place: the frame is never copied
      await sync.unlock();
      (await kms.present(screens[index]!)).close();
      // The frame shown before this one is off screen once this flip is done: queue() waits for the flip's
      // read fence, so the camera never writes a buffer the display still reads.
      if (shown >= 0) await queue.queue(shown, { timeoutMs: 5000 });
      shown = index;
    }
    const elapsed = Date.now() - started;
    const fenceWaits = syncs.reduce((a, s) => a + s.stats.fenceWaits, 0);
    console.log(`5. camera → display: ${frames} frames from ${cam.capability.driver} ${format.width}x${format.height} through ${kms.driver} ` +
      `in ${elapsed} ms (${((frames * 1000) / elapsed).toFixed(1)} frames/s), an overlay drawn into each frame in place; ` +
      `fence waits: ${fenceWaits}, lock waits: ${lockWaits}, copies: 0`);
    if (canSnap()) {
      const shot = await snap('demo-camera');
      // The overlay's panel corner is ours; the camera's picture is around it.
      if (pixelAt(shot, OVERLAY.x + 1, OVERLAY.y + 1) !== OVERLAY.panel) throw new Error('the overlay is not on screen');
      const file = path.join(process.env.DMABUF_VM_SNAPDIR!, 'demo-camera.png');
      writePng(file, shot);
      console.log(`   the emulated screen after the last frame: ${file} (${shot.width}x${shot.height} PNG; overlay checked on screen)`);
    }
  } finally {
    for (const s of syncs) s.fini();
    await queue?.close();
    for (const s of screens) s.close();
    cam?.close();
    kms.close();
  }
}

async function main(): Promise<void> {
  const steps = (process.env.DEMO_STEPS ?? '1,2,3,4,5').split(',');
  if (steps.includes('1')) {
    await abba('wait-die', 'overlap');
    await abba('wound-wait', 'abba');
  }
  if (steps.includes('2')) await pipeline();
  if (steps.includes('3')) await watchdog();
  if (steps.includes('4')) await display();
  if (steps.includes('5')) await camera();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
