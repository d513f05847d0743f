/**
 * One side of figure 9's hand-off ping-pong: two peers take turns locking one dma-buf. The holder waits
 * until the other peer is queued in lock() and has had `settleMs` to fall asleep, then writes the release
 * time (CLOCK_MONOTONIC, comparable across threads and processes) into the buffer and unlocks; the other
 * peer's lock() resolves, it reads that time from the buffer and records the difference: one hand-off.
 *
 * Runs in three places: in the bench's own thread (handOffPeer(), two at once: async tasks of one thread),
 * as a worker_thread (workerData { handOff: job, fd }: posts what it saw), or as a child process (argv[2]:
 * the JSON job, the buffer as fd 3: prints them as JSON). Both peers warm up first, then meet (READY).
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { DmaBuf, DmabufSync, WwClass, WwMutex, query, type AcquireContext } from '../lib';
import { nowMs, nowNs, sleep } from './util';

/** The lock a hand-off passes: DmabufSync on the buffer (what users call), or the bare WwMutex of its inode. */
export type HandOffLock = 'DmabufSync' | 'WwMutex';

/** What one peer does. */
export interface HandOffJob {
  /** 0 or 1. */
  side: number;
  lock: HandOffLock;
  /** Hand-offs in all (both peers, the `warm` unsampled ones included); then both peers stop. */
  total: number;
  /** Lock+unlock cycles before the ping-pong (both peers at once, so the wait path warms up too). */
  warmLocks: number;
  /** The first `warm` hand-offs are not sampled (the JIT warms up). */
  warm: number;
  /** How long the holder keeps the lock once the other peer is queued, so that it is asleep (ms). */
  settleMs: number;
}

/** Words at the start of the buffer, written only under the lock. */
const T_RELEASE = 0;
const RELEASER = 1;
const DONE = 2;
/** Peers done with their warm-up: the ping-pong starts when both are (else one side's hand-offs would go to the other's warm-up). */
const READY = 3;
const WORDS = 4;
/** A holder gives up if the other peer is not queued within this time (it died or never started). */
const PEER_TIMEOUT_MS = 60_000;

/** One lock of the buffer taken in turns: acquire() resolves with the buffer's first words. */
interface TurnLock {
  acquire(): Promise<BigInt64Array>;
  release(): Promise<void> | void;
  close(): void;
}

/** DmabufSync on the buffer: lock() (ww mutex, fence check, SYNC START), map(), unlock(). */
function syncTurnLock(buf: DmaBuf, side: number): TurnLock {
  const sync = DmabufSync.init({ name: `handoff-${side}` });
  sync.get(buf, 'rw');
  return {
    acquire: async () => {
      await sync.lock();
      return new BigInt64Array(sync.map(buf).buffer, 0, WORDS);
    },
    release: () => sync.unlock(),
    close: () => sync.fini(),
  };
}

/** The bare lock core: a WwMutex keyed by the buffer's inode, a fresh acquire context per hand-off. */
function mutexTurnLock(buf: DmaBuf, side: number): TurnLock {
  const cls = new WwClass('wound-wait', 'bench-handoff');
  const mutex = new WwMutex(cls, buf.inode);
  const mapping = buf.map();
  const words = new BigInt64Array(mapping.buffer, 0, WORDS);
  let ctx: AcquireContext | undefined;
  return {
    acquire: async () => {
      ctx = cls.acquireContext({ name: `handoff-${side}` });
      await mutex.lock(ctx, 'write');
      return words;
    },
    release: () => {
      mutex.unlock(ctx as AcquireContext);
      (ctx as AcquireContext).fini();
    },
    close: () => {
      mapping.release();
      mutex.dispose();
    },
  };
}

/** Resolves once another context is queued for `key` (any thread or process), then `settleMs` later. */
async function untilPeerQueued(key: bigint, settleMs: number): Promise<void> {
  const giveUp = nowMs() + PEER_TIMEOUT_MS;
  while (!query().locks.some((l) => l.key === key && l.waiters.length > 0)) {
    if (nowMs() > giveUp) throw new Error(`hand-off peer: nobody queued for the buffer within ${PEER_TIMEOUT_MS} ms`);
    await sleep(1);
  }
  await sleep(settleMs);
}

