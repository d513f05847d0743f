// A store into a read-only view (a buffer locked for 'read', or DmaBuf.map({ writable: false })) must not
// kill the process and must not reach the buffer: the addon's SIGSEGV handler gives the faulting page a
// private copy, and releasing the view reports the write (EACCES). Faults that are not ours still go to
// the handlers that were there before (V8's WebAssembly trap handler, Node's, the default action).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DmaBuf, DmabufSync, VgemDevice } from '../../lib';
import { native } from '../../lib/kernel/native';
import { kernel } from './fixtures/kernel-features';

const PAGE = native.constants.PAGE_SIZE;

// udmabuf where the kernel has it (Debian's 5.10 and 6.1 kernels do not), vgem always.
function allocators(): Array<[string, () => { buf: DmaBuf; close(): void }]> {
  const all: Array<[string, () => { buf: DmaBuf; close(): void }]> = [
    ['udmabuf', () => {
      const buf = DmaBuf.allocUdmabuf(2 * PAGE);
      return { buf, close: () => buf.close() };
    }],
    ['vgem', () => {
      const dev = VgemDevice.open();
      const bo = dev.createBuffer(2 * PAGE);
      return { buf: bo.dmaBuf, close: () => { bo.close(); dev.close(); } };
    }],
  ];
  return all.filter(([name]) => name !== 'udmabuf' || kernel.udmabuf);
}

/** Fills the buffer with `value` through a writable mapping. */
function fill(buf: DmaBuf, value: number): void {
  const m = buf.map();
  m.bytes.fill(value);
  m.release();
}

/** The buffer's bytes as a fresh mapping shows them. */
function readBack(buf: DmaBuf): Uint8Array {
  const m = buf.map({ writable: false });
  const copy = m.bytes.slice();
  m.release();
  return copy;
}

describe.each(allocators())('%s buffer', (_name, make) => {
  test("a store into a 'read' lock's view: the process goes on, the buffer is untouched, unlock() rejects EACCES", async () => {
    const b = make();
    try {
      fill(b.buf, 7);
      const sync = DmabufSync.init({ name: 'reader' });
      sync.get(b.buf, 'read');
      await sync.lock();
      const view = sync.map(b.buf).bytes;
      view[10] = 99; // the page is read-only: this faults, and the guard makes it a private copy
      view[PAGE + 1] = 98; // a second page of the same view
      expect(view[10]).toBe(99); // our private copy has the store
      expect(view[11]).toBe(7); // ... and the rest of the page as it was
      const err = await sync.unlock().then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'EACCES', name: 'DmabufError' });
      expect((err as Error).message).toContain(`inode ${b.buf.inode}`);
      expect(sync.state).toBe('idle'); // the locks are released all the same
      expect(readBack(b.buf).every((v) => v === 7)).toBe(true);
      // The next lock of the same sync works and reports nothing.
      await sync.lock();
      expect(sync.map(b.buf).bytes[10]).toBe(7);
      await sync.unlock();
      sync.fini();
    } finally {
      b.close();
    }
  });

  test('a store into DmaBuf.map({ writable: false }): release() throws EACCES, a second release() is a no-op', () => {
    const b = make();
    try {
      fill(b.buf, 3);
      const m = b.buf.map({ writable: false });
      m.bytes[0] = 1;
      expect(() => m.release()).toThrow(expect.objectContaining({ code: 'EACCES' }));
      expect(m.released).toBe(true);
      expect(() => m.release()).not.toThrow();
      expect(readBack(b.buf)[0]).toBe(3);
      // A read-only view nobody wrote releases quietly.
      const quiet = b.buf.map({ writable: false });
      expect(quiet.bytes[0]).toBe(3);
      expect(() => quiet.release()).not.toThrow();
    } finally {
      b.close();
    }
  });

  test('from a worker thread: the fault is caught in the worker, the buffer is untouched', async () => {
    const b = make();
    try {
      fill(b.buf, 5);
      const script = path.join(__dirname, 'fixtures', 'read-view-worker.js');
      const result = await new Promise<{ seen: number; code?: string; message: string }>((resolve, reject) => {
        const w = new Worker(script, { workerData: { fd: b.buf.fd } });
        let got: { seen: number; code?: string; message: string } | undefined;
        w.once('message', (m) => (got = m));
        w.once('error', reject);
        w.once('exit', (code) => (got && code === 0 ? resolve(got) : reject(new Error(`worker exited ${code}`))));
      });
      expect(result.seen).toBe(0xee);
      expect(result.code).toBe('EACCES');
      expect(result.message).toContain(`inode ${b.buf.inode}`);
      expect(readBack(b.buf).every((v) => v === 5)).toBe(true);
    } finally {
      b.close();
    }
  });
});

test('faults that are not ours still reach the handlers installed before: wasm traps, then a real SIGSEGV kills', () => {
  const lib = path.join(__dirname, '..', '..', 'lib');
  // A wasm load far out of bounds: with V8's trap handler it is a real SIGSEGV that V8 turns into a
  // RuntimeError; our handler (installed by the read-only map) must pass it on. Then a SIGSEGV that nobody
  // handles must still end the process with that signal.
  const script = `
    const { DmaBuf, VgemDevice } = require(${JSON.stringify(lib)});
    const buf = require('node:fs').existsSync('/dev/udmabuf') ? DmaBuf.allocUdmabuf(4096) : VgemDevice.open().createBuffer(4096).dmaBuf;
    const view = buf.map({ writable: false });
    const wasm = Uint8Array.from([0,0x61,0x73,0x6d,1,0,0,0, 1,5,1,0x60,0,1,0x7f, 3,2,1,0, 5,3,1,0,1,
      7,5,1,1,0x66,0,0, 0x0a,0x0d,1,0x0b,0,0x41,0xf0,0xff,0xff,0xff,0x07,0x28,2,0,0x0b]);
    try { new WebAssembly.Instance(new WebAssembly.Module(wasm)).exports.f(); } catch (e) { console.log(e.constructor.name); }
    console.log('alive', view.bytes.length);
    process.kill(process.pid, 'SIGSEGV');
    setTimeout(() => console.log('survived'), 2000);
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  expect(r.stdout).toContain('RuntimeError');
  expect(r.stdout).toContain('alive 4096');
  expect(r.stdout).not.toContain('survived');
  expect(r.signal).toBe('SIGSEGV');
});
