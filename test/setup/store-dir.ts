/**
 * Each test file gets its own lock store directory (DMABUF_SYNC_STORE_DIR), so that test files running in
 * parallel processes do not share locks, and attaches to its default store before fd-guard takes its
 * snapshot (the store's fd stays open for the life of the thread, by design). Child processes and workers
 * inherit the variable, so they share the file's store.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { STORE_DIR_ENV } from '../../lib/ww/store-file';
import { lockStore } from '../../lib/ww/lock-store';

// Under the run's base directory (scripts/jest-store-dir.js removes it at the end of the run).
const base = process.env.DMABUF_SYNC_TEST_BASE ?? os.tmpdir();
const dir = fs.mkdtempSync(path.join(base, 'file-'));
process.env[STORE_DIR_ENV] = dir;
lockStore();
