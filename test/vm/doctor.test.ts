// In the test VM everything the library uses is present: the doctor says so and exits 0.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { DoctorReport } from '../../lib/doctor/checks';

test('all present: udmabuf and the system heap allocate, sync_file export/import work, vgem found; exit 0', () => {
  const cli = path.join(__dirname, '..', '..', 'lib', 'doctor', 'cli.js');
  const r = spawnSync(process.execPath, [cli, 'doctor', '--json'], { encoding: 'utf8', timeout: 120_000 });
  expect(r.status).toBe(0);
  const report = JSON.parse(r.stdout) as DoctorReport;
  expect(report.usable).toBe(true);
  expect(report.sources).toEqual(expect.arrayContaining(['udmabuf', 'dma-heap system']));
  const find = (what: string) => report.findings.find((f) => f.what === what);
  expect(find('/dev/udmabuf')).toMatchObject({ ok: true, found: expect.stringMatching(/read and write, allocates, up to \d+ MiB/) });
  expect(find('/dev/dma_heap/system')).toMatchObject({ ok: true });
  expect(find('DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE')).toMatchObject({ ok: true });
  expect(find('vgem')).toMatchObject({ ok: true });
  expect(report.findings.some((f) => f.what.startsWith('/dev/dri/') && f.found.includes('driver vgem'))).toBe(true);
  expect(report.findings.filter((f) => f.ok === false)).toEqual([]);
  const text = spawnSync(process.execPath, [cli, 'doctor'], { encoding: 'utf8', timeout: 120_000 });
  expect(text.status).toBe(0);
  expect(text.stdout).toContain('dmabuf-sync can run here');
});
