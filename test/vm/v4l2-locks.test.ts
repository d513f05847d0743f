// Devices take our locks: a buffer queued to vivid is locked on the device's behalf until DQBUF.
import * as path from 'node:path';
import { DeviceQueue, DmaBuf, DmabufSync, V4l2Device, VgemDevice, query } from '../../lib';
import { cpuBuffer, needs } from './fixtures/kernel-features';
import { CHILD_MS, childNode } from './fixtures/child-node';
import { openVivid, releaseVivid, tracked } from './fixtures/vivid';
import { stateAfter, until } from './fixtures/until';

// Child processes start slowly under TCG (arm64 most), as in processes.test.ts. Every wait below has its own
// bound (CHILD_MS, FRAME_MS), well inside this one, so a failure fails with a message, not a jest timeout.
jest.setTimeout(process.arch === 'x64' ? 300_000 : 900_000);
/** Bound on a frame's DQBUF (vivid runs at 60 frames/s, slower under TCG). */
const FRAME_MS = 120_000;
/**
 * The device holds' watchdog bound (maxHoldMs; 10 s by default). A buffer stays queued across a child
 * node's start (seconds under TCG, more under load): with the default the watchdog forced the device's hold
 * off before the child looked, and the child locked a buffer the camera still owned.
 */
const HOLD_MS = 600_000;

// vivid starts the stream only with 2 buffers queued on Linux 5.10 (vb2 min_buffers_needed = 2; 6.12 starts
// with one): the capture tests queue two, and the first dequeued is the first queued (index 0).

/** A DeviceQueue on vivid's capture queue with the generous watchdog bound; closed after the test. */
function captureQueue(cam: V4l2Device, options?: { memory?: 'mmap' | 'dmabuf' }): DeviceQueue {
  return tracked(new DeviceQueue(cam, 'capture', { maxHoldMs: HOLD_MS, ...options }));
}

// Whatever a test did or left, vivid is free for the next (a busy queue makes S_FMT EBUSY for every opener).
afterEach(releaseVivid);

const LIB = JSON.stringify(path.join(__dirname, '..', '..', 'lib'));
/** A hash of a 640x480 XR24 frame; the child runs the same code (its source). */
function hash(m: { buffer: ArrayBuffer }): number {
  const px = new Uint32Array(m.buffer, 0, 640 * 480);
  let h = 0;
  for (const v of px) h = (Math.imul(h, 31) + v) | 0;
  return h;
}
const HASH = hash.toString();

function lockStateOf(inode: bigint): { holders: string[]; waiters: number } {
  const l = query().locks.find((x) => x.key === inode);
  return { holders: l ? l.holders.map((h) => h.mode) : [], waiters: l ? l.waiters.length : 0 };
}

/** The lock modes held on `buf` and how many wait for it, machine-wide. */
function lockState(buf: DmaBuf): { holders: string[]; waiters: number } {
  return lockStateOf(buf.inode);
}

/** Frame hash of `buf` read under a CPU read lock. */
async function readHash(buf: DmaBuf): Promise<number> {
  const s = await DmabufSync.single(buf, 'read');
  const m = buf.map({ writable: false });
  try {
    return hash(m);
  } finally {
    m.release();
    await s.unlock();
    s.fini();
  }
}

/** vivid's capture node at 640x480 XR24, 60 frames/s; released after the test. */
function openCamera(): V4l2Device {
  return openVivid((cam) => {
    cam.setInput(0);
    cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'XR24' });
    cam.setFrameInterval('capture', 1, 60);
  });
}

/** Another process's DmabufSync.single(buf, 'read', {wait: false}) on fd 3: 'locked' or its error code. */
function probeRead(fd: number): Promise<string> {
  return childNode(
    'const { DmaBuf, DmabufSync } = require(' + LIB + ');' +
      '(async () => { const b = DmaBuf.fromFd(3);' +
      "  try { const s = await DmabufSync.single(b, 'read', { wait: false }); await s.unlock(); s.fini(); process.stdout.write('locked'); }" +
      '  catch (e) { process.stdout.write(String(e.code)); } b.close(); })();',
    fd,
  );
}

