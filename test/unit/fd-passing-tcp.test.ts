// fds pass only over Unix domain sockets: a TCP connection is refused with EINVAL (host only: the test VM
// has no loopback network).
import * as net from 'node:net';
import { receiveDmaBufs } from '../../lib';

test('a TCP socket: EINVAL, naming what to use instead', async () => {
  const listener = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  const server = await accepted;
  const closed = [client, server].map((s) => new Promise((r) => s.once('close', r)));
  try {
    await expect(receiveDmaBufs(server, { timeoutMs: 1000 })).rejects.toEqual(
      expect.objectContaining({ name: 'DmabufError', code: 'EINVAL', message: expect.stringContaining('not a Unix domain stream socket') }),
    );
    await expect(receiveDmaBufs(client, { timeoutMs: 1000 })).rejects.toEqual(expect.objectContaining({ code: 'EINVAL' }));
  } finally {
    client.destroy();
    server.destroy();
    await Promise.all(closed);
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  }
});
