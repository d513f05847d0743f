/**
 * Helpers of the benchmark suite: time-bounded loops, statistics, a seeded PRNG, the C baseline runner and
 * the result table. Every figure is a ratio against a baseline measured in the same run.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Monotonic time in ns (CLOCK_MONOTONIC: comparable across threads and with the C baseline). */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** Monotonic time in ms, as a float. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Reads a setting: DMABUF_BENCH_<NAME> (passed into the test VM by scripts/vm.sh) or BENCH_<NAME>. */
export function setting(name: string): string | undefined {
  return process.env[`DMABUF_BENCH_${name}`] ?? process.env[`BENCH_${name}`];
}

/** Scales every time budget: BENCH_SCALE=0.2 for a quick smoke run. */
export const SCALE = Number(setting('SCALE') ?? '1') || 1;

/**
 * Runs `op` (one awaited operation) repeatedly: a warm-up of `warmMs`, then batches until `ms` elapsed.
 * Returns ns per op.
 */
export async function timeLoop(op: () => Promise<unknown> | unknown, ms: number, warmMs = ms / 5): Promise<{ nsPerOp: number; ops: number }> {
  ms *= SCALE;
  warmMs *= SCALE;
  let end = nowMs() + warmMs;
  while (nowMs() < end) {
    for (let i = 0; i < 8; i++) await op();
  }
  let ops = 0;
  const batch = 16;
  const t0 = nowNs();
  end = nowMs() + ms;
  let t1: bigint;
  do {
    for (let i = 0; i < batch; i++) await op();
    ops += batch;
    t1 = nowNs();
  } while (Number(t1) / 1e6 < end);
  return { nsPerOp: Number(t1 - t0) / ops, ops };
}

/** Like timeLoop for a synchronous `op` (no await between ops). */
export function timeSync(op: () => unknown, ms: number, warmMs = ms / 5): { nsPerOp: number; ops: number } {
  ms *= SCALE;
  warmMs *= SCALE;
  let end = nowMs() + warmMs;
  while (nowMs() < end) for (let i = 0; i < 8; i++) op();
  let ops = 0;
  const t0 = nowNs();
  end = nowMs() + ms;
  let t1: bigint;
  do {
    for (let i = 0; i < 16; i++) op();
    ops += 16;
    t1 = nowNs();
  } while (Number(t1) / 1e6 < end);
  return { nsPerOp: Number(t1 - t0) / ops, ops };
}

/**
 * Measures `a` and `b` alternately in `rounds` rounds (each gets ms/rounds per round), so that a change in the
 * machine's load (other VMs on the host) hits both alike. Returns the medians and the median of the per-round
 * ratios a/b.
 */
export async function interleaved(
  rounds: number,
  a: () => Promise<number>,
  b: () => Promise<number> | number,
): Promise<{ a: number; b: number; ratio: number; ratios: number[] }> {
  const as: number[] = [];
  const bs: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const x = await a();
    const y = await b();
    as.push(x);
    bs.push(y);
    ratios.push(x / y);
  }
  return { a: median(as), b: median(bs), ratio: median(ratios), ratios };
}

export function median(xs: number[]): number {
  return percentile(xs, 50);
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i] as number;
}

/** mulberry32: a small seeded PRNG, so every run draws the same subsets and orders. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random subset of 0..m-1 of size k, in random order (Fisher-Yates prefix). */
export function randomSubset(rand: () => number, m: number, k: number): number[] {
  const a = Array.from({ length: m }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (m - i));
    [a[i], a[j]] = [a[j] as number, a[i] as number];
  }
  return a.slice(0, k);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The project root (dist/bench/ → ../..). */
export const ROOT = path.join(__dirname, '..', '..');

/** The compiled C baseline (scripts/bench.sh builds it). */
export const RAW_BASELINE = setting('RAW_BASELINE') ?? path.join(ROOT, 'bench', 'raw-baseline');

/** Runs the C baseline with `args`; returns its JSON line. */
export function rawBaseline<T = Record<string, unknown>>(args: string[]): T {
  if (!fs.existsSync(RAW_BASELINE)) throw new Error(`${RAW_BASELINE} is missing: build it with scripts/bench.sh (cc -O2 bench/raw-baseline.c)`);
  const out = execFileSync(RAW_BASELINE, args, { encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(out.trim().split('\n').pop() as string) as T;
}

/** Number of open fds of this process. */
export function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** One row of the result table. */
export interface Row {
  figure: string;
  what: string;
  ours: string;
  baseline: string;
  ratio: number | null;
  target: string;
  /** PASS / MISS / '' (informational) / 'SKIP' */
  verdict: string;
  note?: string;
}

/** Formats ns with a unit. */
export function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return String(ns);
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(2)} s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(1)} µs`;
  return `${ns.toFixed(0)} ns`;
}

/** PASS/MISS for "ratio <= limit" (kind 'le'), ">= limit" ('ge') or "< limit" ('lt'). */
export function verdict(value: number, kind: 'le' | 'ge' | 'lt', limit: number): string {
  if (!Number.isFinite(value)) return 'MISS';
  const ok = kind === 'le' ? value <= limit : kind === 'ge' ? value >= limit : value < limit;
  return ok ? 'PASS' : 'MISS';
}

/** A plain-text table, also valid Markdown. */
export function formatTable(rows: Row[]): string {
  const head = ['Fig', 'Measurement', 'dmabuf-sync', 'Baseline', 'Ratio', 'Target', 'Result'];
  const body = rows.map((r) => [
    r.figure,
    r.what,
    r.ours,
    r.baseline,
    r.ratio === null ? '' : `${r.ratio.toFixed(2)}x`,
    r.target,
    r.verdict + (r.note ? ` (${r.note})` : ''),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(w[i] as number)).join(' | ')} |`;
  return [line(head), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