test('a buffer queued to the camera is write-locked for the device until DQBUF: another process cannot read-lock it', async () => {
  using cam = openCamera();
  const q = captureQueue(cam);
  try {
    const [b0] = q.allocate(2);
    await q.queue(0);
    expect(q.queued).toEqual([0]);
    expect(await probeRead(b0!.fd)).toBe('EBUSY');
    await q.queue(1);
    q.streamOn();
    const d = await q.dequeue({ timeoutMs: FRAME_MS });
    expect(d.index).toBe(0);
    expect(q.queued).toEqual([1]);
    expect(await probeRead(b0!.fd)).toBe('locked');
  } finally {
    await q.close();
  }
});

/** Another process waits for DmabufSync.single(buf, 'read') on fd 3, then prints its frame hash. */
function waitingReader(fd: number): Promise<string> {
  return childNode(
    `const { DmaBuf, DmabufSync } = require(${LIB}); ${HASH}` +
      '(async () => { const b = DmaBuf.fromFd(3);' +
      "  const s = await DmabufSync.single(b, 'read'); const m = b.map({ writable: false });" +
      '  process.stdout.write(String(hash(m))); m.release(); await s.unlock(); s.fini(); b.close(); })();',
    fd,
  );
}

test("another process's read lock waits until DQBUF, then sees vivid's whole frame", async () => {
  using cam = openCamera();
  const q = captureQueue(cam);
  try {
    const [b0] = q.allocate(2);
    await q.queue(0);
    expect(lockState(b0!)).toEqual({ holders: ['write'], waiters: 0 });
    const reader = waitingReader(b0!.fd);
    let outcome: string | undefined; // set if the reader ends (reads, fails to start, dies) before DQBUF
    reader.then((h) => (outcome = `read ${h} before DQBUF`), (err: Error) => (outcome = err.message));
    // The reader waits on the device's hold.
    await until(() => outcome !== undefined || lockState(b0!).waiters === 1, 'the other process to wait for the device hold', CHILD_MS);
    expect(outcome).toBeUndefined();
    await q.queue(1);
    q.streamOn();
    const d = await q.dequeue({ timeoutMs: FRAME_MS });
    expect(d.index).toBe(0);
    expect(d.info.planes[0]!.bytesused).toBe(640 * 480 * 4);
    const got = await reader;
    expect(got).toBe(String(await readHash(b0!))); // the frame as dequeued, nothing written after
    expect(lockState(b0!)).toEqual({ holders: [], waiters: 0 });
  } finally {
    await q.close();
  }
});

test('STREAMOFF mid-stream releases every device hold; so does close() with the device already closed', async () => {
  const cam = openCamera();
  const q = captureQueue(cam);
  try {
    const bufs = [...q.allocate(3)];
    const inodes = bufs.map((b) => b.inode);
    for (let i = 0; i < bufs.length; i++) await q.queue(i);
    q.streamOn();
    await q.dequeue({ timeoutMs: FRAME_MS });
    expect(q.queued.length).toBe(2);
    for (const i of q.queued) expect(lockState(bufs[i]!).holders).toEqual(['write']);
    await q.streamOff();
    expect(q.queued).toEqual([]);
    for (const b of bufs) expect(lockState(b)).toEqual({ holders: [], waiters: 0 });
    expect(await probeRead(bufs[0]!.fd)).toBe('locked');
    // Again, then the device closed under the queue mid-stream: the queue's close() still releases.
    for (let i = 0; i < bufs.length; i++) await q.queue(i);
    q.streamOn();
    for (const inode of inodes) expect(lockStateOf(inode).holders).toEqual(['write']);
    cam.close();
    await q.close();
    expect(q.queued).toEqual([]);
    expect(q.buffers).toEqual([]);
    for (const inode of inodes) expect(lockStateOf(inode)).toEqual({ holders: [], waiters: 0 });
  } finally {
    await q.close();
    cam.close();
  }
});

