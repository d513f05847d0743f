/**
 * Passing DmaBufs to an unrelated process over a Unix domain socket (SCM_RIGHTS), with Node's `net` sockets.
 * What arrives is an ordinary DmaBuf: the receiver's own fd for the same file, so the same inode and the
 * same locks as the sender's.
 *
 * Wire format: one message per sendDmaBufs() call, a 16-byte header — the magic `dmabufs1`, the buffer count
 * (u32, little-endian), 4 zero bytes — sent in one sendmsg() that carries the fds as SCM_RIGHTS. The kernel
 * attaches the fds to the header's first byte, and a receiver that reads exactly one header per message
 * never reads into the next one, so every message's fds come with its own header.
 *
 * The rule for the socket: it carries only these messages, and Node never reads it. Node's libuv would
 * otherwise read() the bytes into the stream, and the kernel closes the fds of anything read without
 * recvmsg(): they would be lost. So each call pauses the stream and stops the handle's reading (Node does
 * the same for a `pauseOnConnect` connection); the only window is before the first call, and nothing is read
 * there when the first call comes in the same tick as 'connection' (or after `net.connect()`), or when the
 * socket is made paused (`net.createServer({ pauseOnConnect: true })`, `socket.pause()` before it connects).
 * Bytes Node already read make the call fail with EBUSY. Do not `socket.write()`, resume() it or add
 * 'data' listeners. Calls on one socket run one at a time per direction, in call order. A call interrupted
 * in the middle of a message (never seen in practice: a header is one skb) leaves the stream out of step,
 * so the socket is destroyed.
 *
 * The syscalls never block: sendmsg/recvmsg with MSG_DONTWAIT on the library's own dup of the socket, and
 * on EAGAIN a libuv poll for POLLOUT/POLLIN (waitFdReady) before trying again.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { native } from './native';
import { DmaBuf } from './dma-buf';
import { OwnedFd } from './owned-fd';
import { isDmaBuf } from './fdinfo';
import { deadlineOf, waitFdReady, type WaitOptions } from './fd-wait';
import { abortError, argRangeError, argTypeError, DmabufError, fromNative, kernelCall, optionsOf } from '../errors';
import { setDeadlineTimer } from '../deadline-timer';

/** Options of receiveDmaBufs(). */
export interface ReceiveDmaBufsOptions extends WaitOptions {
  /**
   * The most buffers one message may bring (1…253, default 253). The kernel closes fds beyond it, and the
   * call fails with EMSGSIZE: a peer cannot fill this process's fd table.
   */
  maxBuffers?: number;
}

const MAGIC = 'dmabufs1';
/** @internal Bytes of a message's header; the fds are attached to its first byte. */
export const HEADER_BYTES = 16;
const NO_FDS = new Int32Array(0);

/** @internal The header of a message announcing `count` buffers. */
export function encodeHeader(count: number): Uint8Array {
  const header = new Uint8Array(HEADER_BYTES);
  header.set(Buffer.from(MAGIC, 'latin1'));
  new DataView(header.buffer).setUint32(8, count, true);
  return header;
}

/** The buffer count of a header, or undefined when it is not one of ours. */
function decodeHeader(header: Uint8Array): number | undefined {
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (Buffer.from(header.subarray(0, 8)).toString('latin1') !== MAGIC || view.getUint32(12, true) !== 0) return undefined;
  return view.getUint32(8, true);
}

/** The internals of a net.Socket we use: its libuv handle (a Pipe for a Unix socket). */
interface StreamHandle {
  fd?: unknown;
  reading?: boolean;
  readStop?: () => number;
}

function handleOf(socket: net.Socket): StreamHandle | null {
  return (socket as unknown as { _handle?: StreamHandle | null })._handle ?? null;
}

/** Stops Node from reading the socket: the stream paused, the handle's libuv reads stopped. */
function stopNodeReading(socket: net.Socket): void {
  socket.pause();
  const handle = handleOf(socket);
  if (handle?.reading && typeof handle.readStop === 'function') {
    handle.reading = false;
    handle.readStop();
  }
}

/** What an fd is, for error messages: /proc/self/fd's link ('pipe:[123]', '/tmp/file', …). */
function describeFd(fd: number): string {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return 'unknown';
  }
}

function closeFds(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      native.close(fd);
    } catch {
      // Already gone.
    }
  }
}

