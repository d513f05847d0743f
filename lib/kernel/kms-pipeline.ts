/**
 * The display pipeline of a KMS device: which connector shows the picture, which CRTC drives it, which
 * primary plane feeds the CRTC, the mode to use, and the ids of the atomic properties a commit sets. Found
 * once, when a KmsDisplay opens the card: the first connected connector, the CRTC its encoder already drives
 * (or the first one it can), and a primary plane of that CRTC that takes XRGB8888.
 */
import { native, type NativeKmsMode } from './native';
import { DmabufError, kernelCall } from '../errors';

/** The property ids an atomic commit needs, by object. */
export interface KmsPropertyIds {
  connector: { CRTC_ID: number };
  crtc: { MODE_ID: number; ACTIVE: number; OUT_FENCE_PTR: number };
  plane: {
    FB_ID: number; CRTC_ID: number; IN_FENCE_FD: number;
    SRC_X: number; SRC_Y: number; SRC_W: number; SRC_H: number;
    CRTC_X: number; CRTC_Y: number; CRTC_W: number; CRTC_H: number;
  };
}

/** What KmsDisplay drives. */
export interface KmsPipeline {
  connectorId: number;
  crtcId: number;
  planeId: number;
  mode: NativeKmsMode;
  props: KmsPropertyIds;
}

const DRM_MODE_TYPE_PREFERRED = 1 << 3; // drm_mode.h: DRM_MODE_TYPE_PREFERRED

/** Property name → id of a KMS object; throws ENOTSUP naming the first missing property. */
function propertyIds<K extends string>(fd: number, objectId: number, objectType: number, names: readonly K[], what: string): Record<K, number> {
  const all = kernelCall(`reading the properties of ${what}`, () => native.kmsObjectProperties(fd, objectId, objectType));
  const out = {} as Record<K, number>;
  for (const name of names) {
    const p = all.find((q) => q.name === name);
    if (!p) throw new DmabufError('ENOTSUP', `${what} has no "${name}" property: the driver does not support atomic modesetting with explicit fences`);
    out[name] = p.id;
  }
  return out;
}

/** The plane's "type" property value (primary, overlay, cursor). */
function planeType(fd: number, planeId: number): number | bigint | undefined {
  const props = kernelCall('reading plane properties', () => native.kmsObjectProperties(fd, planeId, native.constants.DRM_MODE_OBJECT_PLANE));
  return props.find((p) => p.name === 'type')?.value;
}

/**
 * Finds the pipeline on an open card with atomic and universal-planes caps already set. Throws ENODEV when
 * nothing is connected or no primary plane takes XRGB8888.
 */
export function findPipeline(fd: number, path: string): KmsPipeline {
  const c = native.constants;
  const res = kernelCall(`${path}: DRM_IOCTL_MODE_GETRESOURCES`, () => native.kmsGetResources(fd));
  for (const connectorId of res.connectors) {
    const conn = kernelCall(`${path}: reading connector ${connectorId}`, () => native.kmsGetConnector(fd, connectorId));
    if (conn.connection !== c.DRM_MODE_CONNECTED || conn.modes.length === 0) continue;
    const mode = conn.modes.find((m) => (m.type & DRM_MODE_TYPE_PREFERRED) !== 0) ?? (conn.modes[0] as NativeKmsMode);
    // Prefer the CRTC the connector's current encoder drives; otherwise any CRTC one of its encoders can use.
    const crtcCandidates: number[] = [];
    for (const encoderId of [conn.encoderId, ...conn.encoders].filter((id) => id !== 0)) {
      const enc = kernelCall(`${path}: reading encoder ${encoderId}`, () => native.kmsGetEncoder(fd, encoderId));
      if (encoderId === conn.encoderId && enc.crtcId !== 0) crtcCandidates.push(enc.crtcId);
      res.crtcs.forEach((crtcId, index) => {
        if ((enc.possibleCrtcs & (1 << index)) !== 0) crtcCandidates.push(crtcId);
      });
    }
    for (const crtcId of crtcCandidates) {
      const crtcIndex = res.crtcs.indexOf(crtcId);
      const planeIds = kernelCall(`${path}: DRM_IOCTL_MODE_GETPLANERESOURCES`, () => native.kmsGetPlaneResources(fd));
      for (const planeId of planeIds) {
        const plane = kernelCall(`${path}: reading plane ${planeId}`, () => native.kmsGetPlane(fd, planeId));
        if ((plane.possibleCrtcs & (1 << crtcIndex)) === 0) continue;
        if (Number(planeType(fd, planeId)) !== c.DRM_PLANE_TYPE_PRIMARY) continue;
        if (!plane.formats.includes(c.DRM_FORMAT_XRGB8888)) continue;
        return {
          connectorId,
          crtcId,
          planeId,
          mode,
          props: {
            connector: propertyIds(fd, connectorId, c.DRM_MODE_OBJECT_CONNECTOR, ['CRTC_ID'], `connector ${connectorId}`),
            crtc: propertyIds(fd, crtcId, c.DRM_MODE_OBJECT_CRTC, ['MODE_ID', 'ACTIVE', 'OUT_FENCE_PTR'], `CRTC ${crtcId}`),
            plane: propertyIds(fd, planeId, c.DRM_MODE_OBJECT_PLANE,
              ['FB_ID', 'CRTC_ID', 'IN_FENCE_FD', 'SRC_X', 'SRC_Y', 'SRC_W', 'SRC_H', 'CRTC_X', 'CRTC_Y', 'CRTC_W', 'CRTC_H'], `plane ${planeId}`),
          },
        };
      }
    }
  }
  throw new DmabufError('ENODEV', `${path}: no connected output with a primary plane that takes XRGB8888; connect a monitor (or give the VM a display device)`);
}
