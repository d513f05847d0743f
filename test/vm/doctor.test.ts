// The doctor in the test VM tells what this kernel has, exactly as the tests' own probes find it: on 6.12 x64
// everything is there (exit 0); Debian's arm64 kernel has no dma-heap, its 5.10 kernel no udmabuf, no heap
// and no EXPORT_SYNC_FILE — the doctor must say so, and exit 0 only when a dma-buf source allocates.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { DoctorReport } from '../../lib/doctor/checks';
import { kernel } from './fixtures/kernel-features';

const cli = path.join(__dirname, '..', '..', 'lib', 'doctor', 'cli.js');
const usable = kernel.udmabuf || kernel.heap;

test(`reports this kernel's udmabuf (${kernel.udmabuf}), system heap (${kernel.heap}), sync_file export (${kernel.exportSyncFile}) and vgem; exit ${usable ? 0 : 1}`, () => {
  const r = spawnSync(process.execPath, [cli, 'doctor', '--json'], { encoding: 'utf8', timeout: 120_000 });
  expect(r.status).toBe(usable ? 0 : 1);
  const report = JSON.parse(r.stdout) as DoctorReport;
  expect(report.usable).toBe(usable);
  const sources = [...(kernel.udmabuf ? ['udmabuf'] : []), ...(kernel.heap ? ['dma-heap system'] : [])];
  expect(report.sources).toEqual(expect.arrayContaining(sources));
  expect(report.sources.includes('udmabuf')).toBe(kernel.udmabuf);
  const find = (what: string) => report.findings.find((f) => f.what === what);
  if (kernel.udmabuf) {
    expect(find('/dev/udmabuf')).toMatchObject({ ok: true, found: expect.stringMatching(/read and write, allocates, up to \d+ MiB/) });
  } else {
    expect(find('/dev/udmabuf')).toMatchObject({ ok: false });
  }
  expect(find('/dev/dma_heap/system')?.ok ?? false).toBe(kernel.heap);
  if (usable) {
    expect(find('DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE')?.ok).toBe(kernel.exportSyncFile);
  }
  expect(find('vgem')).toMatchObject({ ok: kernel.vgem ? true : null });
  expect(report.findings.some((f) => f.what.startsWith('/dev/dri/') && f.found.includes('driver vgem'))).toBe(kernel.vgem);
  if (kernel.udmabuf && kernel.heap && kernel.exportSyncFile && kernel.vgem) {
    expect(report.findings.filter((f) => f.ok === false)).toEqual([]);
  }
  const text = spawnSync(process.execPath, [cli, 'doctor'], { encoding: 'utf8', timeout: 120_000 });
  expect(text.status).toBe(usable ? 0 : 1);
  if (usable) expect(text.stdout).toContain('dmabuf-sync can run here');
});
