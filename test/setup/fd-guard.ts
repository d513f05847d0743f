/**
 * Every test file must leave the process's fds as it found them: no leaked dup, sync_file or device fd.
 * Registered for every file via jest's setupFilesAfterEnv.
 */
import { openFds } from '../helpers/kernel-fds';

let before: Map<string, string>;
beforeAll(() => {
  before = openFds();
});
afterAll(async () => {
  // Let finished uv_poll handles run their close callbacks (they close the waiters' dups).
  // A cancelled waiter closes its dup in uv_close's callback, in the close phase after this check phase.
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  const after = openFds();
  const leaked = [...after].filter(([fd, target]) => before.get(fd) !== target).map(([fd, t]) => `${fd} -> ${t}`);
  expect(leaked).toEqual([]);
});
