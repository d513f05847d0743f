/**
 * One side of figure 9c's hand-off ping-pong (bench/core-handoff.ts): the lock core's hand-off, host-native,
 * no dma-buf. Two peers take turns holding one "turn": the holder waits until the other peer is queued for
 * it and has had `settleMs` to fall asleep, stores the release time (nowNs: process.hrtime, which is
 * CLOCK_MONOTONIC on Linux, one clock for every thread and process) into the shared words and releases; the
 * other peer's acquire() resolving ends one sample. The same harness runs every kind of turn:
 * - 'WwMutex': the bare lock core, a WwMutex keyed by `job.key` and a fresh AcquireContext per hand-off
 *   (as figure 9's mutexTurnLock);
 * - 'async-mutex': one Mutex shared by two async tasks of one thread (the same-thread baseline);
 * - 'Atomics.waitAsync': no lock logic, a turn word of a SharedArrayBuffer passed with Atomics.notify and
 *   awaited with Atomics.waitAsync (the cross-thread floor);
 * - 'futex doorbell': no lock logic, a turn word in memory mapped MAP_SHARED by native.storeAttach, passed
 *   with futex(FUTEX_WAKE) on the waiter's bell word, which its native.doorbell thread (FUTEX_WAIT) hands to
 *   its event loop as a callback (the cross-process floor: how the lock core wakes another process too).
 *
 * Runs in three places: in the bench's own thread (playTurns(), two at once), as a worker_thread
 * (workerData { coreHandOff: SharedArrayBuffer }: one job per message, answers one message each), or as a
 * child process (argv[2]: the shared file, argv[3]: its size; one job per stdin line, one result per stdout
 * line; exits when stdin closes).
 */
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { Mutex, MutexInterface } from 'async-mutex';
import { WwClass, WwMutex, type AcquireContext } from '../lib';
import { native } from '../lib/kernel/native';
import { nowMs, nowNs, sleep } from './util';

/** What is handed off. */
export type CoreTurnKind = 'WwMutex' | 'async-mutex' | 'Atomics.waitAsync' | 'futex doorbell';

/** What one peer does in one ping-pong. */
export interface CoreHandOffJob {
  /** 0 or 1. */
  side: number;
  kind: CoreTurnKind;
  /** The WwMutex's key (a decimal bigint: jobs travel as JSON). */
  key: string;
  /** Where this ping-pong's words are: slot n is bytes [n x SLOT_BYTES, (n+1) x SLOT_BYTES) (n >= 1). */
  slot: number;
  /** Hand-offs in all (both peers, the `warm` unsampled ones included); then both peers stop. */
  total: number;
  /** The first `warm` hand-offs are not sampled. */
  warm: number;
  /** Lock+unlock cycles before the ping-pong (both peers at once), for the kinds that are locks. */
  warmLocks: number;
  /** How long the holder keeps the turn once the other peer is queued, so that it is asleep (ms). */
  settleMs: number;
}

/** What one peer saw in one ping-pong. */
export interface CoreHandOffSide {
  /** ns from the other side's release to this side's acquire() resolving, one per sampled hand-off. */
  samples: number[];
  /** Times this side re-took a lock it had just released although the other side was queued for it. */
  retaken: number;
}

/** Bytes of one ping-pong's words; slot 0 holds the two doorbell words (32-bit words 0 and 1). */
export const SLOT_BYTES = 64;
/** 64-bit words of a slot. */
const T_RELEASE = 0;
const RELEASER = 1;
const DONE = 2;
const READY = 3;
const QUEUED = 4; // + side
/** The turn word of the lock-free kinds: 32-bit word 12 of the slot (the side that holds the turn). */
const TURN_I32 = 12;
/** A peer gives up if the other is not queued (or not ready) within this time (it died or never started). */
const PEER_TIMEOUT_MS = 60_000;

/** One turn taken in turns. acquire() queues synchronously, before it returns its promise. */
interface Turn {
  acquire(): Promise<void>;
  release(): void;
  /** Is it a lock (an uncontended lock+unlock exists, and the releaser may re-take it)? */
  isLock: boolean;
  close(): void;
}

/** The bare lock core: a WwMutex keyed by `key`, a fresh acquire context per hand-off. */
function wwTurn(key: bigint, side: number): Turn {
  const cls = new WwClass('wound-wait', 'bench-9c');
  const mutex = new WwMutex(cls, key);
  let ctx: AcquireContext | undefined;
  return {
    acquire: () => {
      ctx = cls.acquireContext({ name: `handoff-${side}` });
      return mutex.lock(ctx, 'write');
    },
    release: () => {
      mutex.unlock(ctx as AcquireContext);
      (ctx as AcquireContext).fini();
    },
    isLock: true,
    close: () => mutex.dispose(),
  };
}

