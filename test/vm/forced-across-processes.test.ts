// The watchdog across processes: a holder in another process that keeps its lock past maxHoldMs is forced
// off by a waiter here, through its process's revoker thread (native), even while its event loop is
// blocked; its CPU view is replaced by scratch memory first, so its late writes never reach the buffer.
// A stopped holder cannot be revoked: waiters time out rather than get an unsafe grant.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DmaBuf, DmabufSync, type DmabufError } from '../../lib';
import { cpuBuffer } from './fixtures/kernel-features';

jest.setTimeout(300_000);

const HOLDER = path.join(__dirname, 'fixtures', 'stuck-holder.js');

interface Holder {
  proc: ChildProcess;
  /** Resolves with the holder's last line (its unlock result) when it exits. */
  done: Promise<{ unlock: string; writes: number }>;
  exited: () => boolean;
}

/** Starts stuck-holder with `buf` as fd 3; resolves once it holds the buffer and has written word 0. */
async function startHolder(buf: DmaBuf, job: Record<string, unknown>): Promise<Holder> {
  const proc = spawn(process.execPath, [HOLDER, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit', buf.fd], env: process.env });
  let out = '';
  let exited = false;
  let onHeld: () => void = () => {};
  const held = new Promise<void>((resolve) => (onHeld = resolve));
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.startsWith('held\n')) onHeld();
  });
  const done = new Promise<{ unlock: string; writes: number }>((resolve, reject) => {
    proc.once('exit', (code, signal) => {
      exited = true;
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{')) reject(new Error(`holder exited with ${code ?? signal}: ${out}`));
      else resolve(JSON.parse(last) as { unlock: string; writes: number });
    });
  });
  await Promise.race([held, done]);
  return { proc, done, exited: () => exited };
}

/** Word `i` of the buffer, read through a fresh read-only mapping (no lock: the test watches the bytes). */
function word(buf: DmaBuf, i: number): number {
  const m = buf.map({ writable: false });
  try {
    return new Uint32Array(m.buffer)[i] as number;
  } finally {
    m.release();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves once process `pid` is stopped (state T in /proc/<pid>/stat). */
async function stopped(pid: number): Promise<void> {
  for (;;) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')) return;
    await sleep(10);
  }
}

test('a holder spinning with a blocked event loop is forced off past maxHoldMs; its later writes do not reach the buffer', async () => {
  const buf = cpuBuffer(4096);
  try {
    const holder = await startHolder(buf, { mode: 'spin', maxHoldMs: 300, spinMs: 8000 });
    expect(word(buf, 0)).toBe(1);
    const sync = DmabufSync.init({ name: 'waiter' });
    sync.get(buf, 'read');
    await sync.lock({ timeoutMs: 60_000 });
    // Granted while the holder still spins (its loop never ran since it printed "held").
    expect(holder.exited()).toBe(false);
    const atGrant = word(buf, 1);
    await sleep(1000);
    expect(holder.exited()).toBe(false);
    // The holder kept writing (into scratch memory): the buffer did not change.
    expect(word(buf, 1)).toBe(atGrant);
    await sync.unlock();
    sync.fini();
    const result = await holder.done;
    expect(result.unlock).toBe('ETIMEDOUT');
    expect(result.writes).toBeGreaterThan(atGrant);
    expect(word(buf, 1)).toBe(atGrant);
  } finally {
    buf.close();
  }
});

test('a SIGSTOPped holder: waiters get ETIMEDOUT, never the buffer; after SIGCONT its view is scratch and the buffer is granted', async () => {
  const buf = cpuBuffer(4096);
  let holder: Holder | undefined;
  try {
    // The holder stops itself right after printing "held" (its deadline is 1 s later).
    holder = await startHolder(buf, { mode: 'stop', maxHoldMs: 1000 });
    await stopped(holder.proc.pid!);
    const sync = DmabufSync.init({ name: 'waiter' });
    sync.get(buf, 'write');
    // Well past the holder's deadline: its revoker thread is stopped too, so nothing may force it.
    await expect(sync.lock({ timeoutMs: 3000 })).rejects.toMatchObject({ code: 'ETIMEDOUT' } satisfies Partial<DmabufError>);
    holder.proc.kill('SIGCONT');
    await sync.lock({ timeoutMs: 60_000 });
    const atGrant = word(buf, 1);
    await sleep(500);
    // The holder's timer still writes every 20 ms, into scratch memory now.
    expect(word(buf, 1)).toBe(atGrant);
    await sync.unlock();
    sync.fini();
    holder.proc.kill('SIGTERM');
    const result = await holder.done;
    expect(result.unlock).toBe('ETIMEDOUT');
    expect(result.writes).toBeGreaterThan(atGrant);
  } finally {
    if (holder !== undefined && !holder.exited()) holder.proc.kill('SIGKILL');
    buf.close();
  }
});
