/**
 * The README's examples compile against what a user installs: the package is packed (npm pack), the tarball
 * unpacked into a new app's node_modules as npm install would (no install script: nothing is compiled), and every ```ts and ```js block
 * of README.md itself (so the README cannot drift) is type-checked there with tsc --strict, skipLibCheck off,
 * once with --module nodenext (ESM .mts and CommonJS .cts/.cjs: the exports map's `types`) and once with
 * --module commonjs (the `types` field). A README example that uses something the package does not export, or
 * a declaration file that does not compile, fails it.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../../..');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');

/** The fenced ```ts and ```js blocks of a Markdown text, in order. */
export function codeBlocks(markdown: string): { lang: 'ts' | 'js'; code: string }[] {
  const blocks: { lang: 'ts' | 'js'; code: string }[] = [];
  const re = /^```(ts|js)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  for (let m = re.exec(markdown); m; m = re.exec(markdown)) blocks.push({ lang: m[1] as 'ts' | 'js', code: m[2] as string });
  return blocks;
}

/** A JS block may hold several files, each starting with a `// name.js` line. */
function splitFiles(code: string): string[] {
  return code.split(/^(?=\/\/ [\w.-]+\.js\s*$)/m).filter((f) => f.trim() !== '');
}

/** CommonJS has no top-level await: the imports stay on top, the rest runs in an async function. */
function wrapForCommonJs(code: string): string {
  const lines = code.split('\n');
  const imports = lines.filter((l) => /^import\s/.test(l) || /^const .*= require\(/.test(l));
  const body = lines.filter((l) => !imports.includes(l));
  return `${imports.join('\n')}\nexport async function example(): Promise<void> {\n${body.join('\n')}\n}\n`;
}

let app: string;
beforeAll(() => {
  app = fs.mkdtempSync(path.join(os.tmpdir(), 'dmabuf-readme-types-'));
  const packed = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', app], {
    cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
  })) as { filename: string; files: { path: string }[] }[];
  const files = (packed[0] as { files: { path: string }[] }).files.map((f) => f.path);
  // The package ships the one rollup, not the internal declarations.
  expect(files).toContain('dist/dmabuf-sync.d.ts');
  expect(files.filter((f) => f.endsWith('.d.ts'))).toEqual(['dist/dmabuf-sync.d.ts']);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'readme-app', version: '1.0.0', private: true }));
  // Installed as npm would unpack it (the dependencies are runtime-only, the declarations need none of them;
  // no install script, so nothing is compiled and no registry is asked).
  const pkg = path.join(app, 'node_modules', 'dmabuf-sync');
  fs.mkdirSync(pkg, { recursive: true });
  execFileSync('tar', ['-xzf', path.join(app, (packed[0] as { filename: string }).filename), '-C', pkg, '--strip-components=1']);
  // The consumer's own @types/node (the declarations import node:net).
  fs.mkdirSync(path.join(app, 'node_modules', '@types'), { recursive: true });
  fs.symlinkSync(path.join(root, 'node_modules', '@types', 'node'), path.join(app, 'node_modules', '@types', 'node'));
}, 300_000);
afterAll(() => {
  if (app) fs.rmSync(app, { recursive: true, force: true });
});

/** Runs tsc in the app on `files`; returns its diagnostics ('' when it compiled). */
function compile(args: string[], files: string[]): string {
  try {
    execFileSync(process.execPath, [tsc, '--strict', '--noEmit', '--skipLibCheck', 'false', '--types', 'node',
      '--target', 'es2022', '--lib', 'es2022,esnext.disposable', ...args, ...files], { cwd: app, encoding: 'utf8', stdio: 'pipe' });
    return '';
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}` || String(err);
  }
}

function writeExamples(dir: string, markdown: string): { nodenext: string[]; commonjs: string[] } {
  fs.rmSync(path.join(app, dir), { recursive: true, force: true });
  fs.mkdirSync(path.join(app, dir));
  const nodenext: string[] = [];
  const commonjs: string[] = [];
  codeBlocks(markdown).forEach((b, i) => {
    if (b.lang === 'ts') {
      const base = path.join(dir, `example-${i}`);
      fs.writeFileSync(path.join(app, `${base}.mts`), b.code);
      fs.writeFileSync(path.join(app, `${base}.cts`), wrapForCommonJs(b.code));
      fs.writeFileSync(path.join(app, `${base}.ts`), wrapForCommonJs(b.code));
      nodenext.push(`${base}.mts`, `${base}.cts`);
      commonjs.push(`${base}.ts`);
    } else {
      splitFiles(b.code).forEach((f, j) => {
        const base = path.join(dir, `example-${i}-${j}`);
        fs.writeFileSync(path.join(app, `${base}.cjs`), f);
        fs.writeFileSync(path.join(app, `${base}.js`), f);
        nodenext.push(`${base}.cjs`);
        commonjs.push(`${base}.js`);
      });
    }
  });
  return { nodenext, commonjs };
}

function compileAll(dir: string, markdown: string): string {
  const { nodenext, commonjs } = writeExamples(dir, markdown);
  const js = ['--allowJs', '--checkJs'];
  return compile(['--module', 'nodenext', '--moduleResolution', 'nodenext', ...js], nodenext) +
    compile(['--module', 'commonjs', '--moduleResolution', 'node10', ...js], commonjs);
}

const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');

test('the README has TypeScript and JavaScript examples', () => {
  const blocks = codeBlocks(readme);
  expect(blocks.filter((b) => b.lang === 'ts').length).toBeGreaterThanOrEqual(2);
  expect(blocks.filter((b) => b.lang === 'js').length).toBeGreaterThanOrEqual(1);
});

test("the README's examples compile against the packed package (nodenext ESM + CJS, commonjs; --strict)", () => {
  expect(compileAll('readme', readme)).toBe('');
}, 300_000);

test('an example that uses something the package does not export fails to compile', () => {
  const broken = `${readme}\n\`\`\`ts\nimport { NotExported } from 'dmabuf-sync';\nconsole.log(NotExported);\n\`\`\`\n`;
  expect(compileAll('broken', broken)).toMatch(/NotExported/);
}, 300_000);
