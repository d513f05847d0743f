/**
 * Reading the emulated screen from inside the test VM (scripts/vm-display.sh): write "SNAP <name>" on the
 * "snap" virtio-serial port, the host answers "ok" once QEMU's screendump wrote <name>.ppm into
 * DMABUF_VM_SNAPDIR (shared with the VM at the same path), then read the P6 PPM back. Used by the display
 * tests, the demo and the benchmark; it is test support, not part of the library.
 */
import * as fs from 'node:fs';

/** An RGB picture: `rgb` holds width × height × 3 bytes, row by row. */
export interface Screenshot {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** The snap port's device node, or undefined outside a VM with a display. */
export function snapPort(): string | undefined {
  try {
    for (const p of fs.readdirSync('/sys/class/virtio-ports')) {
      if (fs.readFileSync(`/sys/class/virtio-ports/${p}/name`, 'utf8').trim() === 'snap') return `/dev/${p}`;
    }
  } catch {
    // No virtio ports: not in the test VM.
  }
  return undefined;
}

/** Whether this process can take screenshots (runs in the test VM with DMABUF_VM_DISPLAY set). */
export function canSnap(): boolean {
  return snapPort() !== undefined && !!process.env.DMABUF_VM_SNAPDIR;
}

let serial = 0;
let queue: Promise<unknown> = Promise.resolve();

/** Parses a binary PPM (P6, maxval 255). */
export function parsePpm(data: Uint8Array): Screenshot {
  let pos = 0;
  const token = (): string => {
    for (;;) {
      while (pos < data.length && /\s/.test(String.fromCharCode(data[pos]!))) pos++;
      if (data[pos] !== 0x23) break; // '#' comment
      while (pos < data.length && data[pos] !== 0x0a) pos++;
    }
    const start = pos;
    while (pos < data.length && !/\s/.test(String.fromCharCode(data[pos]!))) pos++;
    return Buffer.from(data.subarray(start, pos)).toString('latin1');
  };
  if (token() !== 'P6') throw new Error('not a P6 PPM');
  const width = Number(token());
  const height = Number(token());
  if (token() !== '255') throw new Error('PPM maxval is not 255');
  pos++; // the single whitespace after maxval
  const rgb = data.subarray(pos, pos + width * height * 3);
  if (rgb.length !== width * height * 3) throw new Error('truncated PPM');
  return { width, height, rgb };
}

/** Asks the host for a screendump and returns its pixels; requests run one at a time. */
export function snap(name = `snap-${process.pid}-${++serial}`): Promise<Screenshot> {
  const run = queue.then(async () => {
    const port = snapPort();
    const dir = process.env.DMABUF_VM_SNAPDIR;
    if (!port || !dir) throw new Error('no screen to dump: run inside the test VM with DMABUF_VM_DISPLAY=virtio|bochs|cirrus');
    const fh = await fs.promises.open(port, 'r+');
    try {
      await fh.write(`SNAP ${name}\n`);
      let reply = '';
      const buf = Buffer.alloc(256);
      while (!reply.includes('\n')) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) throw new Error('the snap port closed');
        reply += buf.toString('utf8', 0, bytesRead);
      }
      if (reply.trim() !== 'ok') throw new Error(`screendump failed: ${reply.trim()}`);
    } finally {
      await fh.close();
    }
    const file = `${dir}/${name}.ppm`;
    const data = await fs.promises.readFile(file);
    await fs.promises.unlink(file).catch(() => undefined);
    return parsePpm(data);
  });
  queue = run.catch(() => undefined);
  return run;
}

/** The 0x00RRGGBB value of pixel (x, y) of a screenshot. */
export function pixelAt(shot: Screenshot, x: number, y: number): number {
  const i = (y * shot.width + x) * 3;
  return (shot.rgb[i]! << 16) | (shot.rgb[i + 1]! << 8) | shot.rgb[i + 2]!;
}
