/**
 * The V4L2 part of the addon (native/v4l2.cc), typed: one function per ioctl, no policy. The device fd is
 * opened O_NONBLOCK, so DQBUF and DQEVENT answer null when nothing is ready; the caller waits with waitFd.
 * @internal
 */
import { native } from './native';

/** V4L2 numbers from <linux/videodev2.h>, taken at build time. */
export interface V4l2Constants {
  V4L2_BUF_TYPE_VIDEO_CAPTURE: number;
  V4L2_BUF_TYPE_VIDEO_OUTPUT: number;
  V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE: number;
  V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE: number;
  V4L2_MEMORY_MMAP: number;
  V4L2_MEMORY_DMABUF: number;
  V4L2_CAP_VIDEO_CAPTURE: number;
  V4L2_CAP_VIDEO_OUTPUT: number;
  V4L2_CAP_VIDEO_CAPTURE_MPLANE: number;
  V4L2_CAP_VIDEO_OUTPUT_MPLANE: number;
  V4L2_CAP_VIDEO_M2M: number;
  V4L2_CAP_VIDEO_M2M_MPLANE: number;
  V4L2_CAP_STREAMING: number;
  V4L2_BUF_FLAG_ERROR: number;
  V4L2_BUF_FLAG_LAST: number;
  V4L2_FIELD_NONE: number;
  V4L2_EVENT_EOS: number;
  V4L2_EVENT_SOURCE_CHANGE: number;
  V4L2_PIX_FMT_XRGB32: number;
  V4L2_PIX_FMT_XBGR32: number;
  V4L2_PIX_FMT_YUYV: number;
  V4L2_PIX_FMT_NV12: number;
  V4L2_PIX_FMT_RGB24: number;
  POLLPRI: number;
}

/** VIDIOC_QUERYCAP's answer. */
export interface V4l2Capability {
  driver: string;
  card: string;
  busInfo: string;
  version: number;
  capabilities: number;
  /** The capabilities of this node (device_caps, or capabilities on drivers without it). */
  deviceCaps: number;
}

/** One plane of a format: line pitch and the bytes a buffer needs. */
export interface V4l2PlaneFormat {
  bytesperline: number;
  sizeimage: number;
}

/** A pixel format (single- or multi-planar; single-planar has one plane). */
export interface V4l2Format {
  width: number;
  height: number;
  /** FourCC, e.g. V4L2_PIX_FMT_XRGB32 ('XR24'). */
  pixelformat: number;
  field: number;
  colorspace: number;
  planes: V4l2PlaneFormat[];
}

/** One VIDIOC_ENUM_FMT entry. */
export interface V4l2FormatDesc {
  pixelformat: number;
  description: string;
  flags: number;
}

/** One control, as VIDIOC_QUERY_EXT_CTRL reports it. */
export interface V4l2Control {
  id: number;
  name: string;
  type: number;
  minimum: number;
  maximum: number;
  step: number;
  defaultValue: number;
  flags: number;
}

/** One input or output (VIDIOC_ENUMINPUT / VIDIOC_ENUMOUTPUT). */
export interface V4l2Io {
  index: number;
  name: string;
  type: number;
}

/** A buffer as QUERYBUF / DQBUF report it. */
export interface V4l2BufferInfo {
  index: number;
  flags: number;
  field: number;
  sequence: number;
  /** The capture timestamp in microseconds (CLOCK_MONOTONIC for most drivers). */
  timestampUs: number;
  planes: { length: number; bytesused: number; offset: number }[];
}

/** A dequeued event. */
export interface V4l2Event {
  type: number;
  id: number;
  sequence: number;
  pending: number;
  /** V4L2_EVENT_SRC_CH_* bits of a source-change event, else 0. */
  changes: number;
}

/** The addon's V4L2 functions. */
export interface V4l2Native {
  constants: V4l2Constants;
  v4l2Open(path: string): number;
  v4l2QueryCap(fd: number): V4l2Capability;
  v4l2EnumFmt(fd: number, type: number): V4l2FormatDesc[];
  v4l2GetFmt(fd: number, type: number): V4l2Format;
  v4l2SetFmt(fd: number, type: number, format: { width: number; height: number; pixelformat: number; field?: number }, tryOnly: boolean): V4l2Format;
  v4l2SetParm(fd: number, type: number, numerator: number, denominator: number): { numerator: number; denominator: number };
  v4l2QueryControls(fd: number): V4l2Control[];
  v4l2GetCtrl(fd: number, id: number): number;
  v4l2SetCtrl(fd: number, id: number, value: number): number;
  v4l2EnumIo(fd: number, output: boolean): V4l2Io[];
  v4l2SetIo(fd: number, output: boolean, index: number): void;
  v4l2ReqBufs(fd: number, type: number, memory: number, count: number): number;
  v4l2CreateBufs(fd: number, type: number, memory: number, count: number): { index: number; count: number };
  v4l2QueryBuf(fd: number, type: number, memory: number, index: number): V4l2BufferInfo;
  v4l2ExpBuf(fd: number, type: number, index: number, plane: number): number;
  v4l2Qbuf(fd: number, type: number, memory: number, index: number, dmabufFds: number[] | null, bytesused: number[] | null): void;
  v4l2Dqbuf(fd: number, type: number, memory: number): V4l2BufferInfo | null;
  v4l2Stream(fd: number, type: number, on: boolean): void;
  v4l2SubscribeEvent(fd: number, type: number, id: number): void;
  v4l2DqEvent(fd: number): V4l2Event | null;
}

/** The addon, seen through its V4L2 functions. */
export const v4l2 = native as unknown as V4l2Native;
