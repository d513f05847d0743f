/**
 * The lock store file: where it lives, who may open it, who formats it, and lock domains.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WwClass } from '../../lib/ww/ww-class';
import { WwMutex } from '../../lib/ww/ww-mutex';
import { lockStore } from '../../lib/ww/lock-store';
import { H_MAGIC, H_VERSION, VERSION } from '../../lib/ww/layout';
import { STORE_DIR_ENV, openStore, storeDir } from '../../lib/ww/store-file';
import { native } from '../../lib/kernel/native';

// Opened before fd-guard's snapshot: a store's fd stays open for the life of the thread, by design.
const domainA = new WwClass('wound-wait', 'a', { domain: 'test-a' });
const domainB = new WwClass('wound-wait', 'b', { domain: 'test-b' });
const keepA = new WwMutex(domainA);
const keepB = new WwMutex(domainB);

jest.setTimeout(30_000);

const dir = storeDir();

/** Runs `code` in a child process with this test's store directory; resolves with its stdout. */
function node(code: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.once('error', reject);
    p.once('exit', () => resolve(out));
  });
}

const lib = JSON.stringify(path.join(__dirname, '..', '..', 'lib'));

/** openStore in a child; prints the error code or 'ok' (and 'formatted' when it formatted it). */
function openInChild(domain: string): Promise<string> {
  return node(
    `const { openStore } = require(${lib} + '/ww/store-file');` +
      `try { const s = openStore(${JSON.stringify(domain)}); process.stdout.write(s.formatted ? 'formatted' : 'ok'); }` +
      `catch (e) { process.stdout.write(String(e.code)); }`,
  );
}

test('the store lives in the per-test directory (DMABUF_SYNC_STORE_DIR), 0700 directory, 0600 file', () => {
  expect(dir).toBe(process.env[STORE_DIR_ENV]);
  expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  expect(fs.statSync(path.join(dir, 'default.store')).mode & 0o777).toBe(0o600);
});

