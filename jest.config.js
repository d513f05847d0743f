// Tests are compiled by tsc (npm run build:ts) and jest runs the JavaScript: no transform step, which keeps
// the emulated test VM fast. "unit" runs on any host; "vm" needs real udmabuf/dma-heap/vgem devices (the
// VM is emulated, so scripts/test-vm.sh gives its tests a 120 s timeout); "display" needs the VM with an emulated
// display (scripts/test-display.sh runs it once per device).
const os = require('node:os');
const path = require('node:path');
module.exports = {
  globalSetup: '<rootDir>/scripts/jest-store-dir.js',
  globalTeardown: '<rootDir>/scripts/jest-store-dir.js',
  cacheDirectory: path.join(os.tmpdir(), 'dmabuf-sync-jest'),
  projects: [
    { displayName: 'unit', testEnvironment: 'node', setupFilesAfterEnv: ['<rootDir>/dist/test/setup/store-dir.js', '<rootDir>/dist/test/setup/fd-guard.js'], testMatch: ['<rootDir>/dist/test/unit/**/*.test.js', '<rootDir>/dist/test/both/**/*.test.js'] },
    { displayName: 'vm', testEnvironment: 'node', setupFilesAfterEnv: ['<rootDir>/dist/test/setup/store-dir.js', '<rootDir>/dist/test/setup/fd-guard.js'], testMatch: ['<rootDir>/dist/test/vm/**/*.test.js', '<rootDir>/dist/test/both/**/*.test.js'] },
    { displayName: 'display', testEnvironment: 'node', setupFilesAfterEnv: ['<rootDir>/dist/test/setup/store-dir.js', '<rootDir>/dist/test/setup/fd-guard.js'], testMatch: ['<rootDir>/dist/test/display/**/*.test.js'] },
  ],
};
