#!/usr/bin/env node
// Reads jest's JSON results (--json --outputFile) and prints one count line per run, the reasons of skipped
// tests, and the closing line "tests: N passed, N failed[, N skipped]". Exit status 1 when any run failed,
// is missing, or (for a run whose label is not "unit") ran no test at all.
//   node scripts/test-summary.js <label>=<results.json> ...
// A test file that fails outside any test (e.g. the fd guard in afterAll, a syntax error) counts as one
// failed test: it is a failure no assertion result shows.
'use strict';
const fs = require('node:fs');

let passed = 0;
let failed = 0;
let skipped = 0;
let bad = false;
const perLine = new Map();
for (const arg of process.argv.slice(2)) {
  const eq = arg.indexOf('=');
  const label = arg.slice(0, eq);
  const file = arg.slice(eq + 1);
  let r;
  try {
    r = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    console.log(`${label}: no results (${err.code || err.message}): the run did not finish`);
    failed += 1;
    bad = true;
    continue;
  }
  const suiteErrors = r.testResults.filter(
    (s) => s.status === 'failed' && !s.assertionResults.some((a) => a.status === 'failed'),
  );
  const p = r.numPassedTests;
  const f = r.numFailedTests + suiteErrors.length;
  const s = r.numPendingTests + r.numTodoTests;
  passed += p;
  failed += f;
  skipped += s;
  console.log(`${label}: ${p} passed, ${f} failed, ${s} skipped`);
  const line = /\bnode (\d+)/.exec(label);
  if (line) {
    const t = perLine.get(line[1]) || { p: 0, f: 0, s: 0 };
    perLine.set(line[1], { p: t.p + p, f: t.f + f, s: t.s + s });
  }
  for (const suite of suiteErrors) {
    console.log(`  ${label}: ${suite.name}: ${(suite.message || 'failed outside a test').split('\n').find((l) => l.trim()) || ''}`);
  }
  // Skipped tests carry their reason in the title ("[skipped: ...]", test/vm/fixtures/kernel-features.ts).
  const reasons = new Map();
  for (const suite of r.testResults) {
    for (const a of suite.assertionResults) {
      if (a.status !== 'pending' && a.status !== 'todo') continue;
      const m = /\[skipped: (.*)\]$/.exec(a.title);
      const why = m ? m[1] : 'skipped without a reason';
      reasons.set(why, (reasons.get(why) || 0) + 1);
    }
  }
  for (const [why, n] of reasons) console.log(`  ${label}: ${n} skipped: ${why}`);
  if (f > 0 || !r.success) bad = true;
  if (label !== 'unit' && r.numTotalTests === 0) {
    console.log(`  ${label}: no test ran`);
    bad = true;
  }
}
if (perLine.size > 1) {
  for (const [line, t] of [...perLine].sort((a, b) => a[0] - b[0])) {
    console.log(`node ${line}: ${t.p} passed, ${t.f} failed, ${t.s} skipped`);
  }
}
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(bad ? 1 : 0);
