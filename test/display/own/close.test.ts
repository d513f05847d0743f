// close() closes: a SwapChain or KmsDisplay closed with frames still out, a lock() pending or a present()
// under way leaves no dma-buf, sync_file or card fd open and no lock held or waited for (issue 16).
import { DmabufSync, KmsDisplay, query, SwapChain, type DmaBuf } from '../../../lib';
import { lockBusy, stateAfter } from '../helpers';
import { kernelFds, settle } from '../../helpers/kernel-fds';

describe('close() with frames still out', () => {
  test('regression: acquire a frame, close the chain and the display: no /dmabuf: fd, no lock held', async () => {
    const before = kernelFds();
    const display = KmsDisplay.open();
    const chain = SwapChain.create(display);
    const frame = await chain.acquire({ timeoutMs: 10_000 });
    frame.pixels().fill(0x00ff00);
    const buf = frame.dmaBuf;
    expect(lockBusy(buf)).toBe(true);
    chain.close();
    display.close();
    await settle();
    expect(lockBusy(buf)).toBe(false);
    expect(kernelFds().filter((t) => t.includes('/dmabuf:'))).toEqual(before.filter((t) => t.includes('/dmabuf:')));
    expect(kernelFds()).toEqual(before);
  });

  test('a released frame is EBADF afterwards: map, pixels, cancel, present', async () => {
    const display = KmsDisplay.open();
    const chain = SwapChain.create(display);
    const frame = await chain.acquire({ timeoutMs: 10_000 });
    const view = frame.pixels();
    view[0] = 1;
    chain.close();
    expect(frame.done).toBe(true);
    expect(() => frame.map()).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => frame.pixels()).toThrow(expect.objectContaining({ code: 'EBADF' }));
    await expect(frame.cancel()).rejects.toMatchObject({ code: 'EBADF' });
    await expect(chain.present(frame)).rejects.toMatchObject({ code: 'EBADF' });
    await expect(chain.acquire()).rejects.toMatchObject({ code: 'EBADF' });
    expect(() => chain.close()).not.toThrow();
    display.close();
  });

  test('display.close() with a chain open closes the chain first (frames out, one on screen)', async () => {
    const before = kernelFds();
    const display = KmsDisplay.open();
    const chain = SwapChain.create(display, { count: 3 });
    const bufs: DmaBuf[] = chain.buffers.map((b) => b.dmaBuf);
    const f1 = await chain.acquire({ timeoutMs: 10_000 });
    (await chain.present(f1, { timeoutMs: 10_000 })).close();
    const f2 = await chain.acquire({ timeoutMs: 10_000 });
    const f3 = await chain.acquire({ timeoutMs: 10_000 });
    display.close();
    expect(chain.buffers.every((b) => b.closed)).toBe(true);
    expect(f2.done && f3.done).toBe(true);
    await expect(chain.acquire()).rejects.toMatchObject({ code: 'EBADF' });
    expect(() => f2.map()).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => chain.close()).not.toThrow();
    await settle();
    for (const b of bufs) expect(lockBusy(b)).toBe(false);
    expect(kernelFds()).toEqual(before);
  });

  test('close() while acquire() waits for a buffer: it rejects with EBADF, nothing left', async () => {
    const before = kernelFds();
    const display = KmsDisplay.open();
    const chain = SwapChain.create(display);
    const bufs: DmaBuf[] = chain.buffers.map((b) => b.dmaBuf);
    const f1 = await chain.acquire({ timeoutMs: 10_000 });
    (await chain.present(f1, { timeoutMs: 10_000 })).close();
    await chain.acquire({ timeoutMs: 10_000 }); // the other buffer: now none is free
    const pending = chain.acquire();
    chain.close();
    await expect(pending).rejects.toMatchObject({ code: 'EBADF' });
    display.close();
    await settle();
    for (const b of bufs) expect(lockBusy(b)).toBe(false);
    expect(kernelFds()).toEqual(before);
  });

  test('close() while acquire() waits for the frame lock: it rejects with EBADF, no waiter left', async () => {
    const before = kernelFds();
    const display = KmsDisplay.open();
    const chain = SwapChain.create(display);
    const bufs: DmaBuf[] = chain.buffers.map((b) => b.dmaBuf);
    // Another user holds the buffer the chain will hand out next: the chain's lock() waits.
    const other = DmabufSync.init({ name: 'other-user' });
    other.get(bufs[0]!, 'write');
    await other.lock();
    const pending = chain.acquire();
    expect(await stateAfter(pending, 50)).toBe('pending');
    chain.close();
    await expect(pending).rejects.toMatchObject({ code: 'EBADF' });
    const mine = query().locks.find((l) => l.key === bufs[0]!.inode);
    expect(mine?.waiters ?? []).toEqual([]);
    await other.unlock();
    other.fini();
    display.close();
    await settle();
    expect(kernelFds()).toEqual(before);
  });

  test('close() during a present(): the present settles, nothing left', async () => {
    const before = kernelFds();
    const display = KmsDisplay.open();
    const chain = SwapChain.create(display, { count: 3 });
    const bufs: DmaBuf[] = chain.buffers.map((b) => b.dmaBuf);
    const f1 = await chain.acquire({ timeoutMs: 10_000 });
    const f2 = await chain.acquire({ timeoutMs: 10_000 });
    const p1 = chain.present(f1, { timeoutMs: 10_000 });
    const p2 = chain.present(f2, { timeoutMs: 10_000 }); // waits for p1's flip
    chain.close();
    display.close();
    for (const r of await Promise.allSettled([p1, p2])) {
      if (r.status === 'fulfilled') r.value.close();
      else expect(r.reason).toMatchObject({ code: 'EBADF' });
    }
    await settle();
    for (const b of bufs) expect(lockBusy(b)).toBe(false);
    expect(kernelFds()).toEqual(before);
  });
});
