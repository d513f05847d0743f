// DmaBufs passed over Unix sockets (sendDmaBufs / receiveDmaBufs) with real dma-bufs: to an unrelated
// process that connects to a socket path (same inode, its writes seen here, the same locks), several
// buffers per message, a full socket buffer, concurrent calls, and a peer that sends something else; every
// fd counted through /proc/self/fd. Without a dma-buf: test/both/fd-passing.test.ts.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as net from 'node:net';
import { DmaBuf, DmabufSync, receiveDmaBufs, sendDmaBufs } from '../../lib';
import { cpuBuffer } from './fixtures/kernel-features';
import { openFds, sendRaw, settle, socketPair, type SocketPair } from '../helpers/unix-socket';

jest.setTimeout(300_000);

const PAGE = 4096;
const PEER = path.join(__dirname, 'fixtures', 'fd-passing-peer.js');

let dir: string;
let pair: SocketPair | undefined;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmabuf-sync-fdpass-'));
});
afterEach(async () => {
  await pair?.close();
  pair = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

function word(buf: DmaBuf): number {
  const m = buf.map({ writable: false });
  const v = new Uint32Array(m.buffer)[0] as number;
  m.release();
  return v;
}

function setWord(buf: DmaBuf, value: number): void {
  const m = buf.map();
  new Uint32Array(m.buffer)[0] = value;
  m.release();
}

const code = (c: string): unknown => expect.objectContaining({ name: 'DmabufError', code: c });

test('an unrelated child connects to a socket path: the buffers it receives are ours (same inode), its writes are seen here, our lock excludes it, and it sends one back', async () => {
  const before = openFds();
  const where = path.join(dir, 'peer.sock');
  const listener = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => listener.listen(where, resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  // No buffer in its stdio: the child inherits nothing but stdin/stdout/stderr.
  const child = spawn(process.execPath, [PEER, where], { stdio: ['pipe', 'pipe', 'inherit'], env: process.env });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const ask = async (command: string): Promise<Record<string, unknown>> => {
    child.stdin.write(command + '\n');
    const next = await lines.next();
    if (next.done) throw new Error(`the child exited before answering ${command}`);
    return JSON.parse(next.value) as Record<string, unknown>;
  };
  const conn = await accepted;
  const bufs = [cpuBuffer(PAGE), cpuBuffer(2 * PAGE)];
  try {
    setWord(bufs[0]!, 7);
    await sendDmaBufs(conn, bufs);
    const got = await ask('receive');
    expect(got.inodes).toEqual(bufs.map((b) => String(b.inode)));

    // The child's writes land in our buffer.
    await ask('write 3735928559');
    expect(word(bufs[0]!)).toBe(3735928559);

    // A lock taken here (DmabufSync's defaults) is the child's lock too: its tryLock fails until we unlock.
    const sync = DmabufSync.init({ name: 'parent' });
    sync.get(bufs[0]!, 'write');
    await sync.lock();
    expect(await ask('trylock')).toEqual({ got: false });
    await sync.unlock();
    sync.fini();
    expect(await ask('trylock')).toEqual({ got: true });

    // And back: a buffer the child allocated (and closed on its side as soon as it had sent it).
    const incoming = receiveDmaBufs(conn, { timeoutMs: 60_000 });
    const sent = await ask('send 24301');
    const [theirs] = await incoming;
    try {
      expect(String(theirs!.inode)).toBe(sent.inode);
      expect(word(theirs!)).toBe(24301);
    } finally {
      theirs!.close();
    }
    expect(await ask('exit')).toEqual({ ok: true });
    expect(await exited).toBe(0);
  } finally {
    child.kill();
    bufs.forEach((b) => b.close());
    const closed = new Promise((r) => conn.once('close', r));
    conn.destroy();
    await closed;
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  }
  await settle();
  expect(openFds()).toEqual(before);
});

test('several buffers in one message arrive in order as DmaBufs of their own (same inode, size, exporter); the sender may close its buffers at once', async () => {
  pair = await socketPair(dir);
  const bufs = [cpuBuffer(PAGE), cpuBuffer(3 * PAGE), cpuBuffer(PAGE)];
  bufs.forEach((b, i) => setWord(b, 100 + i));
  const facts = bufs.map((b) => ({ inode: b.inode, size: b.size, exporter: b.exporter }));
  const sent = sendDmaBufs(pair.client, bufs);
  bufs.forEach((b) => b.close());
  await sent;
  const got = await receiveDmaBufs(pair.server, { timeoutMs: 60_000 });
  try {
    expect(got.map((b) => ({ inode: b.inode, size: b.size, exporter: b.exporter }))).toEqual(facts);
    // Readable after the sender closed every fd it had: the received fds are this side's own.
    expect(got.map(word)).toEqual([100, 101, 102]);
  } finally {
    got.forEach((b) => b.close());
  }
});

test('a full socket buffer: sends wait through libuv (the event loop runs on) and every message arrives, in order', async () => {
  pair = await socketPair(dir);
  const buf = cpuBuffer(PAGE);
  const count = 500;
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 1);
  try {
    let settled = 0;
    const sends = Array.from({ length: count }, () => sendDmaBufs(pair!.client, [buf], { timeoutMs: 120_000 }).finally(() => settled++));
    await new Promise((r) => setTimeout(r, 200));
    // The kernel took what fits in the socket buffer; the rest wait for POLLOUT while timers keep running.
    expect(settled).toBeGreaterThan(0);
    expect(settled).toBeLessThan(count);
    expect(ticks).toBeGreaterThan(0);
    for (let i = 0; i < count; i++) {
      const [b] = await receiveDmaBufs(pair.server, { timeoutMs: 60_000 });
      expect(b!.inode).toBe(buf.inode);
      b!.close();
    }
    await Promise.all(sends);
  } finally {
    clearInterval(ticker);
    buf.close();
  }
});

test('concurrent calls on one socket run one at a time, in call order', async () => {
  pair = await socketPair(dir);
  const bufs = Array.from({ length: 4 }, () => cpuBuffer(PAGE));
  try {
    const receives = bufs.map(() => receiveDmaBufs(pair!.server, { timeoutMs: 60_000 }));
    await Promise.all(bufs.map((b) => sendDmaBufs(pair!.client, [b])));
    const got = (await Promise.all(receives)).map((r) => r[0]!);
    expect(got.map((b) => b.inode)).toEqual(bufs.map((b) => b.inode));
    got.forEach((b) => b.close());
  } finally {
    bufs.forEach((b) => b.close());
  }
});

describe('bad input with real dma-bufs: a typed error and every fd closed', () => {
  test('a dma-buf and a plain file in one message: ENOTTY, the dma-buf received is closed too', async () => {
    pair = await socketPair(dir);
    const buf = cpuBuffer(PAGE);
    const before = openFds();
    const file = fs.openSync(path.join(dir, 'plain'), 'w+');
    expect(sendRaw(pair.client, 2, [buf.fd, file])).toBe(16);
    fs.closeSync(file);
    await expect(receiveDmaBufs(pair.server, { timeoutMs: 60_000 })).rejects.toEqual(
      expect.objectContaining({ code: 'ENOTTY', message: expect.stringMatching(/not dma-bufs \(#1: .*plain\); all 2 were closed/) }),
    );
    await settle();
    expect(openFds()).toEqual(before);
    // The stream is still in step: the next message is received.
    await sendDmaBufs(pair.client, [buf]);
    const [again] = await receiveDmaBufs(pair.server, { timeoutMs: 60_000 });
    expect(again!.inode).toBe(buf.inode);
    again!.close();
    buf.close();
  });

  test('more buffers than maxBuffers (MSG_CTRUNC): EMSGSIZE, the ones that arrived closed, the next message fine', async () => {
    pair = await socketPair(dir);
    const bufs = [cpuBuffer(PAGE), cpuBuffer(PAGE), cpuBuffer(PAGE)];
    const before = openFds();
    await sendDmaBufs(pair.client, bufs);
    await expect(receiveDmaBufs(pair.server, { maxBuffers: 2, timeoutMs: 60_000 })).rejects.toEqual(code('EMSGSIZE'));
    await settle();
    expect(openFds()).toEqual(before);
    await sendDmaBufs(pair.client, bufs.slice(0, 2));
    const got = await receiveDmaBufs(pair.server, { maxBuffers: 2, timeoutMs: 60_000 });
    expect(got.map((b) => b.inode)).toEqual(bufs.slice(0, 2).map((b) => b.inode));
    got.forEach((b) => b.close());
    bufs.forEach((b) => b.close());
  });

  test('a closed DmaBuf: EBADF and nothing sent; a peer that has gone: EPIPE', async () => {
    pair = await socketPair(dir);
    const [open, closed] = [cpuBuffer(PAGE), cpuBuffer(PAGE)];
    closed.close();
    const before = openFds();
    await expect(sendDmaBufs(pair.client, [open, closed])).rejects.toEqual(
      expect.objectContaining({ code: 'EBADF', message: expect.stringContaining('bufs[1] is closed') }),
    );
    await expect(receiveDmaBufs(pair.server, { timeoutMs: 100 })).rejects.toEqual(code('ETIMEDOUT'));
    const gone = new Promise((r) => pair!.server.once('close', r));
    pair.server.destroy();
    await gone;
    await settle(); // the timed-out wait's dup of the server's socket closes in this loop turn's close phase
    await expect(sendDmaBufs(pair.client, [open])).rejects.toEqual(code('EPIPE'));
    await settle();
    expect(openFds().filter((f) => !before.includes(f))).toEqual([]);
    open.close();
  });

  test('no fd growth over 200 send/receive cycles', async () => {
    pair = await socketPair(dir);
    const buf = cpuBuffer(PAGE);
    const cycle = async (): Promise<void> => {
      await sendDmaBufs(pair!.client, [buf]);
      const [b] = await receiveDmaBufs(pair!.server, { timeoutMs: 60_000 });
      b!.close();
    };
    await cycle();
    await settle();
    const before = openFds();
    for (let i = 0; i < 200; i++) await cycle();
    await settle();
    expect(openFds()).toEqual(before);
    buf.close();
  });
});
