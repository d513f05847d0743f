/**
 * The addon works on every Node line the unit tests run on (npm test runs them on 20, 22 and 24).
 *
 * Node 24's executable exports its own instance of a libstdc++ template that the addon also instantiated
 * (std::call_once's trampoline, which reads a thread-local that differs between the two copies): while the
 * addon exported its symbols, the dynamic linker bound the addon's call to Node's copy, and the first
 * read-only view (which installs the write guard once) jumped to null and killed the process. These tests
 * check the cause (what the addon exports) and the effect (a read-only view and the write guard, on the Node
 * that runs them), without a dma-buf: any shared file mapping takes the same path.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from '../../lib/kernel/native';

/** The file node-gyp-build loads for this package (build/Release, or the prebuild). */
function addonFile(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('node-gyp-build') as { resolve(dir: string): string }).resolve(path.join(__dirname, '..', '..', '..'));
}

test('the addon exports only the two N-API entry points (no symbol the Node executable can interpose)', () => {
  const out = execFileSync('readelf', ['--dyn-syms', '--wide', addonFile()], { encoding: 'utf8' });
  // Columns: Num: Value Size Type Bind Vis Ndx Name. Defined (Ndx not UND) global or weak symbols.
  const exported = out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 8 && /^\d+:$/.test(f[0]) && f[6] !== 'UND' && (f[4] === 'GLOBAL' || f[4] === 'WEAK'))
    .map((f) => f[7].replace(/@.*$/, ''))
    .sort();
  expect(exported).toEqual(['napi_register_module_v1', 'node_api_module_get_api_version_v1']);
});

describe(`a read-only view on Node ${process.versions.node} (N-API ${process.versions.napi})`, () => {
  let dir: string;
  let fd = -1;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmabuf-node-line-'));
    fd = fs.openSync(path.join(dir, 'buf'), 'w+');
    fs.writeSync(fd, Buffer.alloc(4096, 7));
  });
  afterEach(() => {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('maps, lends and reads; a store is caught by the write guard and never reaches the file', () => {
    const owner = native.map(fd, 4096, false);
    const view = native.lendView(owner, native.newRevocationToken());
    const bytes = new Uint8Array(view);
    expect(bytes[0]).toBe(7);
    bytes[0] = 42; // lands in a private copy of the page
    expect(bytes[0]).toBe(42);
    expect(native.returnView(view)).toBe(2); // 2: the guard caught a store
    expect(view.byteLength).toBe(0); // detached
    expect(native.unmap(owner)).toBe(2);
    const file = Buffer.alloc(1);
    fs.readSync(fd, file, 0, 1, 0);
    expect(file[0]).toBe(7);
  });

  test('a view that was only read comes back clean (1) and its mapping is reusable', () => {
    const owner = native.map(fd, 4096, false);
    for (let i = 0; i < 3; i++) {
      const view = native.lendView(owner, native.newRevocationToken());
      expect(new Uint8Array(view)[4095]).toBe(7);
      expect(native.returnView(view)).toBe(1);
    }
    expect(native.unmap(owner)).toBe(1);
  });
});
