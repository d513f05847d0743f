/**
 * Helpers of the display tests (jest project "display", run in the test VM with an emulated display, see
 * scripts/test-display.sh): drawing into a locked buffer and comparing the screen with what was drawn.
 */
import { DmabufSync, query, type DmaBuf } from '../../lib';
import { snap, type Screenshot } from '../../examples/vm-screen';

/** A picture as the display shows it: 0x00RRGGBB per pixel, `width` pixels per row. */
export type Picture = (x: number, y: number) => number;

/** Locks `buf` for CPU write through DmabufSync, draws `picture` row by row (pitch in bytes), unlocks. */
export async function drawLocked(buf: DmaBuf, width: number, height: number, pitch: number, picture: Picture, offset = 0): Promise<void> {
  const sync = DmabufSync.init({ name: 'test-draw' });
  sync.get(buf, 'write');
  await sync.lock({ timeoutMs: 10_000 });
  const px = new Uint32Array(sync.map(buf).buffer, offset, (pitch / 4) * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) px[y * (pitch / 4) + x] = picture(x, y);
  await sync.unlock();
  sync.fini();
}

/** The first pixel where the screenshot differs from `picture`, or undefined when every pixel matches. */
export function firstDifference(shot: Screenshot, picture: Picture): { x: number; y: number; got: string; want: string } | undefined {
  const { width, height, rgb } = shot;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const got = (rgb[i]! << 16) | (rgb[i + 1]! << 8) | rgb[i + 2]!;
      const want = picture(x, y) & 0xffffff;
      if (got !== want) return { x, y, got: got.toString(16), want: want.toString(16) };
    }
  }
  return undefined;
}

/** Screenshot now, and expect it to be exactly `picture`. */
export async function expectScreen(picture: Picture, width: number, height: number): Promise<void> {
  const shot = await snap();
  expect([shot.width, shot.height]).toEqual([width, height]);
  expect(firstDifference(shot, picture)).toBeUndefined();
}

/** A gradient that exercises every channel: distinct values in R, G and B. */
export const gradient: Picture = (x, y) => (((x * 3) & 0xff) << 16) | (((y * 5) & 0xff) << 8) | ((x + y) & 0xff);

/** A flat colour. */
export const flat = (rgb: number): Picture => () => rgb;

/** Resolves to 'resolved' or 'pending' after letting the event loop run for `ms`. */
export async function stateAfter(p: Promise<unknown>, ms: number): Promise<'resolved' | 'pending'> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setTimeout(r, ms));
  return done ? 'resolved' : 'pending';
}

/** Whether anyone holds or waits for the buffer's lock. */
export function lockBusy(buf: DmaBuf): boolean {
  return query().locks.some((l) => l.key === buf.inode && (l.holders.length > 0 || l.waiters.length > 0));
}
