/**
 * Helpers of the fd-passing tests: a connected pair of net.Sockets over a Unix socket path, a raw sender that
 * plays a misbehaving peer, and the process's open fds (to show that nothing leaks).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { native } from '../../lib/kernel/native';
import { encodeHeader } from '../../lib/kernel/fd-passing';

/** A connected pair. */
export interface SocketPair {
  /** As `net.connect(path).pause()` gives it. */
  client: net.Socket;
  /** The connection of a `net.createServer({ pauseOnConnect: true })`. */
  server: net.Socket;
  /** Destroys both, waits until libuv has closed their fds, closes the listener. */
  close(): Promise<void>;
}

/** A connected pair over a Unix socket path in `dir`. */
export async function socketPair(dir: string): Promise<SocketPair> {
  const listener = net.createServer({ pauseOnConnect: true });
  const where = path.join(dir, `s${Math.random().toString(36).slice(2)}`);
  await new Promise<void>((resolve) => listener.listen(where, resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const client = net.connect(where).pause();
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  const server = await accepted;
  // Registered now: a destroyed socket's `closed` is true before libuv has closed its fd, 'close' comes after.
  const closed = [client, server].map((s) => new Promise((r) => s.once('close', r)));
  return {
    client,
    server,
    close: async () => {
      client.destroy();
      server.destroy();
      await Promise.all(closed);
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

/** Lets libuv run the close callbacks of finished waits (they close the waits' dups). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

/** The fds of this process, as 'fd -> target' (the directory fd that readdir used is closed by then: left out). */
export function openFds(): string[] {
  const fds: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      fds.push(`${fd} -> ${fs.readlinkSync(`/proc/self/fd/${fd}`)}`);
    } catch {
      // readdir's own directory fd
    }
  }
  return fds.sort();
}

/** The OS fd of a net.Socket. */
export function socketFd(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

/**
 * Sends a raw message from `socket` — a header announcing `count` buffers, with `fds` attached — as a
 * misbehaving peer would. Returns the bytes sent.
 */
export function sendRaw(socket: net.Socket, count: number, fds: number[]): number {
  return native.sendFds(socketFd(socket), encodeHeader(count), Int32Array.from(fds));
}
