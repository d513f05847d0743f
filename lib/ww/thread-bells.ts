/**
 * Doorbells between the threads of one process: a ring of a participant that is a thread of this process is an
 * `Atomics.notify` on a SharedArrayBuffer word that thread waits on with `Atomics.waitAsync`, instead of a
 * `futex(2)` wake of its helper thread (waking.ts, native/futex.cc).
 *
 * Why: the futex doorbell wakes two sleeping threads one after the other (the helper, then, through a
 * thread-safe function, the event loop); `Atomics.waitAsync` wakes the loop directly (V8 posts the wake as a
 * task to that thread's loop). Measured host-native (bench figure 9c's floors): 39 µs against 98 µs for an idle
 * peer. V8's Atomics work only within a process and only on a SharedArrayBuffer, which N-API cannot make of
 * the store's mapping, so each thread makes its own word and announces it to the other threads of the process
 * on a BroadcastChannel named after the store file; every other participant (another process, or a thread
 * whose word is not known yet) is still rung through the futex doorbell, which every sleeping thread keeps
 * listening on. A word is used only while the participant slot it was announced for still names the thread
 * that announced it (pid and threadId, read under the table lock, which a slot changes owner under): a slot
 * taken over by another thread is rung by futex until that thread announces its own word.
 * @internal
 */
import { types } from 'node:util';
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { P_PID, P_STATE, P_THREAD, VERSION } from './layout';
import type { Table } from './table';

/** What a thread announces: its participant slot, its threadId and the word it waits on. */
interface BellMessage {
  kind: 'bell';
  part: number;
  threadId: number;
  word: SharedArrayBuffer;
}

/** A newly listening thread asks every other thread to announce its word again. */
interface AskMessage {
  kind: 'ask';
}

/** Another thread's word. */
interface Bell {
  threadId: number;
  word: Int32Array;
}

// Atomics.waitAsync is ES2024; the lib this package compiles against is ES2022.
type WaitAsync = (
  ta: Int32Array,
  index: number,
  value: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;

/** The in-process doorbells of one thread on one store. */
export class ThreadBells {
  private readonly t: Table;
  private readonly onRing: () => void;
  private readonly channel: BroadcastChannel | undefined;
  /** Other threads' words by participant slot. */
  private readonly bells = new Map<number, Bell>();
  /** This thread's word, once it listens. */
  private word: Int32Array | undefined;
  private readonly onWake = (): void => {
    this.arm();
    this.onRing();
  };

  /** `onRing` runs on this thread's loop when another thread of the process rings it (coalesced). */
  constructor(t: Table, onRing: () => void) {
    this.t = t;
    this.onRing = onRing;
    if (waitAsync === undefined) return;
    const channel = new BroadcastChannel(`dmabuf-sync:bells:v${VERSION}:${t.file.path}`);
    // A thread with nothing else to do must be able to exit.
    channel.unref();
    channel.onmessage = (e: MessageEvent): void => this.received(e.data);
    channel.postMessage({ kind: 'ask' } satisfies AskMessage);
    this.channel = channel;
  }

  /** Starts waiting on this thread's word and announces it; a no-op once listening. */
  listen(): void {
    if (this.word !== undefined || this.channel === undefined) return;
    this.word = new Int32Array(new SharedArrayBuffer(4));
    this.arm();
    this.announce();
  }

  /**
   * Rings participant `part` (table locked) if it is a thread of this process whose word is known; false if
   * it must be rung through its futex doorbell.
   */
  ring(part: number): boolean {
    const b = this.bells.get(part);
    if (b === undefined) return false;
    const i32 = this.t.i32;
    const off = this.t.partOff(part);
    if (i32[off + P_PID] !== process.pid || i32[off + P_THREAD] !== b.threadId || i32[off + P_STATE] !== 1) return false;
    Atomics.add(b.word, 0, 1);
    Atomics.notify(b.word, 0, 1);
    return true;
  }

  /** Waits (asynchronously) for the next change of this thread's word. */
  private arm(): void {
    const word = this.word as Int32Array;
    const r = (waitAsync as WaitAsync)(word, 0, Atomics.load(word, 0));
    if (r.async) void r.value.then(this.onWake);
    else queueMicrotask(this.onWake); // rung between the load and the wait
  }

  private announce(): void {
    if (this.word === undefined || this.t.self < 0) return;
    const msg: BellMessage = { kind: 'bell', part: this.t.self, threadId, word: this.word.buffer as SharedArrayBuffer };
    this.channel?.postMessage(msg);
  }

  private received(data: unknown): void {
    if (typeof data !== 'object' || data === null) return;
    const m = data as Partial<BellMessage> | Partial<AskMessage>;
    if (m.kind === 'ask') {
      this.announce();
      return;
    }
    if (m.kind !== 'bell') return;
    const { part, threadId: tid, word } = m as Partial<BellMessage>;
    if (!Number.isInteger(part) || (part as number) < 0 || (part as number) >= this.t.nPart) return;
    if (!Number.isInteger(tid) || !types.isSharedArrayBuffer(word) || word.byteLength < 4) return;
    this.bells.set(part as number, { threadId: tid as number, word: new Int32Array(word, 0, 1) });
  }
}
