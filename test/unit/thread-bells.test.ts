/**
 * In-process doorbells (lib/ww/thread-bells.ts): a participant that is a thread of this process and waits
 * is rung through its SharedArrayBuffer word (Atomics.notify → its Atomics.waitAsync), announced on a
 * BroadcastChannel; a word is used only while the participant slot still names the thread that announced it.
 * Two stores of one thread stand for two threads (two participants of the table, two channels).
 */
import { TableLockStore } from '../../lib/ww/lock-store';
import { P_THREAD, VERSION } from '../../lib/ww/layout';
import { ThreadBells } from '../../lib/ww/thread-bells';
import { until } from '../vm/fixtures/until';

const DOMAIN = 'thread-bells';
const a = new TableLockStore(DOMAIN);
const b = new TableLockStore(DOMAIN);

test('a listening participant is rung through its word; one that never listened, or whose slot changed owner, is not', async () => {
  let rungA = 0;
  const bellsA = new ThreadBells(a.t, () => rungA++);
  const bellsB = new ThreadBells(b.t, () => undefined);
  const partA = a.t.self;
  // A has announced nothing yet: B must ring its futex doorbell.
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(bellsB.ring(partA)).toBe(false);

  bellsA.listen();
  await until(() => bellsB.ring(partA), "B learns A's word", 5000);
  await until(() => rungA > 0, 'A is called back after a ring of its word', 5000);

  // The slot taken over by another thread (its threadId in the slot changes): the old word is not used.
  const word = a.t.partOff(partA) + P_THREAD;
  const tid = a.t.i32[word] as number;
  a.t.i32[word] = tid + 1000;
  try {
    expect(bellsB.ring(partA)).toBe(false);
  } finally {
    a.t.i32[word] = tid;
  }
  expect(bellsB.ring(partA)).toBe(true);

  // A thread that starts listening later asks, and learns the words announced before it came.
  const bellsC = new ThreadBells(b.t, () => undefined);
  await until(() => bellsC.ring(partA), 'a late thread learns A\'s word', 5000);

  // Every ring wakes A (coalesced: at least once more after the last one).
  const before = rungA;
  expect(bellsB.ring(partA)).toBe(true);
  await until(() => rungA > before, 'A is called back again', 5000);
});

test('a malformed message on the channel is ignored', async () => {
  const { BroadcastChannel } = await import('node:worker_threads');
  const bellsB = new ThreadBells(b.t, () => undefined);
  const ch = new BroadcastChannel(`dmabuf-sync:bells:v${VERSION}:${b.t.file.path}`);
  try {
    for (const msg of [null, 7, { kind: 'bell' }, { kind: 'bell', part: -1, threadId: 1, word: new SharedArrayBuffer(4) },
      { kind: 'bell', part: 1e9, threadId: 1, word: new SharedArrayBuffer(4) }, { kind: 'bell', part: 0, threadId: 1, word: new ArrayBuffer(4) }]) {
      ch.postMessage(msg);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (let p = 0; p < b.t.nPart; p++) if (p !== a.t.self) expect(bellsB.ring(p)).toBe(false);
  } finally {
    ch.close();
  }
});
