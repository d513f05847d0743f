/**
 * The V4L2 part of the addon (native/v4l2.cc), typed: one function per ioctl, no policy. The device fd is
 * opened O_NONBLOCK, so DQBUF and DQEVENT answer null when nothing is ready; the caller waits with waitFd.
 * @internal
 */
import { native } from './native';

/** V4L2 numbers from <linux/videodev2.h>, taken at build time. */
export interface V4l2Constants {
  /** V4L2_BUF_TYPE_VIDEO_CAPTURE, from the kernel headers. */
  V4L2_BUF_TYPE_VIDEO_CAPTURE: number;
  /** V4L2_BUF_TYPE_VIDEO_OUTPUT, from the kernel headers. */
  V4L2_BUF_TYPE_VIDEO_OUTPUT: number;
  /** V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, from the kernel headers. */
  V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE: number;
  /** V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE, from the kernel headers. */
  V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE: number;
  /** V4L2_MEMORY_MMAP, from the kernel headers. */
  V4L2_MEMORY_MMAP: number;
  /** V4L2_MEMORY_DMABUF, from the kernel headers. */
  V4L2_MEMORY_DMABUF: number;
  /** V4L2_CAP_VIDEO_CAPTURE, from the kernel headers. */
  V4L2_CAP_VIDEO_CAPTURE: number;
  /** V4L2_CAP_VIDEO_OUTPUT, from the kernel headers. */
  V4L2_CAP_VIDEO_OUTPUT: number;
  /** V4L2_CAP_VIDEO_CAPTURE_MPLANE, from the kernel headers. */
  V4L2_CAP_VIDEO_CAPTURE_MPLANE: number;
  /** V4L2_CAP_VIDEO_OUTPUT_MPLANE, from the kernel headers. */
  V4L2_CAP_VIDEO_OUTPUT_MPLANE: number;
  /** V4L2_CAP_VIDEO_M2M, from the kernel headers. */
  V4L2_CAP_VIDEO_M2M: number;
  /** V4L2_CAP_VIDEO_M2M_MPLANE, from the kernel headers. */
  V4L2_CAP_VIDEO_M2M_MPLANE: number;
  /** V4L2_CAP_STREAMING, from the kernel headers. */
  V4L2_CAP_STREAMING: number;
  /** V4L2_BUF_FLAG_ERROR, from the kernel headers. */
  V4L2_BUF_FLAG_ERROR: number;
  /** V4L2_BUF_FLAG_LAST, from the kernel headers. */
  V4L2_BUF_FLAG_LAST: number;
  /** V4L2_FIELD_NONE, from the kernel headers. */
  V4L2_FIELD_NONE: number;
  /** V4L2_EVENT_EOS, from the kernel headers. */
  V4L2_EVENT_EOS: number;
  /** V4L2_EVENT_SOURCE_CHANGE, from the kernel headers. */
  V4L2_EVENT_SOURCE_CHANGE: number;
  /** V4L2_PIX_FMT_XRGB32, from the kernel headers. */
  V4L2_PIX_FMT_XRGB32: number;
  /** V4L2_PIX_FMT_XBGR32, from the kernel headers. */
  V4L2_PIX_FMT_XBGR32: number;
  /** V4L2_PIX_FMT_YUYV, from the kernel headers. */
  V4L2_PIX_FMT_YUYV: number;
  /** V4L2_PIX_FMT_NV12, from the kernel headers. */
  V4L2_PIX_FMT_NV12: number;
  /** V4L2_PIX_FMT_RGB24, from the kernel headers. */
  V4L2_PIX_FMT_RGB24: number;
  /** POLLPRI, from the kernel headers. */
  POLLPRI: number;
}

/** VIDIOC_QUERYCAP's answer. */
export interface V4l2Capability {
  /** Driver name, e.g. "vivid". */
  driver: string;
  /** Device name. */
  card: string;
  /** Bus location, e.g. "platform:vivid-000". */
  busInfo: string;
  /** Kernel version (KERNEL_VERSION encoding). */
  version: number;
  /** V4L2_CAP_* bits of the whole device. */
  capabilities: number;
  /** The capabilities of this node (device_caps, or capabilities on drivers without it). */
  deviceCaps: number;
}

