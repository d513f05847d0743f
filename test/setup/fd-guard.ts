/**
 * Every test file must leave the process's fds as it found them: no leaked dup, sync_file or device fd.
 * Registered for every file via jest's setupFilesAfterEnv.
 */
import * as fs from 'node:fs';

function openFds(): Map<string, string> {
  const fds = new Map<string, string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      fds.set(fd, fs.readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // The directory fd readdir used is gone by now.
    }
  }
  return fds;
}

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
