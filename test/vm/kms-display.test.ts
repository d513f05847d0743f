// KmsDisplay where there is no display: the plain test VM has only vgem (a render-only card).
import * as fs from 'node:fs';
import { KmsDisplay, VgemDevice } from '../../lib';

test('without a KMS display, open() is ENOENT and says what to do', () => {
  // Outputs show up in sysfs as card<N>-<connector>; the VM without DMABUF_VM_DISPLAY has none.
  expect(fs.readdirSync('/sys/class/drm').filter((n) => /^card\d+-/.test(n))).toEqual([]);
  expect(() => KmsDisplay.open()).toThrow(
    expect.objectContaining({ name: 'DmabufError', code: 'ENOENT', message: expect.stringMatching(/no KMS display.*vgem.*DMABUF_VM_DISPLAY=virtio/) }),
  );
});

test('a node that does not exist is ENOENT; a render-only card asked for by path says it lacks atomic KMS', () => {
  expect(() => KmsDisplay.open({ path: '/dev/dri/card99' })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  const vgem = VgemDevice.open();
  const path = vgem.path;
  vgem.close();
  expect(() => KmsDisplay.open({ path })).toThrow(expect.objectContaining({ name: 'DmabufError', message: expect.stringMatching(/atomic/) }));
});

test('argument errors are TypeErrors', () => {
  expect(() => KmsDisplay.open({ path: 3 as unknown as string })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  expect(() => KmsDisplay.open({ driver: null as unknown as string })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
});