/** async-mutex: one Mutex shared by both peers (two async tasks of one thread). */
function asyncMutexTurn(mutex: Mutex): Turn {
  let release: MutexInterface.Releaser | undefined;
  return {
    acquire: async () => {
      release = await mutex.acquire();
    },
    release: () => (release as MutexInterface.Releaser)(),
    isLock: true,
    close: () => undefined,
  };
}

/** Atomics.waitAsync (Node >= 16; the compiler's ES library here predates its typings). */
const waitAsync = (Atomics as unknown as {
  waitAsync(i32: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync.bind(Atomics);

/** The cross-thread floor: the turn word passed with Atomics.notify, awaited with Atomics.waitAsync. */
function waitAsyncTurn(i32: Int32Array, turn: number, side: number): Turn {
  return {
    acquire: async () => {
      for (;;) {
        const v = Atomics.load(i32, turn);
        if (v === side) return;
        const w = waitAsync(i32, turn, v);
        if (w.async) await w.value;
      }
    },
    release: () => {
      Atomics.store(i32, turn, 1 - side);
      Atomics.notify(i32, turn, 1);
    },
    isLock: false,
    close: () => undefined,
  };
}

/** A peer process's doorbell: started on its bell word at the first 'futex doorbell' job, kept for the next. */
let bellWaiter: (() => void) | undefined;
let bellRung = false;
let bellStarted = false;

/**
 * Starts this process's doorbell on its bell word (32-bit word `side` of slot 0) and returns once it has
 * answered: the doorbell thread reads the word's value when it first runs, so a change made before that
 * (the peer's first ring, under load) would be lost; ringing our own bell until the callback comes proves
 * the thread is in its wait loop.
 */
async function startBell(buffer: ArrayBuffer, i32: Int32Array, side: number): Promise<void> {
  if (!bellStarted) {
    native.doorbell(buffer, side, () => {
      bellRung = true;
      const wake = bellWaiter;
      bellWaiter = undefined;
      wake?.();
    });
    bellStarted = true;
  }
  const giveUp = nowMs() + PEER_TIMEOUT_MS;
  while (!bellRung) {
    if (nowMs() > giveUp) throw new Error(`core hand-off peer: the doorbell thread did not answer within ${PEER_TIMEOUT_MS} ms`);
    Atomics.add(i32, side, 1);
    native.futexWake(buffer, side, 1);
    await sleep(1);
  }
}

/**
 * The cross-process floor: the turn word passed by storing it and futex-waking the waiter's bell word
 * (32-bit word `side` of slot 0), on which its doorbell thread sleeps in FUTEX_WAIT and hands the change
 * to the event loop as a callback.
 */
function doorbellTurn(buffer: ArrayBuffer, i32: Int32Array, turn: number, side: number): Turn {
  return {
    acquire: async () => {
      // The check and the waiter's registration run in one go: the callback runs on this thread, later.
      while (Atomics.load(i32, turn) !== side) await new Promise<void>((resolve) => (bellWaiter = resolve));
    },
    release: () => {
      Atomics.store(i32, turn, 1 - side);
      Atomics.add(i32, 1 - side, 1);
      native.futexWake(buffer, 1 - side, 1);
    },
    isLock: false,
    close: () => undefined,
  };
}

/** Resolves once the other peer is queued (its flag), then `settleMs` later. */
async function untilPeerQueued(words: BigInt64Array, peer: number, settleMs: number): Promise<void> {
  const giveUp = nowMs() + PEER_TIMEOUT_MS;
  while (Atomics.load(words, QUEUED + peer) === 0n) {
    if (nowMs() > giveUp) throw new Error(`core hand-off peer: the other peer did not queue within ${PEER_TIMEOUT_MS} ms`);
    await sleep(1);
  }
  await sleep(settleMs);
}

/**
 * Plays one side of a ping-pong over `turn` in the words of `job.slot`: the warm-up (lock+unlock cycles for
 * the locks, both peers at once), a meeting point (both ready), then hand-offs until `job.total`.
 */
async function play(job: CoreHandOffJob, buffer: ArrayBufferLike, turn: Turn): Promise<CoreHandOffSide> {
  const words = new BigInt64Array(buffer, job.slot * SLOT_BYTES, SLOT_BYTES / 8);
  const me = BigInt(job.side + 1);
  const samples: number[] = [];
  let retaken = 0;
  if (turn.isLock) {
    for (let i = 0; i < job.warmLocks; i++) {
      await turn.acquire();
      turn.release();
    }
  }
  Atomics.add(words, READY, 1n);
  const giveUp = nowMs() + PEER_TIMEOUT_MS;
  while (Atomics.load(words, READY) < 2n) {
    if (nowMs() > giveUp) throw new Error(`core hand-off peer: the other peer did not get ready within ${PEER_TIMEOUT_MS} ms`);
    await sleep(1);
  }
  for (;;) {
    const acquired = turn.acquire();
    Atomics.store(words, QUEUED + job.side, 1n);
    await acquired;
    const acquiredNs = nowNs();
    Atomics.store(words, QUEUED + job.side, 0n);
    const done = Atomics.load(words, DONE);
    if (done >= BigInt(job.total)) {
      turn.release();
      return { samples, retaken };
    }
    const releaser = Atomics.load(words, RELEASER);
    if (done >= BigInt(job.warm) && releaser === me) retaken++;
    else if (done >= BigInt(job.warm) && releaser !== 0n) samples.push(Number(acquiredNs - Atomics.load(words, T_RELEASE)));
    await untilPeerQueued(words, 1 - job.side, job.settleMs);
    Atomics.store(words, RELEASER, me);
    Atomics.store(words, DONE, done + 1n);
    Atomics.store(words, T_RELEASE, nowNs());
    turn.release();
    // Let a waiter of this thread run before this side queues again: its latency is the release's.
    await new Promise(setImmediate);
  }
}

/**
 * Plays `job` in this thread over `buffer` (a SharedArrayBuffer, or the shared file's mapping in a peer
 * process); `mutex` is the async-mutex both in-thread peers share.
 */
export async function playTurns(job: CoreHandOffJob, buffer: ArrayBufferLike, mutex?: Mutex): Promise<CoreHandOffSide> {
  const i32 = new Int32Array(buffer);
  const turnWord = (job.slot * SLOT_BYTES) / 4 + TURN_I32;
  let turn: Turn;
  if (job.kind === 'WwMutex') turn = wwTurn(BigInt(job.key), job.side);
  else if (job.kind === 'async-mutex') {
    if (!mutex) throw new Error('core hand-off peer: async-mutex runs only in the bench thread');
    turn = asyncMutexTurn(mutex);
  } else if (job.kind === 'Atomics.waitAsync') turn = waitAsyncTurn(i32, turnWord, job.side);
  else {
    if (buffer instanceof SharedArrayBuffer) throw new Error('core hand-off peer: the futex doorbell runs only in a peer process');
    await startBell(buffer as ArrayBuffer, i32, job.side);
    turn = doorbellTurn(buffer as ArrayBuffer, i32, turnWord, job.side);
  }
  try {
    return await play(job, buffer, turn);
  } finally {
    turn.close();
  }
}

/** Entry of a worker_thread: plays each job posted to it, answers with what it saw (or { error }). */
function runAsWorker(buffer: SharedArrayBuffer): void {
  parentPort!.on('message', (job: CoreHandOffJob) => {
    playTurns(job, buffer).then(
      (side) => parentPort!.postMessage(side),
      (err: unknown) => parentPort!.postMessage({ error: String((err as Error).stack ?? err) }),
    );
  });
}

/** Entry of a child process: maps the shared file, plays one job per stdin line, answers one line each. */
async function runAsProcess(file: string, size: number): Promise<void> {
  const buffer = native.storeAttach(fs.openSync(file, 'r+'), size);
  for await (const line of readline.createInterface({ input: process.stdin })) {
    let answer: CoreHandOffSide | { error: string };
    try {
      answer = await playTurns(JSON.parse(line) as CoreHandOffJob, buffer);
    } catch (err) {
      answer = { error: String((err as Error).stack ?? err) };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  }
}

if (!isMainThread && (workerData as { coreHandOff?: SharedArrayBuffer } | null)?.coreHandOff) {
  runAsWorker((workerData as { coreHandOff: SharedArrayBuffer }).coreHandOff);
} else if (isMainThread && require.main === module) {
  runAsProcess(process.argv[2] as string, Number(process.argv[3])).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`core-handoff-peer ${process.pid}: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
