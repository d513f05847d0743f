/**
 * A worker_thread that signals vgem fences for the benchmarks, so the main thread's event loop does nothing
 * but wait (a timer on the main thread would measure timer latency, not wake latency).
 *
 * Messages: { fd, id, delayMs } → sleeps delayMs, records CLOCK_MONOTONIC, signals fence `id` on the vgem
 * fd, replies { t } (ns as a string). { fd, ids, intervalMs } → signals each fence in turn every intervalMs,
 * replies { done: true }. { ping: true, delayMs } → sleeps, replies { t } (the time it posted); figure 5 sends
 * one with delayMs 0 to know the worker runs before it starts measuring.
 */
import { parentPort } from 'node:worker_threads';
import { native } from '../lib/kernel/native';

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms: number): void => {
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
};

parentPort!.on('message', (msg: { fd: number; id?: number; ids?: number[]; delayMs?: number; intervalMs?: number; ping?: boolean }) => {
  try {
    if (msg.ping) {
      // Node's own cross-thread wake (uv_async), the floor under any wake-up in this process.
      sleep(msg.delayMs ?? 5);
      parentPort!.postMessage({ t: process.hrtime.bigint().toString() });
      return;
    }
    if (msg.ids) {
      for (const id of msg.ids) {
        sleep(msg.intervalMs ?? 1);
        native.vgemFenceSignal(msg.fd, id);
      }
      parentPort!.postMessage({ done: true });
      return;
    }
    sleep(msg.delayMs ?? 5);
    const t = process.hrtime.bigint();
    native.vgemFenceSignal(msg.fd, msg.id as number);
    parentPort!.postMessage({ t: t.toString() });
  } catch (err) {
    parentPort!.postMessage({ error: String((err as Error).message) });
  }
});
