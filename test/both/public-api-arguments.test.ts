// Every public function, method and constructor that needs no dma-buf, given any JavaScript value for any
// one argument (the others valid): a typed error naming the argument, or success — never a raw TypeError
// from inside the library, never a crash while formatting the message. The dma-buf paths: test/vm.
import {
  AcquireContext,
  DmaBuf,
  DmabufError,
  DmabufSync,
  SyncFile,
  WwClass,
  WwMutex,
  forceRelease,
} from '../../lib';
import { checkArgument } from '../helpers/any-argument';

jest.setTimeout(60_000);

describe('errors and buffers', () => {
  test('new DmabufError(code, message, options)', async () => {
    await checkArgument('code', (v) => new DmabufError(v as string, 'm'));
    await checkArgument('message', (v) => new DmabufError('EIO', v as string));
    await checkArgument('options', (v) => new DmabufError('EIO', 'm', v as never));
  });

  test('DmaBuf.fromFd / allocUdmabuf / allocHeap and SyncFile.fromFd', async () => {
    await checkArgument('fd', (v) => DmaBuf.fromFd(v as number));
    await checkArgument('fd', (v) => SyncFile.fromFd(v as number));
    await checkArgument('size', (v) => DmaBuf.allocUdmabuf(v as number));
    await checkArgument('size', (v) => DmaBuf.allocHeap(v as number));
    await checkArgument('heap', (v) => DmaBuf.allocHeap(4096, v as string));
  });
});

describe('DmabufSync without buffers', () => {
  test('init(options) and the constructor', async () => {
    await checkArgument('options', (v) => DmabufSync.init(v as never));
    await checkArgument('options', (v) => new DmabufSync(v as never));
    await checkArgument('options', (v) => DmabufSync.init({ maxHoldMs: v as number }));
    await checkArgument('options', (v) => DmabufSync.init({ name: v as string }));
    await checkArgument('options', (v) => DmabufSync.init({ wwClass: v as WwClass }));
  });

  test('get / put / map / lock / unlock', async () => {
    const each = (f: (s: DmabufSync, v: unknown) => unknown) => (v: unknown) => {
      const s = DmabufSync.init({ name: 'args' });
      try {
        return f(s, v);
      } finally {
        // A rejected lock() has settled synchronously enough: fini() must not see it locked.
        if (s.state === 'idle') s.fini();
      }
    };
    await checkArgument('buf', each((s, v) => s.get(v as DmaBuf, 'read')));
    await checkArgument('buf', each((s, v) => s.put(v as DmaBuf)));
    await checkArgument('buf', each((s, v) => s.map(v as DmaBuf)));
    await checkArgument('options', each((s, v) => s.lock(v as never)));
    await checkArgument('options', each((s, v) => s.lock({ timeoutMs: v as number })));
    await checkArgument('options', each((s, v) => s.lock({ signal: v as AbortSignal })));
    await checkArgument('options', each((s, v) => s.unlock(v as never)));
  });
});

describe('the lock core', () => {
  const cls = new WwClass('wound-wait', 'args');

  test('WwClass, acquireContext, AcquireContext', async () => {
    await checkArgument('kind', (v) => new WwClass(v as never));
    await checkArgument('name', (v) => new WwClass('wait-die', v as string));
    await checkArgument('options', (v) => cls.acquireContext(v as never));
    await checkArgument('options', (v) => cls.acquireContext({ maxHoldMs: v as number }));
    await checkArgument('options', (v) => cls.acquireContext({ name: v as string }));
    await checkArgument('options', (v) => cls.acquireContext({ ordered: v as boolean }));
    await checkArgument('cls', (v) => new AcquireContext(v as WwClass));
    await checkArgument('callback', (v) => {
      const ctx = cls.acquireContext();
      try {
        ctx.onForced(v as never);
      } finally {
        ctx.fini();
      }
    });
  });

  test('WwMutex: constructor and every method', async () => {
    await checkArgument('cls', (v) => new WwMutex(v as WwClass));
    await checkArgument('key', (v) => new WwMutex(cls, v as bigint));
    // A fresh mutex and context per value; whatever the call took is given back.
    const each = (f: (m: WwMutex, ctx: AcquireContext, v: unknown) => unknown) => async (v: unknown) => {
      const m = new WwMutex(cls);
      const ctx = cls.acquireContext();
      try {
        return await f(m, ctx, v);
      } finally {
        while (m.isHeldBy(ctx)) m.unlock(ctx);
        while (m.isLocked()) m.unlock();
        ctx.fini();
        m.dispose();
      }
    };
    await checkArgument('ctx', each((m, _c, v) => m.lock(v as AcquireContext)));
    await checkArgument('mode', each((m, c, v) => m.lock(c, v as never)));
    await checkArgument('options', each((m, c, v) => m.lock(c, 'write', v as never)));
    await checkArgument('options', each((m, c, v) => m.lock(c, 'read', { deadline: v as number })));
    await checkArgument('options', each((m, _c, v) => m.lock(null, 'read', { signal: v as AbortSignal })));
    await checkArgument('ctx', each((m, _c, v) => m.lockSlow(v as AcquireContext)));
    await checkArgument('mode', each((m, c, v) => m.lockSlow(c, v as never)));
    await checkArgument('options', each((m, c, v) => m.lockSlow(c, 'write', v as never)));
    await checkArgument('mode', each((m, _c, v) => m.tryLock(v as never)));
    await checkArgument('ctx', each((m, _c, v) => m.tryLock('write', v as AcquireContext)));
    await checkArgument('ctx', each((m, _c, v) => m.unlock(v as AcquireContext)));
    await checkArgument('ctx', each((m, _c, v) => m.setHoldTag(v as AcquireContext, 1n)));
    await checkArgument('tag', each(async (m, c, v) => {
      await m.lock(c);
      m.setHoldTag(c, v as bigint);
    }));
    await checkArgument('ctx', each((m, _c, v) => m.isHeldBy(v as AcquireContext)));
    await checkArgument('ctxId', (v) => forceRelease(v as number));
  });
});
