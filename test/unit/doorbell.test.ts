/**
 * The native doorbell (native/futex.cc): a helper thread FUTEX_WAITs on a word and calls back on the event
 * loop when the word changes. A ring that lands right after doorbell() returns, before that thread first ran,
 * must not be lost: the lock core makes its doorbell lazily at a thread's first wait, after its request is
 * queued, and another process may kick it at once.
 */
import { native } from '../../lib/kernel/native';

// The words a doorbell thread watches must outlive it (it runs until the environment's teardown).
const words: ArrayBuffer[] = [];

test('a doorbell rung right after it was made, before its thread ran, calls back', async () => {
  for (let i = 0; i < 5; i++) {
    const buffer = new ArrayBuffer(8);
    words.push(buffer);
    let rang = (): void => undefined;
    const called = new Promise<string>((resolve) => (rang = () => resolve('called back')));
    const bell = native.doorbell(buffer, 1, () => rang());
    Atomics.add(new Int32Array(buffer), 1, 1);
    native.futexWake(buffer, 1, 1);
    bell.ref();
    let timer: NodeJS.Timeout | undefined;
    const lost = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('lost'), 2000)));
    try {
      expect(await Promise.race([called, lost])).toBe('called back');
    } finally {
      clearTimeout(timer);
      bell.unref(); // a lost ring must fail the test, not keep the process alive
    }
  }
});
