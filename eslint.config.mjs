// Lint, style and the layer rule. The layers of lib/ (see docs/design.md, "Layout") may only import
// downwards: lib/kernel (addon and kernel wrappers) and lib/ww (the lock core) know nothing of each other
// (except that lib/ww loads the addon through lib/kernel/native for its shared store and futexes),
// lib/sync joins them, lib/index.ts exports the public surface. lib/errors.ts is shared by all.
// Style rules keep the tree's existing look (2 spaces, single quotes, semicolons, lines up to ~120)
// without a formatter rewriting every file.
import js from '@eslint/js';
import stylistic from '@stylistic/eslint-plugin';
import tseslint from 'typescript-eslint';

/** An import restriction for files under one layer: every relative import outside the allowed ones is an error. */
function layer(files, message, patterns) {
  return {
    files,
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: patterns.map((group) => ({ group, message })) }],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'prebuilds/**', 'node_modules/**', 'docs/api/**', '.kernel/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: false } },
    plugins: { '@stylistic': stylistic },
    rules: {
      '@stylistic/indent': ['error', 2, { SwitchCase: 1, flatTernaryExpressions: true, ignoredNodes: ['TemplateLiteral *'] }],
      '@stylistic/quotes': ['error', 'single', { avoidEscape: true, allowTemplateLiterals: 'always' }],
      '@stylistic/semi': ['error', 'always'],
      '@stylistic/comma-dangle': ['error', 'always-multiline'],
      '@stylistic/eol-last': 'error',
      '@stylistic/no-trailing-spaces': 'error',
      '@stylistic/no-multiple-empty-lines': ['error', { max: 1 }],
      '@stylistic/max-len': ['error', { code: 200, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Initialising a variable that every branch reassigns is kept for clarity in the lock table.
      'no-useless-assignment': 'off',
    },
  },
  // Layer rule. Paths are relative to the importing file, so each layer lists what it may not reach.
  layer(
    ['lib/kernel/**/*.ts'],
    'lib/kernel may import only lib/kernel and lib/errors (it is the bottom layer: no lock core, no sync)',
    [['../ww', '../ww/**', '../sync', '../sync/**', '../index', '../doctor', '../doctor/**']],
  ),
  layer(
    ['lib/ww/**/*.ts'],
    'lib/ww (the lock core) may import only lib/ww, lib/errors and the addon loader lib/kernel/native (for the shared store and futexes): it knows nothing of dma-bufs',
    [['../kernel/**', '!../kernel/native', '../sync', '../sync/**', '../index', '../doctor', '../doctor/**']],
  ),
  layer(
    ['lib/sync/**/*.ts'],
    'lib/sync may import lib/kernel, lib/ww and lib/errors, never the public index or the doctor',
    [['../index', '../doctor', '../doctor/**']],
  ),
  layer(
    ['lib/doctor/**/*.ts'],
    'lib/doctor checks the machine with the kernel layer; it does not lock',
    [['../ww', '../ww/**', '../sync', '../sync/**', '../index']],
  ),
  layer(
    ['lib/errors.ts'],
    'lib/errors.ts is shared by every layer and imports none of them',
    [['./kernel', './kernel/**', './ww', './ww/**', './sync', './sync/**', './index', './doctor', './doctor/**']],
  ),
  {
    files: ['bench/**/*.ts', 'examples/**/*.ts', 'test/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', __dirname: 'readonly', process: 'readonly', console: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
