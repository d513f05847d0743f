// sendDmaBufs / receiveDmaBufs without a dma-buf: argument errors, sockets that cannot carry fds, and a
// peer that sends something else (plain files, a pipe, too many fds, bytes that are not a message, nothing).
// Every failure is a typed error and closes every fd it received: counted through /proc/self/fd.
// The dma-buf paths (buffers exchanged with another process, locks): test/vm/fd-passing.test.ts.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { DmaBuf, DmabufError, receiveDmaBufs, sendDmaBufs } from '../../lib';
import { native } from '../../lib/kernel/native';
import { checkArgument } from '../helpers/any-argument';
import { openFds, sendRaw as sendRawFrom, settle, socketFd, socketPair as pairIn } from '../helpers/unix-socket';

jest.setTimeout(60_000);

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmabuf-sync-fdpass-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const socketPair = (): ReturnType<typeof pairIn> => pairIn(dir);
/** Sends a raw message from `socket` as a misbehaving peer would: all 16 header bytes go out. */
function sendRaw(socket: net.Socket, count: number, fds: number[]): void {
  expect(sendRawFrom(socket, count, fds)).toBe(16);
}

const code = (c: string): unknown => expect.objectContaining({ name: 'DmabufError', code: c });

describe('arguments', () => {
  test('socket, bufs and options of sendDmaBufs / receiveDmaBufs: typed errors naming them', async () => {
    const closed = new net.Socket(); // never connected: valid options end in EBADF
    await checkArgument('socket', (v) => sendDmaBufs(v as net.Socket, [{} as DmaBuf]));
    await checkArgument('socket', (v) => receiveDmaBufs(v as net.Socket, { timeoutMs: 0 }));
    await checkArgument('bufs', (v) => sendDmaBufs(closed, v as DmaBuf[]));
    await checkArgument('bufs', (v) => sendDmaBufs(closed, [v as DmaBuf]));
    await checkArgument('options', (v) => receiveDmaBufs(closed, v as never));
    await checkArgument('options', (v) => receiveDmaBufs(closed, { timeoutMs: v as number }));
    await checkArgument('options', (v) => receiveDmaBufs(closed, { maxBuffers: v as number }));
    await checkArgument('options', (v) => receiveDmaBufs(closed, { signal: v as AbortSignal }));
  });

  test('an empty array, a non-DmaBuf element, more than 253 buffers: TypeError / RangeError', async () => {
    const s = new net.Socket();
    await expect(sendDmaBufs(s, [])).rejects.toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('"bufs"') });
    await expect(sendDmaBufs(s, [3 as unknown as DmaBuf])).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"bufs[0]"') });
    await expect(sendDmaBufs(s, 'buf' as unknown as DmaBuf[])).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    await expect(sendDmaBufs(s, new Array(254).fill({}))).rejects.toMatchObject({ name: 'RangeError', message: expect.stringContaining('1 to 253') });
    await expect(receiveDmaBufs(s, { maxBuffers: 0 })).rejects.toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    await expect(receiveDmaBufs(s, { maxBuffers: 254 })).rejects.toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    await expect(receiveDmaBufs({ _handle: { fd: 0 } } as unknown as net.Socket)).rejects.toMatchObject({ name: 'TypeError', message: expect.stringContaining('net.Socket') });
  });

  test('an already aborted signal: AbortError', async () => {
    const { server, close } = await socketPair();
    try {
      await expect(receiveDmaBufs(server, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    } finally {
      await close();
    }
  });
});

describe('sockets that cannot carry fds', () => {
  test('a net.Socket over a pipe: ENOTSOCK', async () => {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const before = openFds();
    const pipe = new net.Socket({ fd: fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK), readable: true, writable: true });
    try {
      await expect(receiveDmaBufs(pipe, { timeoutMs: 1000 })).rejects.toEqual(code('ENOTSOCK'));
      await expect(receiveDmaBufs(pipe)).rejects.toThrow(/not a socket; pass a net.Socket connected over a Unix socket path/);
    } finally {
      pipe.destroy();
      await new Promise((r) => pipe.once('close', r));
    }
    await settle();
    expect(openFds()).toEqual(before);
  });

  test('a socket that never connected, or was destroyed: EBADF', async () => {
    await expect(receiveDmaBufs(new net.Socket())).rejects.toEqual(code('EBADF'));
    const { client, server, close } = await socketPair();
    try {
      // Destroyed while a receive waits: rejected at once, its dup closed.
      const pending = receiveDmaBufs(server);
      await new Promise((r) => setImmediate(r));
      server.destroy();
      await expect(pending).rejects.toEqual(expect.objectContaining({ code: 'EBADF', message: expect.stringContaining('closed during the call') }));
      await expect(receiveDmaBufs(server)).rejects.toEqual(expect.objectContaining({ code: 'EBADF', message: expect.stringContaining('destroyed') }));
      client.destroy();
      await expect(receiveDmaBufs(client)).rejects.toEqual(code('EBADF'));
    } finally {
      await close();
    }
  });

  test('a net.Socket still connecting to a path nobody listens on: the connect error', async () => {
    const s = net.connect(path.join(dir, 'nobody'));
    const closed = new Promise((r) => s.once('close', r));
    s.on('error', () => undefined);
    const listeners = ['connect', 'error'].map((e) => s.listenerCount(e));
    await expect(receiveDmaBufs(s, { timeoutMs: 5000 })).rejects.toEqual(code('ENOENT'));
    await closed;
    expect(['connect', 'error'].map((e) => s.listenerCount(e))).toEqual(listeners);
  });
});

