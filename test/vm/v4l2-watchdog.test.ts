// The watchdog on a stuck device: a camera that never returns a buffer (vivid's "Percentage of Dropped
// Buffers" at 100: every queued buffer is kept, none is ever filled or dequeued) holds it past maxHoldMs. The
// watchdog forces the device's hold off, so the waiters proceed; the DeviceQueue then stops the stream
// (STREAMOFF: the device gives every buffer back and no longer writes them), releases its other holds, and
// its pending dequeue / captureFrames() rejects with ETIMEDOUT saying what happened, until streamOn() again.
import * as path from 'node:path';
import { DeviceQueue, DmaBuf, DmabufSync, V4l2Device, captureFrames, query } from '../../lib';
import { CHILD_MS, childNode } from './fixtures/child-node';
import { openVivid, releaseVivid, tracked } from './fixtures/vivid';
import { until } from './fixtures/until';

// Child processes start slowly under TCG (arm64 most); every wait below has its own bound.
jest.setTimeout(process.arch === 'x64' ? 300_000 : 900_000);
/** Bound on a frame's DQBUF once the camera delivers again. */
const FRAME_MS = 120_000;
/** The stuck device's watchdog bound: short, the device never returns a buffer anyway. */
const STUCK_MS = 3_000;
/** vivid's control: the share of queued buffers the driver keeps and never returns (device-wide). */
const DROPPED = 'Percentage of Dropped Buffers';
const LIB = JSON.stringify(path.join(__dirname, '..', '..', 'lib'));
const STUCK_MESSAGE = /held buffer #\d+ longer than maxHoldMs \(3000 ms\).*the queue was stopped \(STREAMOFF\).*streamOn\(\) again/;

/** vivid's capture node at 640x480 XR24, 60 frames/s, keeping every buffer queued to it (stuck). */
function openStuckCamera(): V4l2Device {
  return openVivid((cam) => {
    cam.setInput(0);
    cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'XR24' });
    cam.setFrameInterval('capture', 1, 60);
    cam.setControl(DROPPED, 100);
  });
}

// The control is device-wide and outlives the file: every test (and file) after this one wants a camera that
// delivers. Then the usual release (STREAMOFF, REQBUFS 0, close of whatever a test left).
afterEach(async () => {
  const cam = V4l2Device.open({ driver: 'vivid', capabilities: V4l2Device.constants.V4L2_CAP_VIDEO_CAPTURE });
  try {
    cam.setControl(DROPPED, 0);
  } finally {
    cam.close();
  }
  await releaseVivid();
});

function lockState(buf: DmaBuf): { holders: string[]; waiters: number } {
  const l = query().locks.find((x) => x.key === buf.inode);
  return { holders: l ? l.holders.map((h) => `${h.mode} ${h.ctxName}`) : [], waiters: l ? l.waiters.length : 0 };
}

/** The camera's own view: DQBUF on a stopped queue is EINVAL (POLLERR), on a streaming stuck one a timeout. */
async function rawDequeueCode(cam: V4l2Device): Promise<string> {
  try {
    await cam.dequeue('capture', 'mmap', { timeoutMs: 200 });
    return 'dequeued';
  } catch (err) {
    return String((err as { code?: string }).code);
  }
}

/**
 * Another process waits for DmabufSync.single(buf, 'write') on fd 3 (the camera's buffer), then prints
 * 'locked'. Resolves to its stdout once it exited 0; rejects if it cannot start, fails, or outlives CHILD_MS.
 */
function waitingWriter(fd: number): Promise<string> {
  const code =
    `const { DmaBuf, DmabufSync } = require(${LIB});` +
    '(async () => { const b = DmaBuf.fromFd(3);' +
    "  const s = await DmabufSync.single(b, 'write', { timeoutMs: 600000 }); process.stdout.write('locked');" +
    '  await s.unlock(); s.fini(); b.close(); })();';
  return childNode(code, fd);
}

