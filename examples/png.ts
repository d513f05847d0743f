/** Writes a screenshot (examples/vm-screen.ts) as a PNG file, with pngjs. */
import * as fs from 'node:fs';
import { PNG } from 'pngjs';
import type { Screenshot } from './vm-screen';

/** Encodes `shot` as an 8-bit RGB PNG at `path`. */
export function writePng(path: string, shot: Screenshot): void {
  const png = new PNG({ width: shot.width, height: shot.height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(shot.rgb.buffer, shot.rgb.byteOffset, shot.rgb.byteLength);
  fs.writeFileSync(path, PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false }));
}