/** What the library keeps for a socket while calls on it are pending or queued. */
interface SocketState {
  /** The tail of each direction's queue: calls run one at a time per direction, in call order. */
  readonly tails: { send: Promise<void>; receive: Promise<void> };
  /** The pending calls, interrupted together when the socket closes (one 'close' listener for them all). */
  readonly calls: Set<SocketCall>;
  readonly onClose: () => void;
}
const states = new WeakMap<net.Socket, SocketState>();

/**
 * One sendDmaBufs/receiveDmaBufs call on a socket: its turn in the socket's queue, its dup of the socket fd,
 * and the ways it can be interrupted (deadline, abort, the socket closing).
 */
class SocketCall {
  readonly #interrupt = new AbortController();
  readonly #state: SocketState;
  #socketClosed = false;
  readonly #onAbort = (): void => this.#interrupt.abort();

  constructor(
    readonly socket: net.Socket,
    readonly what: string,
    readonly deadline: number,
    readonly signal: AbortSignal | undefined,
  ) {
    let state = states.get(socket);
    if (state === undefined) {
      const calls = new Set<SocketCall>();
      const created: SocketState = {
        tails: { send: Promise.resolve(), receive: Promise.resolve() },
        calls,
        onClose: () => calls.forEach((c) => c.#closed()),
      };
      socket.once('close', created.onClose);
      states.set(socket, created);
      state = created;
    }
    state.calls.add(this);
    this.#state = state;
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    if (signal?.aborted) this.#interrupt.abort();
  }

  /** The socket closed: every wait of this call ends with EBADF. */
  #closed(): void {
    this.#socketClosed = true;
    this.#interrupt.abort();
  }

  /** Removes the listeners; call exactly once, when the call ends. */
  end(): void {
    this.signal?.removeEventListener('abort', this.#onAbort);
    const state = this.#state;
    state.calls.delete(this);
    if (state.calls.size === 0 && states.get(this.socket) === state) {
      this.socket.removeListener('close', state.onClose);
      states.delete(this.socket);
    }
  }

  /** Why the call was interrupted (the socket closed, or the caller aborted). */
  #interruption(): Error {
    if (this.#socketClosed) return new DmabufError('EBADF', `${this.what}: the socket was closed during the call`);
    return abortError(this.signal!);
  }

  #timeout(waitingFor: string): DmabufError {
    return new DmabufError('ETIMEDOUT', `${this.what}: timed out waiting for ${waitingFor}; raise timeoutMs, or check that the peer is running and calls ${this.what.startsWith('send') ? 'receiveDmaBufs' : 'sendDmaBufs'}`);
  }

