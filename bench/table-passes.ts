/**
 * Figure 1t: how many times one DmabufSync operation enters the lock table's critical section (Table.lock),
 * for 1 and 8 buffers. Each entry is an atomic exchange on the shared table plus its record walks: under
 * emulation, where a figure's times swing by tens of percent from run to run, this count is the part of the
 * lock's cost that does not, and a change that adds or removes a pass shows here exactly. It also counts the
 * addon calls of a lock + map + unlock cycle, against the two that the kernel work needs.
 */
import { DmabufSync, type DmaBuf } from '../lib';
import { native } from '../lib/kernel/native';
import { Table } from '../lib/ww/table';
import { allocBufs, results, rows } from './figures';
import { sleep } from './util';

/** Counts Table.lock calls while `fn` runs (the hook is removed afterwards, also on a throw). */
async function passesOf(fn: () => Promise<unknown> | unknown): Promise<number> {
  const lock = Object.getOwnPropertyDescriptor(Table.prototype, 'lock')!;
  let n = 0;
  Table.prototype.lock = function (this: Table): void {
    n++;
    (lock.value as () => void).call(this);
  };
  try {
    await fn();
  } finally {
    Object.defineProperty(Table.prototype, 'lock', lock);
  }
  return n;
}

/** Counts calls of the addon's functions while `fn` runs (the wrappers are removed afterwards, also on a throw). */
async function addonCallsOf(fn: () => Promise<unknown> | unknown): Promise<number> {
  const lib = native as unknown as Record<string, unknown>;
  const saved = new Map<string, unknown>();
  let n = 0;
  for (const [name, f] of Object.entries(lib)) {
    if (typeof f !== 'function') continue;
    saved.set(name, f);
    lib[name] = function (this: unknown, ...args: unknown[]): unknown {
      n++;
      return (f as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  try {
    await fn();
  } finally {
    for (const [name, f] of saved) lib[name] = f;
  }
  return n;
}

/** Figure 1t: lock-table passes per DmabufSync operation (informational, except one pass per buffer at most for lock and unlock). */
export async function fig1t(): Promise<void> {
  const out: Record<string, unknown> = {};
  for (const n of [1, 8]) {
    const bufs = allocBufs(n).sort((a, b) => (a.inode < b.inode ? -1 : 1));
    const s = DmabufSync.init({ name: `fig1t-${n}` });
    for (const b of bufs) s.get(b, 'write');
    // Once before counting: registrations, kept mappings and this thread's parked contexts exist from then on.
    await s.lock();
    s.map(bufs[0] as DmaBuf);
    await s.unlock();
    const lock = await passesOf(() => s.lock());
    const map = await passesOf(() => s.map(bufs[0] as DmaBuf));
    const unlock = await passesOf(() => s.unlock());
    const calls = await addonCallsOf(async () => {
      await s.lock();
      s.map(bufs[0] as DmaBuf);
      await s.unlock();
    });
    // Contended: the highest buffer is held by another sync; the lock takes the others and queues for it.
    const holder = DmabufSync.init({ name: `fig1t-${n}-holder` });
    holder.get(bufs[n - 1] as DmaBuf, 'write');
    await holder.lock();
    let pending: Promise<void> | undefined;
    const queue = await passesOf(async () => {
      pending = s.lock();
      await sleep(20);
    });
    const handOff = await passesOf(async () => {
      await holder.unlock();
      await pending;
    });
    await s.unlock();
    holder.fini();
    s.fini();
    for (const b of bufs) b.close();
    out[`buffers${n}`] = { lock, map, unlock, contendedLockUntilQueued: queue, releaseToGranted: handOff, addonCallsLockMapUnlock: calls };
    // [what, passes, buffers it touches, bounded by one pass per buffer]
    const each: Array<[string, number, number, boolean]> = [
      ['uncontended lock()', lock, n, true],
      ['map() of one buffer', map, 1, false],
      ['unlock()', unlock, n, true],
      ['lock() with the highest buffer busy, until queued', queue, n, false],
      ["the holder's unlock() (1 buffer) until that lock() resolves", handOff, 1, false],
    ];
    for (const [what, count, touched, bounded] of each) {
      rows.push({
        figure: '1t',
        what: `  lock-table passes: ${what}, ${n} buffer${n > 1 ? 's' : ''}`,
        ours: String(count),
        baseline: `${touched} (buffers touched)`,
        ratio: count / touched,
        target: bounded ? '<= 1 per buffer' : '(info)',
        verdict: bounded ? (count <= touched ? 'PASS' : 'MISS') : '',
      });
    }
    // The kernel work of the cycle is two batched calls: fence check + SYNC START, and SYNC END.
    rows.push({
      figure: '1t',
      what: `  addon calls: lock() + map() of one buffer + unlock(), ${n} buffer${n > 1 ? 's' : ''}`,
      ours: String(calls),
      baseline: '2 (fence check + SYNC START, SYNC END)',
      ratio: calls / 2,
      target: '(info)',
      verdict: '',
    });
  }
  results.fig1t = out;
}