describe('a peer that sends something else', () => {
  test('plain files and a pipe through SCM_RIGHTS: ENOTTY, every received fd closed', async () => {
    const { client, server, close } = await socketPair();
    try {
      const before = openFds();
      const file = fs.openSync(path.join(dir, 'plain'), 'w+');
      const readOnly = fs.openSync(path.join(dir, 'plain'), 'r');
      const pending = receiveDmaBufs(server, { timeoutMs: 10_000 });
      await new Promise((r) => setImmediate(r)); // waiting in libuv
      sendRaw(client, 3, [file, readOnly, file]);
      fs.closeSync(file);
      fs.closeSync(readOnly);
      await expect(pending).rejects.toEqual(expect.objectContaining({ code: 'ENOTTY', message: expect.stringMatching(/not dma-bufs \(#0: .*plain, #1: .*plain, #2: .*plain\); all 3 were closed/) }));
      await settle();
      expect(openFds()).toEqual(before);

      // A pipe (a FIFO) and a socket (the sender's own): same.
      execFileSync('mkfifo', [path.join(dir, 'fifo')]);
      const fifo = fs.openSync(path.join(dir, 'fifo'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      const next = receiveDmaBufs(server, { timeoutMs: 10_000 });
      sendRaw(client, 2, [fifo, socketFd(client)]);
      fs.closeSync(fifo);
      await expect(next).rejects.toEqual(expect.objectContaining({ code: 'ENOTTY', message: expect.stringMatching(/\(#0: .*fifo, #1: socket:\[\d+\]\); all 2 were closed/) }));
      await settle();
      expect(openFds()).toEqual(before);
    } finally {
      await close();
    }
  });

  test('more fds than maxBuffers (MSG_CTRUNC): EMSGSIZE, the fds that arrived closed, the stream still usable', async () => {
    const { client, server, close } = await socketPair();
    try {
      const file = fs.openSync(path.join(dir, 'plain'), 'w+');
      const before = openFds();
      sendRaw(client, 5, [file, file, file, file, file]);
      await expect(receiveDmaBufs(server, { maxBuffers: 2, timeoutMs: 10_000 })).rejects.toEqual(
        expect.objectContaining({ code: 'EMSGSIZE', message: expect.stringContaining('sent 5 buffers, more than maxBuffers (2)') }),
      );
      await settle();
      expect(openFds()).toEqual(before);
      // The header was read whole: the next message is read normally (and is refused for its content only).
      sendRaw(client, 1, [file]);
      await expect(receiveDmaBufs(server, { timeoutMs: 10_000 })).rejects.toEqual(code('ENOTTY'));
      await settle();
      expect(openFds()).toEqual(before);
      fs.closeSync(file);
      expect(server.destroyed).toBe(false);
    } finally {
      await close();
    }
  });

  test('a header whose count disagrees with the fds carried: EPROTO, fds closed', async () => {
    const { client, server, close } = await socketPair();
    try {
      const file = fs.openSync(path.join(dir, 'plain'), 'w+');
      const before = openFds();
      sendRaw(client, 2, [file]);
      await expect(receiveDmaBufs(server, { timeoutMs: 10_000 })).rejects.toEqual(
        expect.objectContaining({ code: 'EPROTO', message: expect.stringContaining('announced 2 buffers but carried 1') }),
      );
      await settle();
      expect(openFds()).toEqual(before);
      fs.closeSync(file);
    } finally {
      await close();
    }
  });

  test('bytes that are not a message: EPROTO and the socket destroyed (the stream is out of step)', async () => {
    const { client, server, close } = await socketPair();
    try {
      const file = fs.openSync(path.join(dir, 'plain'), 'w+');
      const before = openFds();
      const fd = socketFd(client);
      native.sendFds(fd, new Uint8Array(Buffer.from('GET / HTTP/1.1\r\n\r\n')), Int32Array.of(file));
      await expect(receiveDmaBufs(server, { timeoutMs: 10_000 })).rejects.toEqual(
        expect.objectContaining({ code: 'EPROTO', message: expect.stringContaining('1 fds closed, socket destroyed') }),
      );
      expect(server.destroyed).toBe(true);
      await settle();
      expect(openFds().filter((f) => !before.includes(f))).toEqual([]); // nothing new (the server's own fd is gone)
      fs.closeSync(file);
    } finally {
      await close();
    }
  });

  test('the peer closes: ECONNRESET; a peer that never sends: ETIMEDOUT; an abort: AbortError', async () => {
    const { client, server, close } = await socketPair();
    try {
      await expect(receiveDmaBufs(server, { timeoutMs: 50 })).rejects.toEqual(code('ETIMEDOUT'));
      const ac = new AbortController();
      const aborted = receiveDmaBufs(server, { signal: ac.signal });
      setTimeout(() => ac.abort(new Error('stop')), 20);
      await expect(aborted).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
      client.end();
      await expect(receiveDmaBufs(server, { timeoutMs: 10_000 })).rejects.toEqual(code('ECONNRESET'));
      // Nothing was destroyed by us: no byte of a message had been read.
      expect(server.destroyed).toBe(false);
    } finally {
      await close();
    }
  });

  test('queued receives: a later one times out on its own deadline while an earlier one waits', async () => {
    const { server, close } = await socketPair();
    try {
      const listeners = server.listenerCount('close');
      const first = receiveDmaBufs(server, { timeoutMs: 2000 });
      await expect(receiveDmaBufs(server, { timeoutMs: 30 })).rejects.toEqual(
        expect.objectContaining({ code: 'ETIMEDOUT', message: expect.stringContaining('an earlier receiveDmaBufs') }),
      );
      // Many queued calls share one 'close' listener, removed when the last ends.
      const queued = Array.from({ length: 20 }, () => receiveDmaBufs(server, { timeoutMs: 50 }));
      expect(server.listenerCount('close')).toBe(listeners + 1);
      await Promise.allSettled(queued);
      await expect(first).rejects.toEqual(code('ETIMEDOUT'));
      expect(server.listenerCount('close')).toBe(listeners);
    } finally {
      await close();
    }
  });
});

describe('the socket rule: Node must not read the socket', () => {
  test('bytes Node already read: EBUSY, and Node reads no more once a call came', async () => {
    const { client, server, close } = await socketPair();
    try {
      // The user's mistake: a 'readable' listener starts Node's reading, and libuv read()s what arrives
      // (with a peer's fds, the kernel would have closed them).
      client.write('xyz');
      await new Promise((r) => server.once('readable', r));
      expect(server.readableLength).toBe(3);
      await expect(receiveDmaBufs(server, { timeoutMs: 1000 })).rejects.toEqual(
        expect.objectContaining({ code: 'EBUSY', message: expect.stringContaining('pauseOnConnect') }),
      );
      // The call stopped Node's reading: what arrives now stays in the kernel for recvmsg.
      client.write('more');
      await new Promise((r) => setTimeout(r, 100));
      expect(server.readableLength).toBe(3);
    } finally {
      await close();
    }
  });

  test('sockets Node reads from the start (no pauseOnConnect, no pause()) stop being read at the first call, made in the same tick', async () => {
    const listener = net.createServer();
    const where = path.join(dir, 'flowing');
    await new Promise<void>((resolve) => listener.listen(where, resolve));
    const file = fs.openSync(path.join(dir, 'plain'), 'w+');
    // Node starts reading a server connection in its constructor, and a client on connect; a first call
    // (here one that times out at once) stops that before libuv reads anything.
    const accepted = new Promise<{ conn: net.Socket; first: Promise<unknown> }>((resolve) => listener.once('connection', (conn: net.Socket) => {
      resolve({ conn, first: receiveDmaBufs(conn, { timeoutMs: 1 }).catch((err: unknown) => err) });
    }));
    const client = net.connect(where);
    const connected = new Promise((r) => client.once('connect', r));
    const clientFirst = receiveDmaBufs(client, { timeoutMs: 1 }).catch((err: unknown) => err);
    const { conn, first } = await accepted;
    await connected;
    expect(await first).toEqual(code('ETIMEDOUT'));
    expect(await clientFirst).toEqual(code('ETIMEDOUT'));
    // Messages arrive while no call is pending: Node reads none of them...
    sendRaw(conn, 1, [file]);
    sendRaw(client, 1, [file]);
    await new Promise((r) => setTimeout(r, 100));
    expect([client.readableLength, conn.readableLength]).toEqual([0, 0]);
    // ...so both fds are there for the next calls (plain files: ENOTTY naming them).
    const plain = expect.objectContaining({ code: 'ENOTTY', message: expect.stringContaining('plain') });
    await expect(receiveDmaBufs(client, { timeoutMs: 10_000 })).rejects.toEqual(plain);
    await expect(receiveDmaBufs(conn, { timeoutMs: 10_000 })).rejects.toEqual(plain);
    fs.closeSync(file);
    const closed = [client, conn].map((sock) => new Promise((r) => sock.once('close', r)));
    client.destroy();
    conn.destroy();
    await Promise.all(closed);
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  });

  test('DmabufError is what the calls reject with for socket trouble', async () => {
    await expect(receiveDmaBufs(new net.Socket())).rejects.toBeInstanceOf(DmabufError);
  });
});
