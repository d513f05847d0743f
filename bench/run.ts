/**
 * The dmabuf-sync benchmark suite (npm run bench). Needs real dma-bufs (udmabuf, vgem) for every figure but
 * figure 2; scripts/bench.sh runs it in the test VM when this host lacks them. Every figure is a ratio
 * against a baseline measured in the same run, on the same kind of buffers; targets print PASS/MISS and
 * never fail the run. The results JSON is printed between "--- results.json ---" marker lines (the VM
 * cannot write the host's bench/results.json; scripts/bench.sh extracts it), and written to
 * bench/results.json too when that is writable.
 *
 * Environment: DMABUF_BENCH_ONLY=1,3p,9 (figures to run), DMABUF_BENCH_SCALE=0.2 (shorter loops),
 * DMABUF_BENCH_RAW_BASELINE (path); the BENCH_* spellings work too outside the VM.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FIGURES, devices, log, results, rows } from './figures';
import { fig9 } from './handoff';
import { fig3Processes } from './stress-processes';
import { ROOT, SCALE, formatTable, nowMs, setting } from './util';

/** figures.ts's figures, with the cross-process ones (their own files) after figure 3 and at the end. */
const ALL_FIGURES: typeof FIGURES = FIGURES.flatMap((f) => (f[0] === '3' ? [f, ['3p', 'stress_reorder over 4 processes', true, fig3Processes] as const] : [f]));
ALL_FIGURES.push(['9', 'hand-off latency across tasks, threads, processes vs C futex', true, fig9]);

const onlyList = setting('ONLY');
const only = onlyList ? new Set(onlyList.split(',').map((s) => s.trim())) : undefined;

async function main(): Promise<void> {
  const started = new Date();
  log(`dmabuf-sync bench: ${devices ? 'real dma-bufs (udmabuf + vgem)' : 'no udmabuf/vgem here: pure-JS figures only'}; scale ${SCALE}`);
  for (const [id, name, needsDevices, fn] of ALL_FIGURES) {
    if (only && !only.has(id)) continue;
    if (needsDevices && !devices) {
      rows.push({ figure: id, what: name, ours: '', baseline: '', ratio: null, target: '', verdict: 'SKIP', note: 'needs udmabuf + vgem (npm run bench uses the VM)' });
      continue;
    }
    log(`figure ${id}: ${name}`);
    const t0 = nowMs();
    try {
      await fn();
    } catch (err) {
      log(`figure ${id} failed: ${(err as Error).stack ?? String(err)}`);
      rows.push({ figure: id, what: name, ours: '', baseline: '', ratio: null, target: '', verdict: 'ERROR', note: (err as Error).message });
      results[`fig${id}Error`] = String((err as Error).stack ?? err);
    }
    log(`figure ${id} took ${((nowMs() - t0) / 1000).toFixed(1)} s`);
  }
  const table = formatTable(rows);
  const json = {
    date: started.toISOString(),
    durationS: process.uptime(),
    machine: {
      kernel: os.release(),
      arch: os.arch(),
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      node: process.version,
      realDmaBufs: devices,
      scale: SCALE,
    },
    rows,
    figures: results,
  };
  process.stdout.write(`\n${table}\n\n`);
  const text = JSON.stringify(json, null, 2);
  process.stdout.write(`--- results.json ---\n${text}\n--- end results.json ---\n`);
  try {
    fs.writeFileSync(path.join(ROOT, 'bench', 'results.json'), `${text}\n`);
  } catch {
    // Read-only (inside the VM): scripts/bench.sh extracts the JSON from stdout.
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