test('a stuck camera: the watchdog forces its hold off, the waiter gets the lock, the queue is streamed off and its pending dequeue rejects with ETIMEDOUT', async () => {
  using cam = openStuckCamera();
  const q = tracked(new DeviceQueue(cam, 'capture', { maxHoldMs: STUCK_MS }));
  const bufs = [...q.allocate(2)];
  await q.queue(0);
  await q.queue(1);
  q.streamOn();
  expect(q.stuck).toBe(false);
  const pending = q.dequeue({ timeoutMs: 600_000 });
  pending.catch(() => undefined); // awaited below
  // A CPU reader of this process waits for the camera's buffer; the watchdog lets it in at the deadline.
  const reader = await DmabufSync.single(bufs[0]!, 'read', { timeoutMs: 600_000 });
  await expect(pending).rejects.toMatchObject({ code: 'ETIMEDOUT', message: expect.stringMatching(STUCK_MESSAGE) });
  expect(reader.locked).toBe(true);
  expect(lockState(bufs[0]!).holders).toEqual([`read ${reader.name}`]); // the device's write hold is gone
  await reader.unlock();
  reader.fini();
  // Every hold released (#1 too, whose own deadline may not have come), the queue stopped for good.
  expect(q.stuck).toBe(true);
  expect(q.queued).toEqual([]);
  await new Promise((r) => setImmediate(r)); // the holds are released in a microtask after STREAMOFF
  for (const b of bufs) expect(lockState(b)).toEqual({ holders: [], waiters: 0 });
  expect(await rawDequeueCode(cam)).toBe('EINVAL'); // not streaming (STREAMOFF), not a timeout
  await expect(q.dequeue({ timeoutMs: 1000 })).rejects.toMatchObject({ code: 'ETIMEDOUT', message: expect.stringMatching(STUCK_MESSAGE) });

  // The source comes back: the buffers were given back by STREAMOFF (QBUF takes them again), STREAMON works,
  // and frames flow with the device holding each buffer again until DQBUF.
  cam.setControl(DROPPED, 0);
  await q.queue(0);
  await q.queue(1);
  expect(lockState(bufs[1]!).holders).toEqual([`write v4l2 ${cam.path} capture #1`]);
  q.streamOn();
  expect(q.stuck).toBe(false);
  const d = await q.dequeue({ timeoutMs: FRAME_MS });
  expect(d.index).toBe(0);
  expect(d.info.planes[0]!.bytesused).toBe(640 * 480 * 4);
  await q.close();
  for (const b of bufs) expect(b.closed).toBe(true);
});

test("captureFrames() on a stuck camera rejects with ETIMEDOUT, another process's waiting writer gets the buffer, nothing stays locked", async () => {
  using cam = openStuckCamera();
  const q = tracked(new DeviceQueue(cam, 'capture', { maxHoldMs: STUCK_MS }));
  const bufs = [...q.allocate(2)];
  const inodes = bufs.map((b) => b.inode);
  const frames = captureFrames(q, { timeoutMs: 600_000 });
  const first = frames.next(); // queues both (write-locked for the camera), STREAMON, waits for a frame
  first.catch(() => undefined); // awaited below
  await until(() => q.queued.length === 2 || q.stuck, 'both buffers queued to the camera', CHILD_MS);
  const writer = waitingWriter(bufs[1]!.fd);
  await expect(first).rejects.toMatchObject({ code: 'ETIMEDOUT', message: expect.stringMatching(STUCK_MESSAGE) });
  expect(await writer).toBe('locked'); // the other process proceeded: the camera's hold was forced and released
  expect(q.queued).toEqual([]);
  await expect(frames.next()).resolves.toEqual({ done: true, value: undefined }); // the iterator ended
  expect(await rawDequeueCode(cam)).toBe('EINVAL'); // the stream is off
  for (const inode of inodes) {
    const l = query().locks.find((x) => x.key === inode);
    expect(l ? { holders: l.holders.length, waiters: l.waiters.length } : { holders: 0, waiters: 0 }).toEqual({ holders: 0, waiters: 0 });
  }

  // STREAMON again through a new iterator once the camera delivers: a frame, locked for CPU read.
  cam.setControl(DROPPED, 0);
  for await (const frame of captureFrames(q, { timeoutMs: FRAME_MS })) {
    expect(frame.info.planes[0]!.bytesused).toBe(640 * 480 * 4);
    expect(frame.sync.locked).toBe(true);
    break;
  }
  expect(q.queued).toEqual([]);
  await q.close();
});
