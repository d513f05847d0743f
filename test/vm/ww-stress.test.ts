// kernel/locking/test-ww_mutex.c stress tests on real dma-bufs: each lock is a dma-buf's ww mutex (keyed by
// its inode, as DmabufSync does) and each lock's counter lives inside that dma-buf, so a lost update would
// show in the buffer itself.
import { WwClass, WwMutex, query } from '../../lib';
import type { Mapping } from '../../lib';
import { KINDS, runStress, type StressTask } from '../unit/ww-helpers';
import { cpuBuffer } from './fixtures/kernel-features';

/** An Int32Array-like view whose element i is the first word of buffer i's mapping. */
function countersIn(maps: Mapping[]): Int32Array {
  const views = maps.map((m) => new Int32Array(m.buffer, 0, 1));
  return new Proxy(new Int32Array(maps.length), {
    get: (target, k) => (typeof k === 'string' && /^\d+$/.test(k) ? views[Number(k)][0] : Reflect.get(target, k)),
    set: (target, k, v) => {
      if (typeof k === 'string' && /^\d+$/.test(k)) views[Number(k)][0] = v;
      else Reflect.set(target, k, v);
      return true;
    },
  });
}

describe.each(KINDS)('%s on dma-bufs', (kind) => {
  const stress = async (nbufs: number, tasks: StressTask[], ms: number): Promise<void> => {
    const cls = new WwClass(kind);
    const bufs = Array.from({ length: nbufs }, () => cpuBuffer(4096));
    const maps = bufs.map((b) => b.map());
    const locks = bufs.map((b) => new WwMutex(cls, b.inode));
    const counters = countersIn(maps);
    const done = new Int32Array(nbufs);
    const until = Date.now() + ms;
    const loops = await runStress(cls, locks, counters, done, until, tasks);
    maps.forEach((m) => m.release());
    // Read the counters back through fresh mappings: what the buffers hold, not what a view remembers.
    const inBuffers = bufs.map((b) => {
      const m = b.map({ writable: false });
      const v = new Int32Array(m.buffer)[0];
      m.release();
      return v;
    });
    expect(inBuffers).toEqual(Array.from(done));
    expect(loops.every((l) => l > 0)).toBe(true);
    expect(query().locks.filter((l) => bufs.some((b) => b.inode === l.key))).toEqual([]);
    locks.forEach((l) => l.dispose());
    bufs.forEach((b) => b.close());
  };

  test('stress inorder: 8 buffers, 4 tasks', () => stress(8, ['inorder', 'inorder', 'inorder', 'inorder'], 1500));
  test('stress reorder: 8 buffers, 4 tasks', () => stress(8, ['reorder', 'reorder', 'reorder', 'reorder'], 1500));
  test('stress one-over-many: 2 buffers, 6 tasks', () => stress(2, ['one', 'one', 'one', 'one', 'one', 'one'], 1000));
  test('stress read/write mixed: 8 buffers, 6 tasks', () => stress(8, ['mixed', 'mixed', 'mixed', 'mixed', 'mixed', 'mixed'], 1500));
});