test('a domain is a separate lock space; the same domain is the same lock', () => {
  const key = 0x5000_0001n;
  const a = new WwMutex(domainA, key);
  const b = new WwMutex(domainB, key);
  const a2 = new WwMutex(new WwClass('wound-wait', 'a2', { domain: 'test-a' }), key);
  expect(a.tryLock('write')).toBe(true);
  expect(b.tryLock('write')).toBe(true); // another domain
  expect(a2.tryLock('write')).toBe(false); // same domain
  a.unlock();
  b.unlock();
  expect(a2.tryLock('write')).toBe(true);
  a2.unlock();
  [a, b, a2].forEach((m) => m.dispose());
  expect(() => new WwClass('wound-wait', 'x', { domain: '../etc' })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  expect(() => new WwClass('wound-wait', 'x', { domain: '' })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
});

test('another process sees the same store (stamps and unique keys are shared)', async () => {
  const before = new WwMutex(domainA).key;
  const out = await node(
    `const { WwMutex } = require(${lib} + '/ww/ww-mutex'); const { WwClass } = require(${lib} + '/ww/ww-class');` +
      `process.stdout.write(String(new WwMutex(new WwClass('wound-wait', 'c', { domain: 'test-a' })).key));`,
  );
  const after = new WwMutex(domainA).key;
  expect(BigInt(out)).toBeLessThan(before);
  expect(after).toBeLessThan(BigInt(out));
});

test('a symlinked store is refused (EACCES), whatever it points at', async () => {
  fs.writeFileSync(path.join(dir, 'target'), '');
  fs.symlinkSync(path.join(dir, 'target'), path.join(dir, 'sym.store'));
  expect(await openInChild('sym')).toBe('EACCES');
});

test('a world-writable, hard-linked or foreign-owned store file is refused (EACCES)', async () => {
  const ww = path.join(dir, 'ww.store');
  fs.writeFileSync(ww, '');
  fs.chmodSync(ww, 0o606);
  expect(await openInChild('ww')).toBe('EACCES');
  fs.writeFileSync(path.join(dir, 'linked.store'), '', { mode: 0o600 });
  fs.linkSync(path.join(dir, 'linked.store'), path.join(dir, 'elsewhere'));
  expect(await openInChild('linked')).toBe('EACCES');
  if (process.geteuid?.() === 0) {
    const foreign = path.join(dir, 'foreign.store');
    fs.writeFileSync(foreign, '', { mode: 0o600 });
    fs.chownSync(foreign, 4242, 4242);
    expect(await openInChild('foreign')).toBe('EACCES');
  }
});

test('a stale store from a dead run is reformatted; one in use with another layout version is EPROTO', async () => {
  // Made by a "dead run": nobody holds its format byte, so the next opener reformats it.
  const first = await openInChild('stale');
  expect(first).toBe('formatted');
  const file = path.join(dir, 'stale.store');
  const words = new Int32Array(fs.readFileSync(file).buffer.slice(0, 64));
  expect(words[H_VERSION]).toBe(VERSION);
  // Now "in use" (we hold it shared) by a program of another layout version.
  const fd = fs.openSync(file, 'r+');
  try {
    const hdr = Buffer.alloc(4);
    hdr.writeInt32LE(VERSION + 1);
    fs.writeSync(fd, hdr, 0, 4, H_VERSION * 4);
    expect(native.ofdLock(fd, 'read', 0, 1, false)).toBe(true);
    expect(await openInChild('stale')).toBe('EPROTO');
    // Bad magic too.
    hdr.writeInt32LE(0x1234);
    fs.writeSync(fd, hdr, 0, 4, H_MAGIC * 4);
    expect(await openInChild('stale')).toBe('EPROTO');
  } finally {
    fs.closeSync(fd);
  }
  // Nobody uses it any more: reformatted.
  expect(await openInChild('stale')).toBe('formatted');
});

test('processes racing to create a store all end up in the same one', async () => {
  // Stamps come from the store's counter: two stores would hand out the same stamps. Each child stays
  // attached until all have printed (until its stdin closes), so that no store is reformatted meanwhile.
  const code =
    `const { WwClass } = require(${lib} + '/ww/ww-class');` +
    `const ctx = new WwClass('wound-wait', 'r', { domain: 'race' }).acquireContext();` +
    `process.stdout.write(require('fs').statSync(${JSON.stringify(dir)} + '/race.store').ino + ' ' + ctx.stamp + '\\n');` +
    `process.stdin.resume(); process.stdin.on('end', () => ctx.fini());`;
  const kids = Array.from({ length: 6 }, () => spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'], env: process.env }));
  const lines = await Promise.all(
    kids.map((k) => new Promise<string>((resolve) => {
      let out = '';
      k.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
    })),
  );
  await Promise.all(kids.map((k) => new Promise((r) => {
    k.once('exit', r);
    k.stdin!.end();
  })));
  expect(new Set(lines.map((o) => o.split(' ')[0])).size).toBe(1);
  expect(new Set(lines.map((o) => o.split(' ')[1])).size).toBe(6);
});

test('a directory that is not private is refused', () => {
  const open = fs.mkdtempSync(path.join(dir, 'open-'));
  fs.chmodSync(open, 0o755);
  const saved = process.env[STORE_DIR_ENV];
  process.env[STORE_DIR_ENV] = open;
  try {
    expect(() => openStore('x')).toThrow(expect.objectContaining({ code: 'EACCES' }));
  } finally {
    process.env[STORE_DIR_ENV] = saved;
  }
});

afterAll(() => {
  keepA.dispose();
  keepB.dispose();
  expect(lockStore('test-a').domain).toBe('test-a');
});

/**
 * Runs `code` in a child process as uid:gid with `env`; resolves with its first line, and `stop()` which
 * kills it and resolves once its pipes are closed (so that no fd outlives the test).
 */
function asUser(code: string, uid: number, gid: number, env: NodeJS.ProcessEnv): Promise<{ out: string; stop: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'], env, uid, gid });
    const closed = new Promise<void>((r) => p.once('close', () => r()));
    const stop = (): Promise<void> => {
      p.kill('SIGKILL');
      return closed;
    };
    let out = '';
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve({ out: out.trim(), stop });
    });
    p.once('error', reject);
    p.once('exit', (c) => resolve({ out: out.trim() || `exit ${c}`, stop }));
  });
}