  /** Resolves as `promise` does, or rejects at the deadline, on abort, or when the socket closes. */
  bounded<T>(promise: Promise<T>, waitingFor: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (fn: () => void): void => {
        cancelTimer();
        this.#interrupt.signal.removeEventListener('abort', onInterrupt);
        fn();
      };
      const onInterrupt = (): void => settle(() => reject(this.#interruption()));
      if (this.#interrupt.signal.aborted) {
        reject(this.#interruption());
        return;
      }
      this.#interrupt.signal.addEventListener('abort', onInterrupt, { once: true });
      const cancelTimer = setDeadlineTimer(this.deadline, () => settle(() => reject(this.#timeout(waitingFor))));
      promise.then((v) => settle(() => resolve(v)), (err: unknown) => settle(() => reject(err)));
    });
  }

  /** Waits (through libuv) until `fd` is ready for `events`, within the call's bounds. */
  async ready(fd: number, events: number, waitingFor: string): Promise<void> {
    try {
      await waitFdReady(fd, events, waitingFor, { deadline: this.deadline, signal: this.#interrupt.signal });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ABORT_ERR') throw this.#interruption();
      if (code === 'ETIMEDOUT') throw this.#timeout(waitingFor);
      throw err;
    }
  }

  /**
   * Waits for this call's turn on the socket, for the socket to be connected, stops Node's reading and
   * returns the library's dup of the socket fd. `release` must be called when the call ends.
   */
  async open(direction: 'send' | 'receive'): Promise<{ sock: OwnedFd; release: () => void }> {
    const tails = this.#state.tails;
    const before = tails[direction];
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    tails[direction] = before.then(() => mine);
    try {
      await this.bounded(before, `an earlier ${this.what} on this socket`);
      const socket = this.socket;
      if (socket.connecting) {
        let detach = (): void => undefined;
        const connected = new Promise<void>((resolve, reject) => {
          const onError = (err: Error): void => {
            detach();
            reject(new DmabufError((err as { code?: string }).code ?? 'ECONNREFUSED', `${this.what}: the socket did not connect: ${err.message}`, { cause: err }));
          };
          // Synchronous, before Node's own first read on connect: the stream is paused already, so Node skips it.
          const onConnect = (): void => {
            detach();
            stopNodeReading(socket);
            resolve();
          };
          detach = (): void => {
            socket.removeListener('connect', onConnect);
            socket.removeListener('error', onError);
          };
          socket.once('connect', onConnect);
          socket.once('error', onError);
        });
        try {
          await this.bounded(connected, 'the socket to connect');
        } finally {
          detach(); // also when the deadline or an abort came first
        }
      }
      return { sock: this.#claim(direction === 'send'), release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Checks that the socket is an open, connected, unread Unix stream socket (and, for `sending`, that no
   * socket.write() is pending); returns a dup of its fd.
   */
  #claim(sending: boolean): OwnedFd {
    const socket = this.socket;
    const handle = handleOf(socket);
    if (socket.destroyed || handle === null) {
      throw new DmabufError('EBADF', `${this.what}: the socket is not connected or was destroyed; pass a connected net.Socket`);
    }
    stopNodeReading(socket);
    if (socket.readableLength > 0) {
      throw new DmabufError(
        'EBUSY',
        `${this.what}: Node already read ${socket.readableLength} bytes from this socket, and the kernel dropped any fds they carried. ` +
          'Keep Node from reading it: net.createServer({ pauseOnConnect: true }), or socket.pause() right after net.connect(), ' +
          'or call sendDmaBufs/receiveDmaBufs in the same tick; never add \'data\' listeners',
      );
    }
    const fd = handle.fd;
    if (typeof fd !== 'number' || fd < 0) {
      throw new DmabufError('ENOTSOCK', `${this.what}: this net.Socket has no file descriptor (not an OS socket); pass a net.Socket connected over a Unix socket path`);
    }
    let type: { domain: number; type: number };
    try {
      type = native.socketType(fd);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOTSOCK') {
        throw new DmabufError('ENOTSOCK', `${this.what}: the net.Socket is over ${describeFd(fd)}, not a socket; pass a net.Socket connected over a Unix socket path`, { cause: err });
      }
      throw fromNative(err, this.what);
    }
    if (type.domain !== native.constants.AF_UNIX || type.type !== native.constants.SOCK_STREAM) {
      throw new DmabufError(
        'EINVAL',
        `${this.what}: the socket is not a Unix domain stream socket (domain ${type.domain}, type ${type.type}); fds pass only over Unix sockets: use net.connect(path) / net.createServer().listen(path)`,
      );
    }
    if (sending && socket.writableLength > 0) {
      throw new DmabufError('EBUSY', `${this.what}: ${socket.writableLength} bytes of socket.write() are pending on this socket; do not mix socket.write() with sendDmaBufs`);
    }
    return OwnedFd.dup(fd, 'socket');
  }
}

function checkSocket(socket: unknown): net.Socket {
  if (!(socket instanceof net.Socket)) {
    throw argTypeError('socket', 'a net.Socket connected over a Unix socket path', socket);
  }
  return socket;
}

/** Validates the options and starts a call on the (checked) socket: the SocketCall's listeners are live. */
function begin(socket: net.Socket, what: string, options: WaitOptions | null | undefined): SocketCall {
  const deadline = deadlineOf(options);
  const signal = optionsOf(options).signal;
  if (signal?.aborted) throw abortError(signal);
  // At once, before any await: libuv reads only when the loop polls, so nothing was read since the caller's
  // tick began, and a socket still connecting never starts Node's reading.
  stopNodeReading(socket);
  return new SocketCall(socket, what, deadline, signal);
}

/**
 * Sends DmaBufs to the process at the other end of a Unix domain socket, which receives them with
 * {@link receiveDmaBufs}. The fds travel as SCM_RIGHTS in one message; the peer gets its own fds for the
 * same buffers (same inodes, so the same locks). The call dups the buffers' fds at once: you may close
 * `bufs` as soon as it returns.
 *
 * The socket carries only these messages and Node must not read it (see docs/processes.md, "Passing
 * buffers to other processes"); the call pauses it. Never blocks the event loop: a full socket buffer is
 * waited for through libuv.
 * @param socket a net.Socket connected over a Unix socket path (`net.connect(path)`, or a connection of a
 *   `net.Server` listening on a path), or over a socketpair.
 * @param bufs 1 to 253 open DmaBufs (the kernel's limit per message).
 * @param options `timeoutMs`/`deadline` and `signal` bound the wait for room in the socket buffer.
 * @returns resolves once the kernel has queued the message for the peer.
 * @throws TypeError/RangeError (ERR_INVALID_ARG_TYPE/ERR_OUT_OF_RANGE) for a bad argument; DmabufError
 *   EBADF (a closed DmaBuf or socket), ENOTSOCK (not a socket), EINVAL (not a Unix stream socket), EBUSY
 *   (Node read or writes this socket), EPIPE (the peer closed), ETIMEDOUT; an AbortError on abort.
 */
export function sendDmaBufs(socket: net.Socket, bufs: readonly DmaBuf[], options?: WaitOptions): Promise<void> {
  let call: SocketCall;
  const dups: OwnedFd[] = [];
  try {
    checkSocket(socket);
    if (!Array.isArray(bufs)) throw argTypeError('bufs', 'an array of DmaBufs', bufs);
    if (bufs.length === 0 || bufs.length > native.constants.SCM_MAX_FD) {
      throw argRangeError('bufs', `an array of 1 to ${native.constants.SCM_MAX_FD} DmaBufs`, bufs);
    }
    for (let i = 0; i < bufs.length; i++) { // not forEach: it skips the holes of a sparse array
      const b: unknown = bufs[i];
      if (!(b instanceof DmaBuf)) throw argTypeError(`bufs[${i}]`, 'a DmaBuf', b);
      if (b.closed) throw new DmabufError('EBADF', `sendDmaBufs: bufs[${i}] is closed; send open DmaBufs`);
    }
    call = begin(socket, 'sendDmaBufs', options);
    // Our own fds for the buffers: the caller may close theirs meanwhile, and a reused fd number is never sent.
    try {
      for (const b of bufs) dups.push(OwnedFd.dup(b.fd, 'DmaBuf'));
    } catch (err) {
      call.end();
      throw err;
    }
  } catch (err) {
    dups.forEach((d) => d.close());
    return Promise.reject(err);
  }
  return send(call, dups).finally(() => {
    call.end();
    dups.forEach((d) => d.close());
  });
}

async function send(call: SocketCall, dups: readonly OwnedFd[]): Promise<void> {
  const { sock, release } = await call.open('send');
  const header = encodeHeader(dups.length);
  const fds = Int32Array.from(dups, (d) => d.fd);
  let sent = 0;
  try {
    while (sent < header.length) {
      const n = kernelCall(call.what, () => native.sendFds(sock.fd, header.subarray(sent), sent === 0 ? fds : NO_FDS));
      if (n < 0) await call.ready(sock.fd, native.constants.POLLOUT, 'room in the socket buffer (the peer is not receiving)');
      else sent += n;
    }
  } catch (err) {
    if (sent > 0) call.socket.destroy(); // half a message went out: the stream is out of step
    throw err;
  } finally {
    sock.close();
    release();
  }
}

/**
 * Receives the DmaBufs of one {@link sendDmaBufs} message from the peer of a Unix domain socket. They are
 * ordinary DmaBufs holding this process's own fds (close them when done): the same buffers as the sender's,
 * so the same inodes and the same locks.
 *
 * The socket carries only these messages and Node must not read it (see docs/processes.md, "Passing
 * buffers to other processes"); the call pauses it. Waits through libuv, never blocking the event loop.
 * @param socket a net.Socket connected over a Unix socket path, or over a socketpair.
 * @param options `timeoutMs`/`deadline` and `signal` bound the wait; `maxBuffers` caps one message.
 * @returns the buffers, in the order they were sent.
 * @throws TypeError/RangeError for a bad argument; DmabufError EBADF (the socket is closed), ENOTSOCK,
 *   EINVAL (not a Unix stream socket), EBUSY (Node read this socket), ECONNRESET (the peer closed first),
 *   ENOTTY (the peer sent fds that are not dma-bufs), EMSGSIZE (more than `maxBuffers`), EMFILE (this
 *   process's fd limit cut the message), EPROTO (not a dmabuf-sync message: the socket is destroyed),
 *   ETIMEDOUT; an AbortError on abort. On every error each fd received is closed.
 */
export function receiveDmaBufs(socket: net.Socket, options?: ReceiveDmaBufsOptions): Promise<DmaBuf[]> {
  let call: SocketCall;
  let maxBuffers: number;
  try {
    checkSocket(socket);
    const max = optionsOf(options).maxBuffers ?? native.constants.SCM_MAX_FD;
    if (typeof max !== 'number') throw argTypeError('options.maxBuffers', 'a number', max);
    if (!Number.isInteger(max) || max < 1 || max > native.constants.SCM_MAX_FD) {
      throw argRangeError('options.maxBuffers', `an integer from 1 to ${native.constants.SCM_MAX_FD}`, max);
    }
    maxBuffers = max;
    call = begin(socket, 'receiveDmaBufs', options);
  } catch (err) {
    return Promise.reject(err);
  }
  return receive(call, maxBuffers).finally(() => call.end());
}

async function receive(call: SocketCall, maxBuffers: number): Promise<DmaBuf[]> {
  const { sock, release } = await call.open('receive');
  const header = new Uint8Array(HEADER_BYTES);
  const fds: number[] = [];
  let truncated = false;
  let got = 0;
  try {
    while (got < HEADER_BYTES) {
      // Control room only with the header's first byte: that is where the sender's fds are attached.
      const r = kernelCall(call.what, () => native.recvFds(sock.fd, header.subarray(got), got === 0 ? maxBuffers : 0));
      if (r === null) {
        await call.ready(sock.fd, native.constants.POLLIN, 'a message from the peer');
        continue;
      }
      fds.push(...r.fds);
      truncated ||= r.truncated;
      if (r.bytes === 0) {
        if (got > 0) throw new DmabufError('EPROTO', `${call.what}: the peer closed the connection in the middle of a message`);
        throw new DmabufError('ECONNRESET', `${call.what}: the peer closed the connection (end of stream) before sending DmaBufs`);
      }
      got += r.bytes;
    }
  } catch (err) {
    closeFds(fds);
    if (got > 0) call.socket.destroy(); // half a message was read: the stream is out of step
    throw err;
  } finally {
    sock.close();
    release();
  }
  return adoptAll(call, decodeHeader(header), fds, truncated, maxBuffers);
}

/** Checks a complete message and wraps its fds in DmaBufs; on any error closes every one of them and throws. */
function adoptAll(call: SocketCall, count: number | undefined, fds: number[], truncated: boolean, maxBuffers: number): DmaBuf[] {
  try {
    checkMessage(call, count, fds, truncated, maxBuffers);
  } catch (err) {
    closeFds(fds);
    throw err;
  }
  const bufs: DmaBuf[] = [];
  let next = 0;
  try {
    // adopt() owns its fd from the call on (it closes it itself if it throws).
    for (; next < fds.length; next++) bufs.push(DmaBuf.adopt(fds[next]!));
  } catch (err) {
    bufs.forEach((b) => b.close());
    closeFds(fds.slice(next + 1));
    throw err;
  }
  return bufs;
}

/** Throws when a complete message is not what sendDmaBufs sends, or did not arrive whole. */
function checkMessage(call: SocketCall, count: number | undefined, fds: readonly number[], truncated: boolean, maxBuffers: number): void {
  const what = call.what;
  if (count === undefined || count === 0 || count > native.constants.SCM_MAX_FD) {
    call.socket.destroy(); // not our framing: nothing after it can be trusted
    throw new DmabufError('EPROTO', `${what}: the peer sent something other than a sendDmaBufs message (${fds.length} fds closed, socket destroyed); the socket must carry only sendDmaBufs messages`);
  }
  if (truncated) {
    if (count > maxBuffers) {
      throw new DmabufError('EMSGSIZE', `${what}: the peer sent ${count} buffers, more than maxBuffers (${maxBuffers}); the kernel dropped the rest and the ${fds.length} received were closed`);
    }
    throw new DmabufError('EMFILE', `${what}: the kernel could not install all ${count} fds (MSG_CTRUNC: this process is at its fd limit, ulimit -n); the ${fds.length} received were closed`);
  }
  if (fds.length !== count) {
    throw new DmabufError('EPROTO', `${what}: the message announced ${count} buffers but carried ${fds.length} fds; they were closed`);
  }
  const wrong = fds.map((fd, i) => (isDmaBuf(fd) ? '' : `#${i}: ${describeFd(fd)}`)).filter((s) => s !== '');
  if (wrong.length > 0) {
    throw new DmabufError('ENOTTY', `${what}: the peer sent fds that are not dma-bufs (${wrong.join(', ')}); all ${count} were closed. Send only DmaBufs (sendDmaBufs)`);
  }
}