test('a buffer locked for CPU write is not queued until unlocked', async () => {
  using cam = openCamera();
  const q = captureQueue(cam);
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
  const other = vgem.createBuffer(size);
  const q = captureQueue(cam, { memory: 'dmabuf' });
  try {
    q.attach([bo.dmaBuf, other.dmaBuf]);
    const fence = bo.attachFence('write');
    const queued = q.queue(0);
    expect(await stateAfter(queued, 300)).toBe('pending');
    expect(q.queued).toEqual([]);
    fence.signal();
    await queued;
    await q.queue(1);
    q.streamOn();
    const d = await q.dequeue({ timeoutMs: FRAME_MS });
    expect(d.index).toBe(0);
    expect(d.info.planes[0]!.bytesused).toBe(sizeimage);
  } finally {
    await q.close();
    bo.close();
    other.close();
  }
});

describe('DeviceQueue bad input: typed errors, nothing left locked', () => {
  test('a buffer too small for the format: QBUF refuses it (EINVAL) and the device hold is released', async () => {
    using cam = openCamera();
    using small = cpuBuffer(4096);
    const q = captureQueue(cam, { memory: 'dmabuf' });
    try {
      q.attach([small]);
      await expect(q.queue(0)).rejects.toMatchObject({ code: 'EINVAL' });
      expect(q.queued).toEqual([]);
      expect(lockState(small)).toEqual({ holders: [], waiters: 0 });
    } finally {
      await q.close();
    }
  });

  test('queueing a queued buffer is EBUSY and keeps the one hold; an unknown index is EINVAL', async () => {
    using cam = openCamera();
    const q = captureQueue(cam);
    try {
      const [b0, b1] = q.allocate(2);
      await q.queue(0);
      await expect(q.queue(0)).rejects.toMatchObject({ code: 'EBUSY', message: expect.stringMatching(/already queued/) });
      expect(lockState(b0!)).toEqual({ holders: ['write'], waiters: 0 });
      await expect(q.queue(7)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/no buffer 7/) });
      expect(lockState(b1!)).toEqual({ holders: [], waiters: 0 });
    } finally {
      await q.close();
    }
  });

  test('more buffers than V4L2 takes (VIDEO_MAX_FRAME) is a RangeError and keeps nothing: no dup, no device buffer', () => {
    using cam = openCamera();
    using one = cpuBuffer(4096);
    const q = captureQueue(cam, { memory: 'dmabuf' });
    expect(() => q.attach(Array.from({ length: 33 }, () => one))).toThrow(
      expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringMatching(/"count".*<= 32\. Received 33/) }),
    );
    expect(() => q.attach([one, one])).not.toThrow(); // nothing was kept: the queue takes buffers
    expect(q.buffers.length).toBe(2);
    const mm = captureQueue(cam);
    expect(() => mm.allocate(33)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
    expect(mm.buffers).toEqual([]);
  });

  test('allocating or attaching again without close() is EBUSY and keeps the buffers', async () => {
    using cam = openCamera();
    const q = captureQueue(cam);
    try {
      const bufs = [...q.allocate(2)];
      expect(() => q.allocate(2)).toThrow(expect.objectContaining({ code: 'EBUSY', message: expect.stringMatching(/close\(\) it first/) }));
      expect(q.buffers).toEqual(bufs);
      await q.queue(0);
      expect(q.queued).toEqual([0]);
    } finally {
      await q.close();
    }
    expect(q.buffers).toEqual([]);
  });

  test('the wrong call for the memory type is EINVAL; a bad queue or buffer list is a TypeError', () => {
    using cam = openCamera();
    expect(() => new DeviceQueue(cam, 'sideways' as never)).toThrow(TypeError);
    const mm = captureQueue(cam);
    expect(() => mm.attach([])).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    const db = captureQueue(cam, { memory: 'dmabuf' });
    expect(() => db.allocate(2)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => db.attach([])).toThrow(TypeError);
  });
});
