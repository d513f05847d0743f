// V4L2 across processes and memory types, on real vivid: the capturing process SIGKILLed mid-stream (its
// device holds released, the next writer told ownerDied, vivid free again), and vivid capturing into
// imported dma-bufs (udmabuf, vgem) while another lock on them waits until DQBUF.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeviceQueue, DmaBuf, DmabufSync, V4l2Device, VgemDevice, query, receiveDmaBufs } from '../../lib';
import { needs } from './fixtures/kernel-features';
import { openVivid, releaseVivid, tracked } from './fixtures/vivid';
import { until } from './fixtures/until';

// Child processes start slowly under TCG (arm64 most). Every wait below has its own bound (CHILD_MS,
// FRAME_MS), well inside this one, so a failure fails with a message, not a jest timeout.
jest.setTimeout(process.arch === 'x64' ? 300_000 : 900_000);
/** Bound on a child node's start (open vivid, stream, send) and on waiting for a lock. */
const CHILD_MS = process.arch === 'x64' ? 60_000 : 240_000;
/** Bound on a frame's DQBUF (vivid runs at 60 frames/s, slower under TCG). */
const FRAME_MS = 120_000;
/** The device holds' watchdog bound: buffers stay queued across slow steps (see v4l2-locks.test.ts). */
const HOLD_MS = 600_000;
const CAPTURER = path.join(__dirname, 'fixtures', 'vivid-capturer.js');

afterEach(releaseVivid);

/** vivid's capture node at 640x480 XR24, 60 frames/s; released after the test. */
function openCamera(): V4l2Device {
  return openVivid((cam) => {
    cam.setInput(0);
    cam.setFormat('capture', { width: 640, height: 480, pixelformat: 'XR24' });
    cam.setFrameInterval('capture', 1, 60);
  });
}

/** Who holds `buf` (mode and pid of each holder) and how many wait for it, machine-wide. */
function lockState(buf: DmaBuf): { holders: Array<{ mode: string; pid: number }>; waiters: number } {
  const l = query().locks.find((x) => x.key === buf.inode);
  return { holders: l ? l.holders.map((h) => ({ mode: h.mode, pid: h.pid })) : [], waiters: l ? l.waiters.length : 0 };
}

/** Marks when `p` settles (without handling its outcome for the caller). */
function watch(p: Promise<unknown>): { settled: boolean } {
  const w = { settled: false };
  p.then(
    () => (w.settled = true),
    () => (w.settled = true),
  );
  return w;
}

