// jest globalSetup and globalTeardown (the same module, called twice in jest's parent process): one base
// directory for the lock stores of this run, inherited by every test process through the environment;
// test/setup/store-dir.ts gives each test file its own directory under it. Removed at the end of the run.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

module.exports = async () => {
  if (globalThis.__dmabufStoreBase === undefined) {
    const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
    globalThis.__dmabufStoreBase = fs.mkdtempSync(path.join(base, 'dmabuf-sync-test-'));
    process.env.DMABUF_SYNC_TEST_BASE = globalThis.__dmabufStoreBase;
  } else {
    fs.rmSync(globalThis.__dmabufStoreBase, { recursive: true, force: true });
  }
};
