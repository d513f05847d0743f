/**
 * Every build of the addon has its DRM part (KMS and vgem), whatever headers the build machine had: the
 * functions are there, and the request numbers it reports are the kernel's _IOC encoding, for this
 * architecture, of the request number and struct size the DRM UAPI documents (native/drm_uapi.h; its match
 * with the system headers is checked at compile time by scripts/check-drm-uapi.sh).
 */
import { native } from '../../lib/kernel/native';

// _IOC (include/uapi/asm-generic/ioctl.h; powerpc and mips use 13 size bits and other direction values).
const odd = ['ppc', 'ppc64', 'mips', 'mipsel', 'mips64', 'mips64el'].includes(process.arch);
const SIZEBITS = odd ? 13 : 14;
const DIR = odd ? { none: 1, write: 4, read: 2 } : { none: 0, write: 1, read: 2 };
function ioc(dir: number, nr: number, size: number): number {
  expect(size).toBeLessThan(2 ** SIZEBITS);
  return dir * 2 ** (16 + SIZEBITS) + size * 2 ** 16 + 'd'.charCodeAt(0) * 2 ** 8 + nr;
}
const IOW = (nr: number, size: number): number => ioc(DIR.write, nr, size);
const IOWR = (nr: number, size: number): number => ioc(DIR.write | DIR.read, nr, size);

// struct drm_version holds 3 ints, then size_t/pointer pairs: its size follows the pointer size.
const ptr = ['arm', 'ia32', 'mips', 'mipsel', 'ppc'].includes(process.arch) ? 4 : 8;
const drmVersionSize = ptr === 8 ? 12 + 4 + 6 * 8 : 12 + 6 * 4;

// [request, struct size in bytes as the UAPI headers lay it out]
const expected: Record<string, number> = {
  DRM_IOCTL_VERSION: IOWR(0x00, drmVersionSize),
  DRM_IOCTL_GEM_CLOSE: IOW(0x09, 8),
  DRM_IOCTL_SET_CLIENT_CAP: IOW(0x0d, 16),
  DRM_IOCTL_PRIME_HANDLE_TO_FD: IOWR(0x2d, 12),
  DRM_IOCTL_PRIME_FD_TO_HANDLE: IOWR(0x2e, 12),
  DRM_IOCTL_MODE_GETRESOURCES: IOWR(0xa0, 64),
  DRM_IOCTL_MODE_GETENCODER: IOWR(0xa6, 20),
  DRM_IOCTL_MODE_GETCONNECTOR: IOWR(0xa7, 80),
  DRM_IOCTL_MODE_GETPROPERTY: IOWR(0xaa, 64),
  DRM_IOCTL_MODE_RMFB: IOWR(0xaf, 4),
  DRM_IOCTL_MODE_CREATE_DUMB: IOWR(0xb2, 32),
  DRM_IOCTL_MODE_DESTROY_DUMB: IOWR(0xb4, 4),
  DRM_IOCTL_MODE_GETPLANERESOURCES: IOWR(0xb5, 16),
  DRM_IOCTL_MODE_GETPLANE: IOWR(0xb6, 32),
  DRM_IOCTL_MODE_ADDFB2: IOWR(0xb8, 104),
  DRM_IOCTL_MODE_OBJ_GETPROPERTIES: IOWR(0xb9, 32),
  DRM_IOCTL_MODE_ATOMIC: IOWR(0xbc, 56),
  DRM_IOCTL_MODE_CREATEPROPBLOB: IOWR(0xbd, 16),
  DRM_IOCTL_MODE_DESTROYPROPBLOB: IOWR(0xbe, 4),
  DRM_IOCTL_VGEM_FENCE_ATTACH: IOWR(0x41, 16),
  DRM_IOCTL_VGEM_FENCE_SIGNAL: IOW(0x42, 8),
};

test('the addon exports its KMS and vgem functions', () => {
  const n = native as unknown as Record<string, unknown>;
  for (const name of [
    'drmDriverName', 'drmDumbCreate', 'drmDumbDestroy', 'drmPrimeHandleToFd', 'drmPrimeFdToHandle', 'drmGemClose',
    'vgemFenceAttach', 'vgemFenceSignal', 'kmsSetClientCap', 'kmsGetResources', 'kmsGetConnector', 'kmsGetEncoder',
    'kmsGetPlaneResources', 'kmsGetPlane', 'kmsObjectProperties', 'kmsCreateModeBlob', 'kmsDestroyBlob',
    'kmsAddFb2', 'kmsRmFb', 'kmsAtomicCommit',
  ]) {
    expect([name, typeof n[name]]).toEqual([name, 'function']);
  }
  expect('HAVE_VGEM' in native.constants).toBe(false);
});

test('its DRM constants are the UAPI values', () => {
  const c = native.constants;
  expect(c.DRM_CLIENT_CAP_UNIVERSAL_PLANES).toBe(2);
  expect(c.DRM_CLIENT_CAP_ATOMIC).toBe(3);
  expect(c.DRM_MODE_OBJECT_CRTC).toBe(0xcccccccc);
  expect(c.DRM_MODE_OBJECT_CONNECTOR).toBe(0xc0c0c0c0);
  expect(c.DRM_MODE_OBJECT_PLANE).toBe(0xeeeeeeee);
  expect(c.DRM_MODE_ATOMIC_TEST_ONLY).toBe(0x100);
  expect(c.DRM_MODE_ATOMIC_NONBLOCK).toBe(0x200);
  expect(c.DRM_MODE_ATOMIC_ALLOW_MODESET).toBe(0x400);
  expect(c.DRM_MODE_PAGE_FLIP_EVENT).toBe(1);
  expect(c.DRM_FORMAT_XRGB8888).toBe(Buffer.from('XR24').readUInt32LE(0));
});

test(`its ioctl request numbers are the _IOC encoding for ${process.arch}`, () => {
  const c = native.constants as unknown as Record<string, number>;
  const reported = Object.fromEntries(Object.keys(c).filter((k) => k.startsWith('DRM_IOCTL_')).map((k) => [k, c[k]]));
  const hex = (o: Record<string, number>): Record<string, string> =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, `0x${v.toString(16)}`]));
  expect(hex(reported)).toEqual(hex(expected));
});

(process.arch === 'x64' ? test : test.skip)('the x64 numbers are the ones the kernel documents (a spot check without ioc())', () => {
  expect(native.constants.DRM_IOCTL_MODE_ATOMIC).toBe(0xc03864bc);
  expect(native.constants.DRM_IOCTL_VERSION).toBe(0xc0406400);
  expect(native.constants.DRM_IOCTL_VGEM_FENCE_SIGNAL).toBe(0x40086442);
});