test('SIGKILL of the capturing process mid-stream: its device holds are released, the next writer proceeds and is told ownerDied, vivid is free again', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmabuf-sync-v4l2-'));
  const listener = net.createServer({ pauseOnConnect: true });
  const where = path.join(dir, 'capturer.sock');
  await new Promise<void>((resolve) => listener.listen(where, resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const child = spawn(process.execPath, [CAPTURER, where], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
  // 'close': exited and its pipes drained and closed (no fd outlives the test).
  const closed = new Promise<string>((resolve) => child.once('close', (status, signal) => resolve(String(signal ?? status))));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  let conn: net.Socket | undefined;
  let bufs: DmaBuf[] = [];
  const next = DmabufSync.init({ name: 'next writer', maxHoldMs: HOLD_MS });
  try {
    // The child streams with its 3 buffers queued and sends them: it answers, dies, or outlives CHILD_MS.
    let exited: string | undefined;
    void closed.then((how) => (exited = how));
    await until(() => exited !== undefined || out.includes('\n'), 'the capturing child to stream and send its buffers', CHILD_MS);
    if (exited !== undefined) throw new Error(`the capturing child exited with ${exited} before streaming; it printed ${JSON.stringify(out)}`);
    expect(JSON.parse(out)).toEqual({ queued: [0, 1, 2] });
    conn = await accepted;
    bufs = await receiveDmaBufs(conn, { timeoutMs: CHILD_MS });
    expect(bufs.length).toBe(3);
    for (const b of bufs) expect(lockState(b)).toEqual({ holders: [{ mode: 'write', pid: child.pid }], waiters: 0 });

    // This process's writer waits for the child's device holds.
    for (const b of bufs) next.get(b, 'write');
    const locking = next.lock({ timeoutMs: CHILD_MS });
    const w = watch(locking);
    await until(() => w.settled || bufs.some((b) => lockState(b).waiters === 1), 'this process to wait for the device holds of the child', CHILD_MS);
    expect(w.settled).toBe(false);

    child.kill('SIGKILL');
    expect(await closed).toBe('SIGKILL');
    await locking; // bounded by CHILD_MS: ETIMEDOUT if the dead child's holds were kept
    expect(next.ownerDied.map((b) => b.inode).sort()).toEqual(bufs.map((b) => b.inode).sort());
    for (const b of bufs) expect(lockState(b)).toEqual({ holders: [{ mode: 'write', pid: process.pid }], waiters: 0 });
    await next.unlock();
    for (const b of bufs) expect(lockState(b)).toEqual({ holders: [], waiters: 0 });

    // The child's death closed its vivid file: the queue is free for another opener (S_FMT, REQBUFS).
    using cam = openCamera();
    const q = tracked(new DeviceQueue(cam, 'capture', { maxHoldMs: HOLD_MS }));
    expect(q.allocate(2).length).toBe(2);
    await q.close();
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await closed;
    if (next.locked) await next.unlock().catch(() => undefined);
    next.fini();
    bufs.forEach((b) => b.close());
    if (conn) {
      const gone = new Promise((r) => conn!.once('close', r));
      conn.destroy();
      await gone;
    }
    await new Promise<void>((resolve) => listener.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Row `y` of a 640-wide XR24 frame in `buf` (a copy), read under a CPU read lock held by `sync`. */
function row(sync: DmabufSync, buf: DmaBuf, y: number): number[] {
  const m = sync.map(buf);
  try {
    return [...new Uint32Array(m.buffer, y * 640 * 4, 640)];
  } finally {
    m.release();
  }
}

needs('udmabuf', 'vgem')('DMABUF import on capture: vivid writes its frame into a udmabuf and a vgem buffer; a read lock on them waits until DQBUF', async () => {
  using cam = openCamera();
  const sizeimage = cam.format('capture').planes[0]!.sizeimage;
  const size = Math.ceil(sizeimage / 4096) * 4096;
  using udma = DmaBuf.allocUdmabuf(size);
  using vgem = VgemDevice.open();
  const bo = vgem.createBuffer(size);
  const q = tracked(new DeviceQueue(cam, 'capture', { memory: 'dmabuf', maxHoldMs: HOLD_MS }));
  const readers: DmabufSync[] = [];
  try {
    q.attach([udma, bo.dmaBuf]);
    await q.queue(0);
    await q.queue(1);
    const imported = [udma, bo.dmaBuf];
    for (const b of imported) expect(lockState(b)).toEqual({ holders: [{ mode: 'write', pid: process.pid }], waiters: 0 });
    // A read lock of each (its own acquire context) waits for the device's hold.
    const reading = imported.map((b) => DmabufSync.single(b, 'read', { timeoutMs: FRAME_MS, name: 'reader' }));
    const ws = reading.map(watch);
    await until(() => ws.some((w) => w.settled) || imported.every((b) => lockState(b).waiters === 1), 'the read locks to wait for the device holds', CHILD_MS);
    expect(ws.map((w) => w.settled)).toEqual([false, false]);
    q.streamOn();
    for (const [i, b] of imported.entries()) {
      const d = await q.dequeue({ timeoutMs: FRAME_MS });
      expect(d.index).toBe(i);
      expect(d.buf.inode).toBe(b.inode);
      expect(d.info.planes[0]!.bytesused).toBe(sizeimage);
      readers.push(await reading[i]!);
    }
    // What vivid wrote is in the imported buffers: its colour bars, the same in both frames below the text
    // it draws at the top.
    const bottom = imported.map((b, i) => row(readers[i]!, b, 400));
    expect(new Set(bottom[0]).size).toBeGreaterThan(1);
    expect(bottom[1]).toEqual(bottom[0]);
  } finally {
    for (const r of readers) {
      await r.unlock().catch(() => undefined);
      r.fini();
    }
    await q.close();
    bo.close();
  }
  expect(lockState(udma)).toEqual({ holders: [], waiters: 0 });
});
