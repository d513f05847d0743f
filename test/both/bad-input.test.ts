// Bad input gets a clear typed error and loses nothing (the fd guard checks no fd leaks per file). Runs on
// any host and on the VM's kernel.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as vm from 'node:vm';
import { DmaBuf, DmabufError, SyncFile } from '../../lib';
import { fromNative } from '../../lib/errors';
import { native } from '../../lib/kernel/native';
import { waitFdReady } from '../../lib/kernel/fd-wait';

// Fixture fds are opened and closed inside each test: the fd guard's check runs before file-level afterAll.
let dir: string;
let fifoFd: number;
let fileFd: number;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmabuf-sync-'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  // O_RDWR opens a FIFO without waiting for a peer (Linux).
  fifoFd = fs.openSync(path.join(dir, 'fifo'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  // A shmem file: what a memfd is, but not a dma-buf.
  fileFd = fs.openSync(path.join(dir, 'shmem'), 'w+');
  fs.ftruncateSync(fileFd, 4096);
});
afterEach(() => {
  fs.closeSync(fifoFd);
  fs.closeSync(fileFd);
  fs.rmSync(dir, { recursive: true, force: true });
});

function closedFd(): number {
  const fd = fs.openSync('/dev/null', 'r');
  fs.closeSync(fd);
  return fd;
}

test('a closed fd is EBADF', () => {
  const fd = closedFd();
  expect(() => DmaBuf.fromFd(fd)).toThrow(expect.objectContaining({ name: 'DmabufError', code: 'EBADF' }));
  expect(() => SyncFile.fromFd(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
});

test.each([
  ['a FIFO', () => fifoFd],
  ['a shmem file (memfd-like)', () => fileFd],
])('%s is not a dma-buf or sync_file: ENOTTY, with advice', (_what, fd) => {
  let err: unknown;
  try {
    DmaBuf.fromFd(fd());
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DmabufError);
  expect(err).toMatchObject({ code: 'ENOTTY', message: expect.stringContaining('not a dma-buf') });
  expect(() => SyncFile.fromFd(fd())).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
  // The raw ioctls on it answer ENOTTY from the kernel, named as such.
  expect(() => native.dmaBufSync(fd(), native.constants.DMA_BUF_SYNC_START | native.constants.DMA_BUF_SYNC_READ)).toThrow(
    expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl(DMA_BUF_IOCTL_SYNC)' }),
  );
});

test.each([-1, 1.5, NaN, '3', null])('fd %p is an argument error', (fd) => {
  expect(() => DmaBuf.fromFd(fd as number)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_(INVALID_ARG_TYPE|OUT_OF_RANGE)$/) }));
});

test.each([0, -4096, 2 ** 60, 1.5, NaN, Infinity, 2 ** 53 - 4095, 2 ** 53 - 3583])('size %p is a RangeError before any syscall', (size) => {
  expect(() => DmaBuf.allocUdmabuf(size)).toThrow(RangeError);
  expect(() => DmaBuf.allocHeap(size)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
});

// A valid size larger than the RAM can never be allocated, and the system heap would not fail the call: it
// zeroes page after page until the kernel's OOM killer ends a process (the test VM's jest process, once).
test.each([os.totalmem() + 8192, 2 ** 52])('size %p, more than the RAM, is ENOMEM before any syscall', (size) => {
  expect(() => DmaBuf.allocHeap(size)).toThrow(expect.objectContaining({ code: 'ENOMEM', message: expect.stringContaining('RAM') }));
  expect(() => DmaBuf.allocUdmabuf(size)).toThrow(expect.objectContaining({ code: 'ENOMEM', message: expect.stringContaining('RAM') }));
});

test('a bad heap name is a TypeError; the native shim checks its arguments too', () => {
  expect(() => DmaBuf.allocHeap(4096, '../udmabuf')).toThrow(TypeError);
  expect(() => native.heapAlloc('../x', 4096)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  expect(() => (native.dmaBufSync as (...a: unknown[]) => void)('x', 1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  expect(() => native.exportSyncFile(-5, 1)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
});

test('waiting on an fd that never becomes ready: ETIMEDOUT and AbortError, nothing left behind', async () => {
  const POLLIN = native.constants.POLLIN;
  await expect(waitFdReady(fifoFd, POLLIN, 'a FIFO', { timeoutMs: 30 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  const ac = new AbortController();
  const p = waitFdReady(fifoFd, POLLIN, 'a FIFO', { signal: ac.signal });
  ac.abort(new Error('stop'));
  await expect(p).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  await expect(waitFdReady(fifoFd, POLLIN, 'a FIFO', { timeoutMs: -1 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  // And when it does become ready, the wait resolves (the same FIFO, so the test above could have failed).
  const ready = waitFdReady(fifoFd, POLLIN, 'a FIFO', { timeoutMs: 5000 });
  setTimeout(() => fs.writeSync(fifoFd, 'x'), 20);
  await expect(ready).resolves.toBeUndefined();
  fs.readSync(fifoFd, Buffer.alloc(1));
});

test('closing twice is harmless; use after close is EBADF', () => {
  const fd = fs.openSync('/dev/null', 'r');
  // Not a sync_file: fromFd fails and must not leak its dup (the fd guard checks).
  expect(() => SyncFile.fromFd(fd)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
  fs.closeSync(fd);
});

test("the addon's argument errors stay TypeError/RangeError, also when made in another realm (jest's)", () => {
  // Under jest the library runs in a vm context and the addon's errors come from the main one.
  const range = vm.runInNewContext("Object.assign(new RangeError('The value of \"count\" is out of range'), { code: 'ERR_OUT_OF_RANGE' })") as Error;
  expect(range instanceof RangeError).toBe(false);
  expect(fromNative(range, 'V4l2Device.requestBuffers')).toBe(range);
  const type = vm.runInNewContext("Object.assign(new TypeError('bad fd'), { code: 'ERR_INVALID_ARG_TYPE' })") as Error;
  expect(fromNative(type, 'DmaBuf.fromFd')).toBe(type);
  // An errno error from any realm is wrapped, named after the operation.
  const busy = vm.runInNewContext("Object.assign(new Error('ioctl(VIDIOC_S_FMT): EBUSY'), { code: 'EBUSY' })") as Error;
  expect(fromNative(busy, 'V4l2Device.setFormat')).toMatchObject({ name: 'DmabufError', code: 'EBUSY', message: expect.stringMatching(/^V4l2Device\.setFormat: /) });
});
