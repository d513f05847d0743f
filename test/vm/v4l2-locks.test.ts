// Devices take our locks: a buffer queued to vivid is locked on the device's behalf until DQBUF.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { DmabufSync, V4l2Device, VgemDevice } from '../../lib';
import { DeviceQueue } from '../../lib/sync/device-hold';
import { needs } from './fixtures/kernel-features';

const C = V4l2Device.constants;

function openCamera(): V4l2Device {
  const cam = V4l2Device.open({ driver: 'vivid', capabilities: C.V4L2_CAP_VIDEO_CAPTURE | C.V4L2_CAP_STREAMING });
  cam.setInput(0);
  cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'XR24' });
  cam.setFrameInterval('capture', 1, 60);
  return cam;
}

/** Resolves to 'resolved' or 'pending' after letting the event loop run for `ms`. */
async function stateAfter(p: Promise<unknown>, ms: number): Promise<'resolved' | 'pending'> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setTimeout(r, ms));
  return done ? 'resolved' : 'pending';
}

/** Another process's DmabufSync.single(buf, 'read', {wait: false}) on fd 3: 'locked' or its error code. */
function probeRead(fd: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const code =
      'const { DmaBuf, DmabufSync } = require(' + JSON.stringify(path.join(__dirname, '..', '..', 'lib')) + ');' +
      '(async () => { const b = DmaBuf.fromFd(3);' +
      "  try { const s = await DmabufSync.single(b, 'read', { wait: false }); await s.unlock(); s.fini(); process.stdout.write('locked'); }" +
      '  catch (e) { process.stdout.write(String(e.code)); } b.close(); })();';
    const proc = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit', fd], env: process.env });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('error', reject);
    proc.once('close', () => resolve(out));
  });
}

test('a buffer queued to the camera is write-locked for the device until DQBUF: another process cannot read-lock it', async () => {
  using cam = openCamera();
  const q = new DeviceQueue(cam, 'capture');
  try {
    const [b0] = q.allocate(2);
    await q.queue(0);
    expect(q.queued).toEqual([0]);
    expect(await probeRead(b0!.fd)).toBe('EBUSY');
    q.streamOn();
    const d = await q.dequeue({ timeoutMs: 30_000 });
    expect(d.index).toBe(0);
    expect(q.queued).toEqual([]);
    expect(await probeRead(b0!.fd)).toBe('locked');
  } finally {
    await q.close();
  }
});

test('a buffer locked for CPU write is not queued until unlocked', async () => {
  using cam = openCamera();
  const q = new DeviceQueue(cam, 'capture');
  try {
    const [b0] = q.allocate(1);
    const cpu = await DmabufSync.single(b0!, 'write', { maxHoldMs: 120_000 });
    const queued = q.queue(0);
    expect(await stateAfter(queued, 300)).toBe('pending');
    expect(q.queued).toEqual([]);
    await cpu.unlock();
    cpu.fini();
    await queued;
    expect(q.queued).toEqual([0]);
  } finally {
    await q.close();
  }
});

needs('vgem')('a vgem buffer with an unsignalled write fence is not queued (DMABUF import) until the fence signals', async () => {
  using cam = openCamera();
  const sizeimage = cam.format('capture').planes[0]!.sizeimage;
  const size = Math.ceil(sizeimage / 4096) * 4096;
  using vgem = VgemDevice.open();
  const bo = vgem.createBuffer(size);
  const q = new DeviceQueue(cam, 'capture', { memory: 'dmabuf' });
  try {
    q.attach([bo.dmaBuf]);
    const fence = bo.attachFence('write');
    const queued = q.queue(0);
    expect(await stateAfter(queued, 300)).toBe('pending');
    fence.signal();
    await queued;
    q.streamOn();
    const d = await q.dequeue({ timeoutMs: 30_000 });
    expect(d.info.planes[0]!.bytesused).toBe(sizeimage);
  } finally {
    await q.close();
    bo.close();
  }
});