(process.geteuid?.() === 0 ? test : test.skip)('a group-shared domain: users of the group share its locks (02770/0660 of the group); others get EACCES', async () => {
  // Outside this test's private store directory: other uids must reach the group's directory.
  const base = `/dev/shm/dmabuf-sync-grouptest-${process.pid}`;
  const GID = 4300;
  const env = { ...process.env, [STORE_DIR_ENV]: base };
  const ww = JSON.stringify(path.join(__dirname, '..', '..', 'lib', 'ww'));
  const lockIn = (opts: string, then: string): string =>
    `const { WwClass } = require(${ww} + '/ww-class'); const { WwMutex } = require(${ww} + '/ww-mutex');` +
    `try { const m = new WwMutex(new WwClass('wound-wait', 'g', ${opts}), 77n); ${then} } catch (e) { console.log(e.code); }`;
  const children: Array<{ stop: () => Promise<void> }> = [];
  const run = async (code: string, uid: number, gid: number): Promise<string> => {
    const c = await asUser(code, uid, gid, env);
    children.push(c);
    return c.out;
  };
  try {
    expect(await run(lockIn(`{ domain: 'shared', group: ${GID} }`, "if (m.tryLock('write')) { console.log('held'); setInterval(() => {}, 1e6); } else console.log('busy');"), 4301, GID)).toBe('held');
    const groupDir = `${base}-g${GID}`;
    const dirStat = fs.statSync(groupDir);
    const fileStat = fs.statSync(path.join(groupDir, 'shared.store'));
    expect([dirStat.mode & 0o7777, dirStat.gid]).toEqual([0o2770, GID]);
    expect([fileStat.mode & 0o777, fileStat.gid, fileStat.uid]).toEqual([0o660, GID, 4301]);
    // Another user of the group sees the same lock.
    expect(await run(lockIn(`{ domain: 'shared', group: ${GID} }`, "console.log(String(m.tryLock('write')));"), 4302, GID)).toBe('false');
    // A user outside the group cannot join it, nor open its store.
    expect(await run(lockIn(`{ domain: 'shared', group: ${GID} }`, "console.log('joined');"), 4303, 4303)).toBe('EACCES');
    const open = `try { require('node:fs').openSync(${JSON.stringify(path.join(groupDir, 'shared.store'))}, 'r+'); console.log('opened'); } catch (e) { console.log(e.code); }`;
    expect(await run(open, 4303, 4303)).toBe('EACCES');
    // The same key in the member's own (default) domain is another lock.
    expect(await run(lockIn('{}', "console.log(String(m.tryLock('write')));"), 4302, GID)).toBe('true');
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    for (const d of [base, `${base}-g${GID}`]) fs.rmSync(d, { recursive: true, force: true });
  }
});

test('a group that does not exist, or is not valid, is a typed error', () => {
  expect(() => new WwClass('wound-wait', 'g', { group: 'no-such-group-here' })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  expect(() => new WwClass('wound-wait', 'g', { group: -1 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  expect(() => new WwClass('wound-wait', 'g', { group: 'a:b' as string })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
});

test('contexts dropped without fini() give their slots back, also those dropped in the turn that made them', async () => {
  // A 32-context store: 20 rounds of 10 forgotten contexts fill it by the 4th round unless the finalizer
  // frees their slots. Half of each round is dropped at once (before the turn that registers open contexts
  // with the finalizer), half a turn later.
  const code =
    `const { WwClass } = require(${lib} + '/ww/ww-class');` +
    `const cls = new WwClass('wound-wait', 'gc', { domain: 'test-gc' });` +
    `const turn = () => new Promise((r) => setTimeout(r, 5));` +
    `(async () => { try {` +
    `  for (let round = 0; round < 20; round++) {` +
    `    for (let i = 0; i < 5; i++) cls.acquireContext({ name: 'dropped' });` +
    `    let kept = Array.from({ length: 5 }, () => cls.acquireContext({ name: 'kept a turn' }));` +
    `    await turn(); kept = null; global.gc(); await turn(); global.gc(); await turn();` +
    `  }` +
    `  process.stdout.write('ok');` +
    `} catch (e) { process.stdout.write(String(e.code)); } })();`;
  const env = { ...process.env, DMABUF_SYNC_CAPACITY: '16' };
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'], env });
    let text = '';
    p.stdout!.on('data', (d: Buffer) => (text += d.toString()));
    p.once('error', reject);
    p.once('exit', () => resolve(text));
  });
  expect(out).toBe('ok');
});
