/**
 * The README and docs/*.md name files, scripts and npm scripts; each one named must exist, so a rename or a
 * removal cannot leave a doc pointing at nothing. Simple rules, on the Markdown text:
 * - a backticked repository path (`lib/…`, `docs/…`, `test/…`, `scripts/…`, `bench/…`, `examples/…`,
 *   `native/…`, `.ci/…`, or a top-level file such as `binding.gyp`), with no placeholder in it (`*`, `<`, `{`,
 *   `…`, `N`/`X` as a whole name part), must exist in the checkout, relative to the repository root;
 * - a relative Markdown link target must exist, relative to the doc;
 * - outputs (what .gitignore lists, e.g. `bench/results.json`, docs/api) are generated, not checked;
 * - `npm run X` (anywhere, code blocks too) and `npm X` for the lifecycle scripts must be a package.json script.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../../..');

/** What a Markdown text refers to. */
export function references(markdown: string): { paths: string[]; links: string[]; scripts: string[] } {
  const paths = new Set<string>();
  const links = new Set<string>();
  const scripts = new Set<string>();
  for (const m of markdown.matchAll(/`([^`\n]+)`/g)) {
    // A backticked command's arguments count too (`bash scripts/x.sh --flag`): every word is looked at.
    for (const word of (m[1] as string).split(/\s+/)) {
      const w = word.replace(/[),;:]+$/, '').replace(/^\(+/, '');
      const repoPath = /^(lib|docs|test|scripts|bench|examples|native|\.ci)\/[\w./+-]*[\w/]$/.test(w);
      if (repoPath || /^(binding\.gyp|package\.json|tsconfig\.json|typedoc\.json|jest\.config\.js|api-extractor\.json)$/.test(w)) {
        if (!/(^|[/.-])(N|X)([/.-]|$)/.test(w)) paths.add(w.replace(/\/$/, ''));
      }
    }
  }
  for (const m of markdown.matchAll(/\]\(([^)\s#]+)(#[^)]*)?\)/g)) {
    const target = m[1] as string;
    if (!/^[a-z]+:/.test(target)) links.add(target);
  }
  for (const m of markdown.matchAll(/\bnpm run(?: --silent)? ([\w:.-]+)/g)) scripts.add(m[1] as string);
  for (const m of markdown.matchAll(/\bnpm (test|start|stop|restart)\b/g)) scripts.add(m[1] as string);
  return { paths: [...paths], links: [...links], scripts: [...scripts] };
}

/** Whether `p` (relative to the root) is a generated output: it or a folder above it is a line of .gitignore. */
function generated(p: string): boolean {
  const ignored = fs.readFileSync(path.join(root, '.gitignore'), 'utf8').split('\n').map((l) => l.trim().replace(/^\/|\/$/g, ''))
    .filter((l) => l !== '' && !l.startsWith('#') && !/[*?[]/.test(l));
  return ignored.some((l) => p === l || p.startsWith(`${l}/`));
}

/** The references of `file` (relative to the root) that do not exist, as readable lines. */
export function missing(file: string, markdown: string): string[] {
  const pkgScripts = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const refs = references(markdown);
  const bad: string[] = [];
  for (const p of refs.paths) if (!generated(p) && !fs.existsSync(path.join(root, p))) bad.push(`${file}: \`${p}\` does not exist`);
  for (const l of refs.links) {
    const target = path.relative(root, path.join(root, path.dirname(file), decodeURIComponent(l)));
    if (!generated(target) && !fs.existsSync(path.join(root, target))) bad.push(`${file}: link (${l}) does not exist`);
  }
  for (const s of refs.scripts) if (!(s in pkgScripts)) bad.push(`${file}: npm script "${s}" is not in package.json`);
  return bad;
}

const docs = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

test('the README and every doc refer to files, links and npm scripts that exist', () => {
  const bad = docs.flatMap((f) => missing(f, fs.readFileSync(path.join(root, f), 'utf8')));
  expect(bad).toEqual([]);
});

test('the check finds references and fails on a missing file, link or npm script', () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const found = references(readme);
  expect(found.paths.length).toBeGreaterThan(0);
  expect(found.links).toContain('docs/design.md');
  expect(found.scripts).toEqual(expect.arrayContaining(['bench', 'test']));
  const broken = `${readme}\nRun \`scripts/no-such-script.sh\`, see [gone](docs/gone.md), then \`npm run no-such-script\`.\n`;
  expect(missing('README.md', broken)).toEqual([
    'README.md: `scripts/no-such-script.sh` does not exist',
    'README.md: link (docs/gone.md) does not exist',
    'README.md: npm script "no-such-script" is not in package.json',
  ]);
});
