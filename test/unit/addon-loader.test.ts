/**
 * Loading the addon where there is none for this machine (no matching prebuild, nothing built from source),
 * or where the one found does not load, is a DmabufError that says what to do, never node-gyp-build's bare
 * "No native build was found".
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DmabufError } from '../../lib/errors';
import { loadAddon } from '../../lib/kernel/native';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmabuf-addon-'));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'dmabuf-sync-loader-test' }));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function loadError(): DmabufError {
  try {
    loadAddon(dir);
  } catch (err) {
    return err as DmabufError;
  }
  throw new Error('loadAddon did not throw');
}

test('no prebuild and no build: MODULE_NOT_FOUND naming the platform, the approval, the rebuild and the tools', () => {
  // A prebuild for another platform does not count.
  fs.mkdirSync(path.join(dir, 'prebuilds', 'win32-x64'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'prebuilds', 'win32-x64', 'dmabuf-sync.node'), '');
  const err = loadError();
  expect(err).toBeInstanceOf(DmabufError);
  expect(err.code).toBe('MODULE_NOT_FOUND');
  expect(err.message).toContain(`${process.platform}-${process.arch}`);
  expect(err.message).toContain(path.join(dir, 'prebuilds'));
  expect(err.message).toContain('npm install-scripts approve dmabuf-sync');
  expect(err.message).toContain('npm rebuild dmabuf-sync');
  expect(err.message).toMatch(/compiler.*make.*python3.*Node headers/);
  expect(err.cause).toBeInstanceOf(Error);
});

test('a build that does not load here: ERR_DLOPEN_FAILED naming the file and how to rebuild', () => {
  const release = path.join(dir, 'build', 'Release');
  fs.mkdirSync(release, { recursive: true });
  const file = path.join(release, 'dmabuf_sync.node');
  fs.writeFileSync(file, 'not an ELF object');
  const err = loadError();
  expect(err).toBeInstanceOf(DmabufError);
  expect(err.code).toBe('ERR_DLOPEN_FAILED');
  expect(err.message).toContain(file);
  expect(err.message).toContain('npm rebuild dmabuf-sync');
});

test("this package's own addon loads through the same function", () => {
  const binding = loadAddon(path.join(__dirname, '..', '..', '..'));
  expect(typeof binding.dmaBufSync).toBe('function');
  expect(binding.constants.PAGE_SIZE).toBeGreaterThan(0);
});
