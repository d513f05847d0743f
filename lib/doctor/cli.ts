#!/usr/bin/env node
/**
 * `npx dmabuf-sync doctor [--json]`: says what this machine has for the library and what is missing, in
 * plain words (or as JSON for scripts). Exit status 0 when the library can run here (a dma-buf source
 * allocates), 1 when it cannot, 2 for a usage error.
 */
import type { DoctorReport, Finding } from './checks';

const USAGE = 'usage: dmabuf-sync doctor [--json]\n  checks this machine for what dmabuf-sync needs (exit 0: it can run here)';

function mark(f: Finding): string {
  return f.ok === true ? 'ok     ' : f.ok === false ? 'MISSING' : 'info   ';
}

function text(report: DoctorReport): string {
  const lines = ['dmabuf-sync doctor', ''];
  for (const f of report.findings) {
    lines.push(`${mark(f)} ${f.what}: ${f.found}`);
    if (f.advice) lines.push(`        → ${f.advice}`);
  }
  lines.push('');
  lines.push(
    report.usable
      ? `dmabuf-sync can run here (dma-buf sources: ${report.sources.join(', ')}).`
      : 'dmabuf-sync cannot run here: no dma-buf source allocates. Follow the advice for /dev/udmabuf or /dev/dma_heap above.',
  );
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  const rest = argv.filter((a) => a !== '--json');
  if (rest.length !== 1 || rest[0] !== 'doctor') {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  let report: DoctorReport;
  try {
    // Loaded here, not at the top: a missing or broken addon is itself a finding.
    report = (await import('./checks')).runChecks();
  } catch (err) {
    const finding: Finding = {
      what: 'addon',
      ok: false,
      found: `the native addon did not load (${(err as Error).message})`,
      advice: 'rebuild it: npm rebuild dmabuf-sync (needs g++, make, python3 and the kernel headers)',
    };
    report = { kernel: (await import('node:os')).release(), usable: false, sources: [], findings: [finding] };
  }
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : `${text(report)}\n`);
  return report.usable ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`dmabuf-sync doctor failed: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
