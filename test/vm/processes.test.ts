// Locks across processes: child processes share dma-bufs (inherited fds) and lock them with DmabufSync's
// defaults; the lock store (a file of this user on tmpfs) makes them exclude each other.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { DmaBuf, DmabufSync, query } from '../../lib';
import { cpuBuffer } from './fixtures/kernel-features';

// Emulated arm runs several times slower than emulated x64 (12 threads on 2 vCPUs in the worker cases).
jest.setTimeout(process.arch === 'x64' ? 300_000 : 900_000);

const PAGE = 4096;
const LOCKER = path.join(__dirname, 'fixtures', 'proc-locker.js');

interface Result {
  counts: number[];
  backoffs: number;
}

/** Runs proc-locker in a child process with `bufs` as fds 3, 4, ... */
function child(bufs: DmaBuf[], job: Record<string, unknown>): Promise<Result> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [LOCKER, JSON.stringify({ nbufs: bufs.length, ...job })], {
      stdio: ['ignore', 'pipe', 'inherit', ...bufs.map((b) => b.fd)],
      env: process.env,
    });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('error', reject);
    // 'close': the child exited and its pipes are drained and closed (no fd outlives the test).
    proc.once('close', (code, signal) => {
      if (code !== 0) reject(new Error(`child exited with ${code ?? signal}`));
      else resolve(JSON.parse(out) as Result);
    });
  });
}

function counter(buf: DmaBuf): number {
  const m = buf.map({ writable: false });
  const v = new Uint32Array(m.buffer)[0] as number;
  m.release();
  return v;
}

test("a new user's four processes on three udmabufs with DmabufSync defaults: no lost update", async () => {
  const bufs = [cpuBuffer(PAGE), cpuBuffer(PAGE), cpuBuffer(PAGE)];
  try {
    // Each process: 2 async tasks x 16 locks of all three buffers -> every counter must read 4 x 32 = 128,
    // plus the 2 increments of this process below.
    const kids = Array.from({ length: 4 }, (_, i) => child(bufs, { iterations: 16, seed: i + 1, tasks: 2, all: true }));
    const sync = DmabufSync.init({ name: 'parent' });
    for (const b of bufs) sync.get(b, 'rw');
    for (let i = 0; i < 2; i++) {
      await sync.lock();
      for (const b of bufs) {
        const v = new Uint32Array(sync.map(b).buffer);
        const old = v[0] as number;
        await new Promise((r) => setTimeout(r, 5));
        v[0] = old + 1;
      }
      await sync.unlock();
    }
    sync.fini();
    const results = await Promise.all(kids);
    for (const r of results) expect(r.counts).toEqual([32, 32, 32]);
    expect(bufs.map(counter)).toEqual([130, 130, 130]);
    expect(query().locks.filter((l) => bufs.some((b) => b.inode === l.key))).toEqual([]);
  } finally {
    bufs.forEach((b) => b.close());
  }
});

describe.each(['wound-wait', 'wait-die'] as const)('%s', (kind) => {
  test.each([0, 2])('4 processes (x %d worker_threads each) x 6 buffers, random subsets and orders: exact counters', async (workers) => {
    const bufs = Array.from({ length: 6 }, () => cpuBuffer(PAGE));
    try {
      const results = await Promise.all(
        Array.from({ length: 4 }, (_, i) => child(bufs, { iterations: workers > 0 ? 10 : 20, seed: 100 + i, tasks: 2, kind, workers })),
      );
      const expected = bufs.map((_, j) => results.reduce((sum, r) => sum + (r.counts[j] as number), 0));
      expect(expected.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(bufs.map(counter)).toEqual(expected);
      expect(query().locks.filter((l) => bufs.some((b) => b.inode === l.key))).toEqual([]);
    } finally {
      bufs.forEach((b) => b.close());
    }
  });
});

test('a lock held in this process blocks a WwMutex of the same key in another process', async () => {
  const buf = cpuBuffer(PAGE);
  try {
    // A generous watchdog bound: starting a Node child in an emulated VM under load can take seconds.
    const sync = DmabufSync.init({ name: 'holder', maxHoldMs: 120_000 });
    sync.get(buf, 'write');
    await sync.lock();
    // The child tries the same buffer with a try-lock and reports whether it got it.
    const probe = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const code =
          'const { DmaBuf, WwMutex, WwClass } = require(' + JSON.stringify(path.join(__dirname, '..', '..', 'lib')) + ');' +
          "const b = DmaBuf.fromFd(3); const m = new WwMutex(new WwClass('wound-wait', 'dmabuf-sync'), b.inode);" +
          "const got = m.tryLock('write'); if (got) m.unlock(); m.dispose(); b.close(); process.stdout.write(String(got));";
        const proc = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit', buf.fd], env: process.env });
        let out = '';
        proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        proc.once('error', reject);
        proc.once('close', () => resolve(out));
      });
    expect(await probe()).toBe('false');
    const holders = query().locks.find((l) => l.key === buf.inode)?.holders;
    expect(holders).toEqual([expect.objectContaining({ ctxName: 'holder', mode: 'write', pid: process.pid, threadId: 0 })]);
    await sync.unlock();
    sync.fini();
    expect(await probe()).toBe('true');
  } finally {
    buf.close();
  }
});

test('single-buffer lock: try mode is EBUSY while another process holds the buffer; waitUnlocked learns of the release', async () => {
  const buf = cpuBuffer(PAGE);
  try {
    const held = await DmabufSync.single(buf, 'write', { name: 'holder', maxHoldMs: 120_000 });
    const code =
      'const { DmaBuf, DmabufSync } = require(' + JSON.stringify(path.join(__dirname, '..', '..', 'lib')) + ');' +
      '(async () => { const b = DmaBuf.fromFd(3);' +
      "  try { await DmabufSync.single(b, 'read', { wait: false }); console.log('got it'); } catch (e) { console.log(e.code); }" +
      "  await DmabufSync.waitUnlocked(b, 'read', { timeoutMs: 60000 }); console.log('unlocked');" +
      "  const s = await DmabufSync.single(b, 'write', { wait: false }); console.log('locked'); await s.unlock(); s.fini(); b.close();" +
      '})().catch((e) => { console.log(String(e)); process.exit(1); });';
    const proc = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit', buf.fd], env: process.env });
    const closed = new Promise((r) => proc.once('close', r));
    let out = '';
    let onOutput = (): void => {};
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      onOutput();
    });
    /** Resolves with the child's lines once it printed `n` of them. */
    const lines = (n: number): Promise<string[]> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const l = out.trim().split('\n').filter(Boolean);
          if (l.length >= n) resolve(l);
        };
        onOutput = check;
        proc.once('exit', (c) => (c === 0 ? check() : reject(new Error(`child exited with ${c}: ${out}`))));
        check();
      });
    expect(await lines(1)).toEqual(['EBUSY']);
    // The child now watches; it must not get the buffer while we hold it.
    await new Promise((r) => setTimeout(r, 300));
    expect(out.trim()).toBe('EBUSY');
    await held.unlock();
    held.fini();
    expect(await lines(3)).toEqual(['EBUSY', 'unlocked', 'locked']);
    await closed;
  } finally {
    buf.close();
  }
});
