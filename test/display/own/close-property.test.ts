// Property (issue 16): whatever valid and invalid calls a SwapChain and its KmsDisplay went through, and in
// whatever state they are closed — frames out, an acquire() pending, a present() under way, closed twice —
// afterwards no dma-buf, sync_file or card fd is open and query() shows no holder or waiter of their buffers.
// Invalid calls must throw typed errors (the model says which code).
import fc from 'fast-check';
import { KmsDisplay, query, SwapChain, type DmaBuf, type Frame } from '../../../lib';
import { kernelFds, settle } from '../../helpers/kernel-fds';

type Cmd =
  | { op: 'acquire' }
  | { op: 'map' | 'cancel' | 'present'; frame: number }
  | { op: 'acquirePendingThenClose' }
  | { op: 'presentThenClose'; frame: number }
  | { op: 'closeChain' }
  | { op: 'closeDisplay' };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Cmd>({ op: 'acquire' }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constantFrom('map' as const, 'cancel' as const, 'present' as const), frame: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant<Cmd>({ op: 'acquirePendingThenClose' }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('presentThenClose' as const), frame: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant<Cmd>({ op: 'closeChain' }) },
  { weight: 1, arbitrary: fc.constant<Cmd>({ op: 'closeDisplay' }) },
);

/** Runs `f`, expecting a DmabufError with `code` (or success when code is undefined). */
async function expectOutcome(code: string | undefined, f: () => unknown): Promise<unknown> {
  let result: unknown;
  try {
    result = await f();
  } catch (err) {
    if (code === undefined) throw err;
    expect(err).toMatchObject({ code });
    return undefined;
  }
  if (code !== undefined) throw new Error(`expected ${code}, the call succeeded`);
  return result;
}

test('any call sequence, then close(): no fd open, no lock held or waited for', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 2, max: 3 }), fc.array(cmd, { maxLength: 10 }), async (count, cmds) => {
      // Each run against its own start: a run that leaked must not make the shrunk counterexample lie.
      const baseline = kernelFds();
      const display = KmsDisplay.open();
      const chain = SwapChain.create(display, { count });
      const bufs: DmaBuf[] = chain.buffers.map((b) => b.dmaBuf);
      const frames: Frame[] = [];
      /** Model: frames handed out and not yet ended; whether a buffer is on screen; closed. */
      const out = new Set<Frame>();
      /** Frames that were out when the chain closed: close() released them, any use is EBADF. */
      const released = new Set<Frame>();
      let shown = false;
      let closed = false;
      const closeAll = (): void => {
        for (const f of out) released.add(f);
        out.clear();
        closed = true;
      };
      /** The code a frame's map() or cancel() must fail with (undefined: it must work). */
      const frameCode = (f: Frame): string | undefined => (out.has(f) ? undefined : released.has(f) ? 'EBADF' : 'EPERM');
      const free = (): boolean => out.size + (shown ? 1 : 0) < count;
      const pick = (i: number): Frame | undefined => (frames.length === 0 ? undefined : frames[i % frames.length]);
      try {
        for (const c of cmds) {
          switch (c.op) {
            case 'acquire': {
              // With no free buffer, acquire() would wait for a present(): bounded to 0 ms it times out.
              const code = closed ? 'EBADF' : free() ? undefined : 'ETIMEDOUT';
              const f = (await expectOutcome(code, () => chain.acquire({ timeoutMs: code ? 0 : 10_000 }))) as Frame | undefined;
              if (f) {
                frames.push(f);
                out.add(f);
              }
              break;
            }
            case 'map': {
              const f = pick(c.frame);
              if (!f) break;
              await expectOutcome(frameCode(f), () => f.pixels().fill(0x336699));
              break;
            }
            case 'cancel': {
              const f = pick(c.frame);
              if (!f) break;
              await expectOutcome(frameCode(f), () => f.cancel());
              out.delete(f);
              break;
            }
            case 'present': {
              const f = pick(c.frame);
              if (!f) break;
              const fence = await expectOutcome(closed ? 'EBADF' : out.has(f) ? undefined : 'EINVAL', () => chain.present(f, { timeoutMs: 10_000 }));
              (fence as { close(): void } | undefined)?.close();
              if (out.delete(f)) shown = true;
              break;
            }
            case 'acquirePendingThenClose': {
              const p = chain.acquire({ timeoutMs: 10_000 });
              chain.close();
              closeAll();
              // Either it had a free buffer and took it synchronously before close (then close released
              // it), or it was waiting: both end in EBADF, nothing held.
              await expect(p).rejects.toMatchObject({ code: 'EBADF' });
              break;
            }
            case 'presentThenClose': {
              const f = pick(c.frame);
              if (!f) break;
              const p = chain.present(f, { timeoutMs: 10_000 });
              chain.close();
              const wasOut = out.delete(f);
              closeAll();
              const r = (await Promise.allSettled([p]))[0]!;
              if (r.status === 'fulfilled') r.value.close();
              else expect(r.reason).toMatchObject({ code: wasOut ? 'EBADF' : expect.stringMatching(/^(EBADF|EINVAL)$/) });
              break;
            }
            case 'closeChain':
              chain.close();
              closeAll();
              break;
            case 'closeDisplay':
              display.close();
              closeAll();
              expect(chain.closed).toBe(true);
              break;
          }
        }
      } finally {
        chain.close();
        chain.close();
        display.close();
        display.close();
      }
      for (const f of frames) expect(f.done).toBe(true);
      await settle();
      expect(kernelFds()).toEqual(baseline);
      const busy = query().locks.filter((l) => bufs.some((b) => b.inode === l.key) && (l.holders.length > 0 || l.waiters.length > 0));
      expect(busy).toEqual([]);
    }),
    { numRuns: 50 },
  );
});