/** One plane of a format: line pitch and the bytes a buffer needs. */
export interface V4l2PlaneFormat {
  /** Line pitch in bytes. */
  bytesperline: number;
  /** The bytes a buffer plane needs. */
  sizeimage: number;
}

/** A pixel format (single- or multi-planar; single-planar has one plane). */
export interface V4l2Format {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** FourCC, e.g. V4L2_PIX_FMT_XRGB32 ('XR24'). */
  pixelformat: number;
  /** V4L2_FIELD_* (interlacing). */
  field: number;
  /** V4L2_COLORSPACE_*. */
  colorspace: number;
  /** Each plane's pitch and size (one for single-planar formats). */
  planes: V4l2PlaneFormat[];
}

/** One VIDIOC_ENUM_FMT entry. */
export interface V4l2FormatDesc {
  /** FourCC. */
  pixelformat: number;
  /** The driver's name for the format. */
  description: string;
  /** V4L2_FMT_FLAG_* bits. */
  flags: number;
}

/** One control, as VIDIOC_QUERY_EXT_CTRL reports it. */
export interface V4l2Control {
  /** V4L2_CID_* (or a driver's own id). */
  id: number;
  /** The name getControl()/setControl() take. */
  name: string;
  /** V4L2_CTRL_TYPE_*. */
  type: number;
  /** Smallest value. */
  minimum: number;
  /** Largest value. */
  maximum: number;
  /** Value step. */
  step: number;
  /** Value at reset. */
  defaultValue: number;
  /** V4L2_CTRL_FLAG_* bits. */
  flags: number;
}

/** One input or output (VIDIOC_ENUMINPUT / VIDIOC_ENUMOUTPUT). */
export interface V4l2Io {
  /** The index setInput()/setOutput() take. */
  index: number;
  /** The driver's name for it. */
  name: string;
  /** V4L2_INPUT_TYPE_* / V4L2_OUTPUT_TYPE_*. */
  type: number;
}

/** One plane of a buffer. */
export interface V4l2BufferPlane {
  /** Bytes in the plane. */
  length: number;
  /** Bytes holding data. */
  bytesused: number;
  /** MMAP: the offset to mmap the plane at; else 0. */
  offset: number;
}

/** A buffer as QUERYBUF / DQBUF report it. */
export interface V4l2BufferInfo {
  /** Buffer index on its queue. */
  index: number;
  /** V4L2_BUF_FLAG_* bits. */
  flags: number;
  /** V4L2_FIELD_* of the frame. */
  field: number;
  /** Frame counter of the queue. */
  sequence: number;
  /** The capture timestamp in microseconds (CLOCK_MONOTONIC for most drivers). */
  timestampUs: number;
  /** Per plane: its length, the bytes used and (MMAP) its mmap offset. */
  planes: V4l2BufferPlane[];
}

/** A frame interval in seconds, numerator/denominator. */
export interface V4l2FrameInterval {
  /** Numerator (seconds). */
  numerator: number;
  /** Denominator. */
  denominator: number;
}

/** Buffers added by CREATE_BUFS. */
export interface V4l2BufferRange {
  /** The first new buffer's index. */
  index: number;
  /** How many were added. */
  count: number;
}

/** A dequeued event. */
export interface V4l2Event {
  /** V4L2_EVENT_*. */
  type: number;
  /** The id the subscription named. */
  id: number;
  /** Event counter. */
  sequence: number;
  /** Events still pending after this one. */
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
  v4l2SetParm(fd: number, type: number, numerator: number, denominator: number): V4l2FrameInterval;
  v4l2QueryControls(fd: number): V4l2Control[];
  v4l2GetCtrl(fd: number, id: number): number;
  v4l2SetCtrl(fd: number, id: number, value: number): number;
  v4l2EnumIo(fd: number, output: boolean): V4l2Io[];
  v4l2SetIo(fd: number, output: boolean, index: number): void;
  v4l2ReqBufs(fd: number, type: number, memory: number, count: number): number;
  v4l2CreateBufs(fd: number, type: number, memory: number, count: number): V4l2BufferRange;
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
