// `dmabuf-sync doctor` run as users run it (a child process): what it reports must match this machine, and
// its exit status must say whether the library can run here. On a host without the devices it gives the
// advice to get them; in the test VM (test/vm/doctor.test.ts) everything is present.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DoctorReport } from '../../lib/doctor/checks';

const cli = path.join(__dirname, '..', '..', 'lib', 'doctor', 'cli.js');

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--json matches the machine; exit 0 exactly when a dma-buf source allocates', () => {
  const r = run('doctor', '--json');
  const report = JSON.parse(r.stdout) as DoctorReport;
  expect(r.status).toBe(report.usable ? 0 : 1);
  expect(report.usable).toBe(report.sources.length > 0);
  const udmabuf = report.findings.find((f) => f.what === '/dev/udmabuf')!;
  if (!fs.existsSync('/dev/udmabuf')) {
    expect(udmabuf).toMatchObject({ ok: false, found: 'missing', advice: expect.stringContaining('modprobe udmabuf') });
    expect(report.sources).not.toContain('udmabuf');
  } else {
    expect(udmabuf.found).toMatch(/^present/);
  }
  const heaps = fs.existsSync('/dev/dma_heap') ? fs.readdirSync('/dev/dma_heap') : [];
  if (heaps.length === 0) {
    expect(report.findings.find((f) => f.what === '/dev/dma_heap')).toMatchObject({
      ok: false,
      advice: expect.stringContaining('CONFIG_DMABUF_HEAPS'),
    });
  } else {
    for (const h of heaps) expect(report.findings.some((f) => f.what === `/dev/dma_heap/${h}`)).toBe(true);
  }
  expect(report.findings[0]).toMatchObject({ what: 'kernel', found: expect.stringContaining(report.kernel) });
});

test('plain words: every missing piece comes with advice, and the verdict is the last line', () => {
  const r = run('doctor');
  const json = JSON.parse(run('doctor', '--json').stdout) as DoctorReport;
  for (const f of json.findings.filter((x) => x.ok === false)) {
    expect(r.stdout).toContain(`MISSING ${f.what}: ${f.found}`);
    expect(r.stdout).toContain(`→ ${f.advice}`);
  }
  const last = r.stdout.trim().split('\n').pop();
  expect(last).toMatch(json.usable ? /^dmabuf-sync can run here/ : /^dmabuf-sync cannot run here/);
});

test('a wrong command is a usage error (exit 2)', () => {
  const r = run('docter');
  expect(r.status).toBe(2);
  expect(r.stderr).toContain('usage: dmabuf-sync doctor');
});
