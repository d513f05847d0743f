// Deadlines beyond what a Node timer holds (2^31-1 ms): they must neither fire early nor warn.
import { MAX_TIMER_MS, setDeadlineTimer } from '../../lib/deadline-timer';

afterEach(() => jest.useRealTimers());

test('a deadline three timer-spans away fires once, at the deadline, not before', () => {
  jest.useFakeTimers();
  const fired = jest.fn();
  setDeadlineTimer(Date.now() + 3 * MAX_TIMER_MS, fired);
  jest.advanceTimersByTime(3 * MAX_TIMER_MS - 1);
  expect(fired).not.toHaveBeenCalled();
  jest.advanceTimersByTime(1);
  expect(fired).toHaveBeenCalledTimes(1);
  jest.advanceTimersByTime(3 * MAX_TIMER_MS);
  expect(fired).toHaveBeenCalledTimes(1);
});

test('cancel stops it, also after a re-arm', () => {
  jest.useFakeTimers();
  const fired = jest.fn();
  const cancel = setDeadlineTimer(Date.now() + 2 * MAX_TIMER_MS, fired);
  jest.advanceTimersByTime(MAX_TIMER_MS + 5);
  cancel();
  jest.advanceTimersByTime(3 * MAX_TIMER_MS);
  expect(fired).not.toHaveBeenCalled();
});

test('Infinity never arms; a past deadline fires on the next timer turn', async () => {
  const fired = jest.fn();
  setDeadlineTimer(Infinity, fired)();
  await new Promise<void>((resolve) => setDeadlineTimer(Date.now() - 1000, resolve));
  expect(fired).not.toHaveBeenCalled();
});

test('Number.MAX_SAFE_INTEGER ms: no TimeoutOverflowWarning, no early fire', async () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error): number => warnings.push(w);
  process.on('warning', onWarning);
  const fired = jest.fn();
  const cancel = setDeadlineTimer(Date.now() + Number.MAX_SAFE_INTEGER, fired);
  await new Promise((r) => setTimeout(r, 50));
  cancel();
  process.off('warning', onWarning);
  expect(fired).not.toHaveBeenCalled();
  expect(warnings).toEqual([]);
});
