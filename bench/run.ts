/**
 * The dmabuf-sync benchmark suite (npm run bench). Needs real dma-bufs (udmabuf, vgem) for every figure but
 * the lock-core ones (1c, 2, 3c, 3pc, 9c: pure JS, any host); scripts/bench.sh runs those natively on the host and the
 * rest in the test VM when this host lacks the devices. Every figure is a ratio against a baseline measured
 * in the same run, on the same kind of buffers; targets print PASS/MISS and never fail the run. The rows of
 * the lock-core figures and of the dma-buf figures print as two tables when a run has both. The results JSON
 * is printed between "--- results.json ---" marker lines (the VM cannot write the host's files;
 * scripts/bench.sh extracts it), and written to bench/results.json (or DMABUF_BENCH_RESULTS) too when that is
 * writable.
 *
 * Environment: DMABUF_BENCH_ONLY=1,1t,3p,9,10 (figures to run; 9 includes 9a, not 9c), DMABUF_BENCH_EXCLUDE=1c,2,3c (figures not to run),
 * DMABUF_BENCH_SCALE=0.2 (shorter loops), DMABUF_BENCH_RESULTS (path of the JSON file), DMABUF_BENCH_RAW_BASELINE
 * (path); the BENCH_* spellings work too outside the VM.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fig1c, fig3c } from './core-figures';
import { fig9c } from './core-handoff';
import { fig3pc } from './core-stress-processes';
import { FIGURES, devices, log, results, rows } from './figures';
import { fig9, fig9a } from './handoff';
import { fig3Processes } from './stress-processes';
import { fig1t } from './table-passes';
import { fig10 } from './v4l2';
import { ROOT, SCALE, formatTable, nowMs, setting, type Row } from './util';

/**
 * figures.ts's figures, with the others (their own files) next to their relatives: the lock-core ones
 * (core-figures.ts) after figures 1 and 3, the cross-process ones after figure 3 and at the end (the lock
 * core's, 3pc in core-stress-processes.ts and 9c in core-handoff.ts, after their dma-buf relatives). A figure
 * that needs no devices is a lock-core figure: its rows go to the lock-core table.
 */
const ALL_FIGURES: typeof FIGURES = FIGURES.flatMap((f): typeof FIGURES => {
  if (f[0] === '1') return [f, ['1t', 'lock-table passes per DmabufSync operation', true, fig1t], ['1c', 'lock core of lock+unlock vs async-mutex', false, fig1c]];
  if (f[0] === '3') return [f, ['3p', 'stress_reorder over 4 processes', true, fig3Processes], ['3c', 'lock-core stress_reorder', false, fig3c], ['3pc', 'lock-core stress_reorder over 4 processes', false, fig3pc]];
  return [f];
});
ALL_FIGURES.push(['9', 'hand-off latency across tasks, threads, processes vs C futex', true, fig9]);
// Figure 9's probe rows (one thread, against async-mutex with the same addon calls); DMABUF_BENCH_ONLY=9 runs them too.
ALL_FIGURES.push(['9a', 'hand-off and lock+map+unlock vs async-mutex with the same kernel calls', true, fig9a]);
ALL_FIGURES.push(['9c', 'lock-core hand-off latency across tasks, threads, processes vs their floors', false, fig9c]);
ALL_FIGURES.push(['10', 'V4L2 capture → CPU read lock vs a C loop (vivid)', true, fig10]);

/** A comma-separated list setting as a set, or undefined when unset or empty. */
function figureSet(name: string): Set<string> | undefined {
  const list = setting(name)?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return list && list.length > 0 ? new Set(list) : undefined;
}

const only = figureSet('ONLY');
const exclude = figureSet('EXCLUDE');
const resultsFile = setting('RESULTS') ?? path.join(ROOT, 'bench', 'results.json');

/** The table of one group of rows, under a heading when the run printed both groups. */
function tables(core: Row[], device: Row[]): string {
  if (core.length === 0 || device.length === 0) return formatTable([...core, ...device]);
  return `lock core alone (no dma-buf, pure JS):\n${formatTable(core)}\n\ndma-buf figures:\n${formatTable(device)}`;
}

async function main(): Promise<void> {
  const started = new Date();
  log(`dmabuf-sync bench: ${devices ? 'real dma-bufs (udmabuf + vgem)' : 'no udmabuf/vgem here: pure-JS figures only'}; scale ${SCALE}`);
  const coreRows: Row[] = [];
  const deviceRows: Row[] = [];
  for (const [id, name, needsDevices, fn] of ALL_FIGURES) {
    if ((only && !only.has(id) && !(id === '9a' && only.has('9'))) || exclude?.has(id)) continue;
    const first = rows.length;
    if (needsDevices && !devices) {
      deviceRows.push({ figure: id, what: name, ours: '', baseline: '', ratio: null, target: '', verdict: 'SKIP', note: 'needs udmabuf + vgem (npm run bench uses the VM)' });
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
    (needsDevices ? deviceRows : coreRows).push(...rows.slice(first));
  }
  const table = tables(coreRows, deviceRows);
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
    rows: [...coreRows, ...deviceRows],
    figures: results,
  };
  process.stdout.write(`\n${table}\n\n`);
  const text = JSON.stringify(json, null, 2);
  process.stdout.write(`--- results.json ---\n${text}\n--- end results.json ---\n`);
  try {
    fs.writeFileSync(resultsFile, `${text}\n`);
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