/** Warms the lock path up (`cycles` lock+unlock), then waits until both peers have. */
async function warmUp(lock: TurnLock, cycles: number): Promise<void> {
  for (let i = 0; i < cycles; i++) {
    await lock.acquire();
    await lock.release();
  }
  const words = await lock.acquire();
  words[READY] = (words[READY] as bigint) + 1n;
  await lock.release();
  const giveUp = nowMs() + PEER_TIMEOUT_MS;
  for (;;) {
    const ready = (await lock.acquire())[READY] as bigint;
    await lock.release();
    if (ready >= 2n) return;
    if (nowMs() > giveUp) throw new Error(`hand-off peer: the other peer did not finish its warm-up within ${PEER_TIMEOUT_MS} ms`);
    await sleep(1);
  }
}

/** What one peer saw: its samples, and how often it took the lock back right after releasing it. */
export interface HandOffSide {
  /** ns from the other side's release to this side's lock() resolving, one per hand-off. */
  samples: number[];
  /**
   * Times this side re-took the lock it had just released although the other side had been queued for it
   * (for at least settleMs): the waiter was overtaken, there was no hand-off.
   */
  retaken: number;
}

/** Plays one side until `job.total` hand-offs (or re-takes) happened. */
export async function handOffPeer(job: HandOffJob, buf: DmaBuf): Promise<HandOffSide> {
  const lock = job.lock === 'DmabufSync' ? syncTurnLock(buf, job.side) : mutexTurnLock(buf, job.side);
  const me = BigInt(job.side + 1);
  const samples: number[] = [];
  let retaken = 0;
  try {
    await warmUp(lock, job.warmLocks);
    for (;;) {
      const words = await lock.acquire();
      const acquiredNs = nowNs();
      const done = words[DONE] as bigint;
      if (done >= BigInt(job.total)) {
        await lock.release();
        return { samples, retaken };
      }
      const releaser = words[RELEASER] as bigint;
      if (done >= BigInt(job.warm) && releaser === me) retaken++;
      else if (done >= BigInt(job.warm) && releaser !== 0n) samples.push(Number(acquiredNs - (words[T_RELEASE] as bigint)));
      await untilPeerQueued(buf.inode, job.settleMs);
      words[RELEASER] = me;
      words[DONE] = done + 1n;
      words[T_RELEASE] = nowNs();
      await lock.release();
      // Let a waiter of this thread run before this side locks again: its latency is the release's, not
      // this side's next lock() call.
      await new Promise(setImmediate);
    }
  } finally {
    lock.close();
  }
}

/** Entry of a worker_thread: dups the buffer's fd, plays, posts what it saw. */
async function runAsWorker(data: { handOff: HandOffJob; fd: number }): Promise<void> {
  const buf = DmaBuf.fromFd(data.fd);
  try {
    parentPort!.postMessage(await handOffPeer(data.handOff, buf));
  } finally {
    buf.close();
  }
}

/** Entry of a child process: the buffer is fd 3; prints what it saw as one JSON line. */
async function runAsProcess(): Promise<void> {
  const buf = DmaBuf.fromFd(3);
  try {
    process.stdout.write(`${JSON.stringify(await handOffPeer(JSON.parse(process.argv[2] as string) as HandOffJob, buf))}\n`);
  } finally {
    buf.close();
  }
}

const fail = (err: unknown): never => {
  process.stderr.write(`handoff-peer ${process.pid}: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
};
if (!isMainThread && (workerData as { handOff?: HandOffJob } | null)?.handOff) {
  // A rejection ends the worker with an 'error' event, which the bench awaits.
  void runAsWorker(workerData as { handOff: HandOffJob; fd: number });
} else if (isMainThread && require.main === module) {
  runAsProcess().catch(fail);
}
