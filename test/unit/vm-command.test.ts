/**
 * `npm run vm -- node -e "<script>"` must hand the VM's shell every argument byte for byte: scripts/vm.sh
 * writes the command into a script that the VM's /bin/sh runs (dash in the x64 chroot of the host root,
 * busybox ash in the arm user space). Here that very script is run by those shells on this host.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..', '..');
// Newlines, both quotes, $ and backticks, a backslash, a tab, non-ASCII: what re-quoting tends to break.
const script = [
  "const s = 'single' + \"double\";",
  'const d = `$HOME ${1 + 1} \\\\ \t ü`;',
  'process.stdout.write(JSON.stringify([s, d, process.argv.slice(1)]));',
].join('\n');
const extra = ["it's", '$(echo no)', 'a\nb', ''];

function commandScript(): string {
  return execFileSync('bash', [path.join(root, 'scripts', 'vm.sh'), '--print-command', process.execPath, '-e', script, ...extra], {
    encoding: 'utf8',
  });
}

const shells = [['/bin/sh'], ['/bin/dash'], ['/bin/busybox', 'sh']].filter(([sh]) => fs.existsSync(sh));

test('a shell to run it exists on this host', () => {
  expect(shells.length).toBeGreaterThan(0);
});

test.each(shells)('%s runs the command with every argument intact', (...sh) => {
  const out = execFileSync(sh[0], [...sh.slice(1), '-c', commandScript()], { encoding: 'utf8' });
  expect(JSON.parse(out)).toEqual(['singledouble', `$HOME 2 \\ \t ü`, extra]);
});
