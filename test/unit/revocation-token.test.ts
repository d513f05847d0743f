// Revocation tokens (lib/ww/revocation.ts): made in JavaScript, unique in the process across its threads.
import { Worker } from 'node:worker_threads';
import { newRevocationToken } from '../../lib/ww/revocation';
import { native } from '../../lib/kernel/native';

/** Every token this thread made in these tests. */
const made = new Set<bigint>();

test('tokens are never 0n and never repeat in a thread', () => {
  for (let i = 0; i < 10_000; i++) made.add(newRevocationToken());
  expect(made.size).toBe(10_000);
  expect(made.has(0n)).toBe(false);
});

test("another thread's tokens are not this thread's, nor the addon's own counter's", async () => {
  const src = `
    const { parentPort } = require('node:worker_threads');
    const { newRevocationToken } = require(${JSON.stringify(require.resolve('../../lib/ww/revocation'))});
    parentPort.postMessage(Array.from({ length: 10000 }, () => newRevocationToken()));`;
  const w = new Worker(src, { eval: true });
  const theirs = await new Promise<bigint[]>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await w.terminate();
  expect(new Set(theirs).size).toBe(10_000);
  expect(theirs.filter((t) => made.has(t))).toEqual([]);
  const addon = native.newRevocationToken();
  expect(made.has(addon) || theirs.includes(addon)).toBe(false);
});

test('a token is accepted by the addon (a non-zero 64-bit value)', () => {
  expect(native.revokeToken(newRevocationToken())).toBe(0);
});
