// V4L2 ioctls: one function per ioctl, arguments checked, errno thrown with `code`. Structs and request
// numbers come from <linux/videodev2.h>. Which format, how many buffers, when to queue and the locks taken
// around QBUF/DQBUF are decided in lib/kernel/v4l2-device.ts and lib/sync/device-hold.ts. The device is
// opened O_NONBLOCK: DQBUF/DQEVENT answer null when nothing is ready and the caller waits with waitFd.
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

#define V4L2_IOCTL(env, fd, request, arg)                                                    \
  do {                                                                                       \
    if (Ioctl((fd), (request), (arg)) == -1) ThrowErrno((env), errno, "ioctl(" #request ")"); \
  } while (0)

std::string FixedString(const uint8_t* s, size_t max) {
  size_t len = 0;
  while (len < max && s[len] != '\0') len++;
  return std::string(reinterpret_cast<const char*>(s), len);
}

bool IsMplane(uint32_t type) {
  return type == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE || type == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
}

// A buffer type argument: one of the four video types (the only ones this library drives).
uint32_t ArgBufType(const Napi::CallbackInfo& info, size_t index) {
  uint32_t type = ArgU32(info, index, "type");
  if (type != V4L2_BUF_TYPE_VIDEO_CAPTURE && type != V4L2_BUF_TYPE_VIDEO_OUTPUT &&
      type != V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE && type != V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE) {
    ThrowRangeError(info.Env(), "The value of \"type\" must be a V4L2 video buffer type; received " +
                                    std::to_string(type));
  }
  return type;
}

uint32_t ArgMemory(const Napi::CallbackInfo& info, size_t index) {
  uint32_t memory = ArgU32(info, index, "memory");
  if (memory != V4L2_MEMORY_MMAP && memory != V4L2_MEMORY_DMABUF) {
    ThrowRangeError(info.Env(), "The value of \"memory\" must be V4L2_MEMORY_MMAP or V4L2_MEMORY_DMABUF; received " +
                                    std::to_string(memory));
  }
  return memory;
}

uint32_t ObjU32(Napi::Env env, const Napi::Object& o, const char* key, uint32_t fallback, bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    if (required) ThrowTypeError(env, std::string("The \"format.") + key + "\" property must be of type number");
    return fallback;
  }
  if (!v.IsNumber()) ThrowTypeError(env, std::string("The \"format.") + key + "\" property must be of type number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) {
    ThrowRangeError(env, std::string("The value of \"format.") + key + "\" is out of range");
  }
  return static_cast<uint32_t>(d);
}

Napi::Object FormatObject(Napi::Env env, const v4l2_format& f) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Array planes = Napi::Array::New(env);
  if (IsMplane(f.type)) {
    const v4l2_pix_format_mplane& p = f.fmt.pix_mp;
    o.Set("width", p.width);
    o.Set("height", p.height);
    o.Set("pixelformat", p.pixelformat);
    o.Set("field", p.field);
    o.Set("colorspace", p.colorspace);
    for (uint32_t i = 0; i < p.num_planes && i < VIDEO_MAX_PLANES; i++) {
      Napi::Object pl = Napi::Object::New(env);
      pl.Set("bytesperline", p.plane_fmt[i].bytesperline);
      pl.Set("sizeimage", p.plane_fmt[i].sizeimage);
      planes.Set(i, pl);
    }
  } else {
    const v4l2_pix_format& p = f.fmt.pix;
    o.Set("width", p.width);
    o.Set("height", p.height);
    o.Set("pixelformat", p.pixelformat);
    o.Set("field", p.field);
    o.Set("colorspace", p.colorspace);
    Napi::Object pl = Napi::Object::New(env);
    pl.Set("bytesperline", p.bytesperline);
    pl.Set("sizeimage", p.sizeimage);
    planes.Set(0u, pl);
  }
  o.Set("planes", planes);
  return o;
}

// v4l2Open(path) -> fd: open(path, O_RDWR|O_NONBLOCK|O_CLOEXEC).
Napi::Value V4l2Open(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int fd;
  do {
    fd = open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  } while (fd == -1 && errno == EINTR);
  if (fd == -1) ThrowErrno(info.Env(), errno, "open(" + path + ")");
  return Napi::Number::New(info.Env(), fd);
}

// v4l2QueryCap(fd) -> {driver, card, busInfo, version, capabilities, deviceCaps}.
Napi::Value V4l2QueryCap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  v4l2_capability cap = {};
  V4L2_IOCTL(env, fd, VIDIOC_QUERYCAP, &cap);
  Napi::Object o = Napi::Object::New(env);
  o.Set("driver", FixedString(cap.driver, sizeof cap.driver));
  o.Set("card", FixedString(cap.card, sizeof cap.card));
  o.Set("busInfo", FixedString(cap.bus_info, sizeof cap.bus_info));
  o.Set("version", cap.version);
  o.Set("capabilities", cap.capabilities);
  o.Set("deviceCaps", (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities);
  return o;
}

// v4l2EnumFmt(fd, type) -> [{pixelformat, description, flags}].
Napi::Value V4l2EnumFmt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t type = ArgBufType(info, 1);
  Napi::Array out = Napi::Array::New(env);
  for (uint32_t i = 0;; i++) {
    v4l2_fmtdesc d = {};
    d.index = i;
    d.type = type;
    if (Ioctl(fd, VIDIOC_ENUM_FMT, &d) == -1) {
      if (errno == EINVAL) break;
      ThrowErrno(env, errno, "ioctl(VIDIOC_ENUM_FMT)");
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("pixelformat", d.pixelformat);
    o.Set("description", FixedString(d.description, sizeof d.description));
    o.Set("flags", d.flags);
    out.Set(i, o);
  }
  return out;
}

// v4l2GetFmt(fd, type) -> {width, height, pixelformat, field, colorspace, planes: [{bytesperline, sizeimage}]}.
Napi::Value V4l2GetFmt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  v4l2_format f = {};
  f.type = ArgBufType(info, 1);
  V4L2_IOCTL(env, fd, VIDIOC_G_FMT, &f);
  return FormatObject(env, f);
}

// v4l2SetFmt(fd, type, {width, height, pixelformat, field?}, tryOnly) -> the format the driver chose.
Napi::Value V4l2SetFmt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t type = ArgBufType(info, 1);
  if (!info[2].IsObject()) ThrowTypeError(env, "The \"format\" argument must be of type object");
  Napi::Object o = info[2].As<Napi::Object>();
  bool try_only = ArgBool(info, 3, "tryOnly");
  uint32_t width = ObjU32(env, o, "width", 0, true);
  uint32_t height = ObjU32(env, o, "height", 0, true);
  uint32_t pixelformat = ObjU32(env, o, "pixelformat", 0, true);
  uint32_t field = ObjU32(env, o, "field", V4L2_FIELD_NONE, false);
  v4l2_format f = {};
  f.type = type;
  V4L2_IOCTL(env, fd, VIDIOC_G_FMT, &f);  // keep the fields not given (colorspace, quantization...)
  if (IsMplane(type)) {
    f.fmt.pix_mp.width = width;
    f.fmt.pix_mp.height = height;
    f.fmt.pix_mp.pixelformat = pixelformat;
    f.fmt.pix_mp.field = field;
    for (auto& p : f.fmt.pix_mp.plane_fmt) p.bytesperline = 0, p.sizeimage = 0;
  } else {
    f.fmt.pix.width = width;
    f.fmt.pix.height = height;
    f.fmt.pix.pixelformat = pixelformat;
    f.fmt.pix.field = field;
    f.fmt.pix.bytesperline = 0;
    f.fmt.pix.sizeimage = 0;
  }
  if (try_only) {
    V4L2_IOCTL(env, fd, VIDIOC_TRY_FMT, &f);
  } else {
    V4L2_IOCTL(env, fd, VIDIOC_S_FMT, &f);
  }
  return FormatObject(env, f);
}

// v4l2SetParm(fd, type, numerator, denominator) -> {numerator, denominator} (the frame interval set).
Napi::Value V4l2SetParm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t type = ArgBufType(info, 1);
  uint32_t num = ArgU32(info, 2, "numerator");
  uint32_t den = ArgU32(info, 3, "denominator");
  if (num == 0 || den == 0) ThrowRangeError(env, "The frame interval must be a positive fraction");
  v4l2_streamparm p = {};
  p.type = type;
  v4l2_fract* tpf;
  if (type == V4L2_BUF_TYPE_VIDEO_CAPTURE || type == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE) {
    tpf = &p.parm.capture.timeperframe;
  } else {
    tpf = &p.parm.output.timeperframe;
  }
  tpf->numerator = num;
  tpf->denominator = den;
  V4L2_IOCTL(env, fd, VIDIOC_S_PARM, &p);
  Napi::Object o = Napi::Object::New(env);
  o.Set("numerator", tpf->numerator);
  o.Set("denominator", tpf->denominator);
  return o;
}

// v4l2QueryControls(fd) -> [{id, name, type, minimum, maximum, step, defaultValue, flags}] (every control,
// through VIDIOC_QUERY_EXT_CTRL with V4L2_CTRL_FLAG_NEXT_CTRL; class headers skipped).
Napi::Value V4l2QueryControls(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  v4l2_query_ext_ctrl q = {};
  q.id = V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND;
  while (Ioctl(fd, VIDIOC_QUERY_EXT_CTRL, &q) == 0) {
    if (q.type != V4L2_CTRL_TYPE_CTRL_CLASS) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("id", q.id);
      o.Set("name", FixedString(reinterpret_cast<const uint8_t*>(q.name), sizeof q.name));
      o.Set("type", q.type);
      o.Set("minimum", static_cast<double>(q.minimum));
      o.Set("maximum", static_cast<double>(q.maximum));
      o.Set("step", static_cast<double>(q.step));
      o.Set("defaultValue", static_cast<double>(q.default_value));
      o.Set("flags", q.flags);
      out.Set(n++, o);
    }
    q.id |= V4L2_CTRL_FLAG_NEXT_CTRL | V4L2_CTRL_FLAG_NEXT_COMPOUND;
  }
  if (errno != EINVAL) ThrowErrno(env, errno, "ioctl(VIDIOC_QUERY_EXT_CTRL)");
  return out;
}

// v4l2GetCtrl(fd, id) -> value (VIDIOC_G_CTRL).
Napi::Value V4l2GetCtrl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  v4l2_control c = {};
  c.id = ArgU32(info, 1, "id");
  V4L2_IOCTL(env, fd, VIDIOC_G_CTRL, &c);
  return Napi::Number::New(env, c.value);
}

// v4l2SetCtrl(fd, id, value) -> the value the driver kept (VIDIOC_S_CTRL).
Napi::Value V4l2SetCtrl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  v4l2_control c = {};
  c.id = ArgU32(info, 1, "id");
  c.value = static_cast<int32_t>(ArgInteger(info, 2, "value", -2147483648.0, 2147483647.0));
  V4L2_IOCTL(env, fd, VIDIOC_S_CTRL, &c);
  return Napi::Number::New(env, c.value);
}

// v4l2EnumIo(fd, output) -> [{index, name, type}] (VIDIOC_ENUMINPUT or VIDIOC_ENUMOUTPUT).
Napi::Value V4l2EnumIo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  bool output = ArgBool(info, 1, "output");
  Napi::Array out = Napi::Array::New(env);
  for (uint32_t i = 0;; i++) {
    Napi::Object o = Napi::Object::New(env);
    int r;
    if (output) {
      v4l2_output e = {};
      e.index = i;
      r = Ioctl(fd, VIDIOC_ENUMOUTPUT, &e);
      if (r == 0) o.Set("name", FixedString(e.name, sizeof e.name)), o.Set("type", e.type);
    } else {
      v4l2_input e = {};
      e.index = i;
      r = Ioctl(fd, VIDIOC_ENUMINPUT, &e);
      if (r == 0) o.Set("name", FixedString(e.name, sizeof e.name)), o.Set("type", e.type);
    }
    if (r == -1) {
      if (errno == EINVAL || (i == 0 && errno == ENOTTY)) break;
      ThrowErrno(env, errno, output ? "ioctl(VIDIOC_ENUMOUTPUT)" : "ioctl(VIDIOC_ENUMINPUT)");
    }
    o.Set("index", i);
    out.Set(i, o);
  }
  return out;
}

// v4l2SetIo(fd, output, index): VIDIOC_S_INPUT or VIDIOC_S_OUTPUT.
void V4l2SetIo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  bool output = ArgBool(info, 1, "output");
  int index = static_cast<int>(ArgInteger(info, 2, "index", 0, 2147483647.0));
  if (output) {
    V4L2_IOCTL(env, fd, VIDIOC_S_OUTPUT, &index);
  } else {
    V4L2_IOCTL(env, fd, VIDIOC_S_INPUT, &index);
  }
}

// v4l2ReqBufs(fd, type, memory, count) -> the count the driver allocated (0 frees every buffer).
Napi::Value V4l2ReqBufs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  v4l2_requestbuffers r = {};
  r.type = ArgBufType(info, 1);
  r.memory = ArgMemory(info, 2);
  r.count = static_cast<uint32_t>(ArgInteger(info, 3, "count", 0, VIDEO_MAX_FRAME));
  V4L2_IOCTL(env, fd, VIDIOC_REQBUFS, &r);
  return Napi::Number::New(env, r.count);
}

// v4l2CreateBufs(fd, type, memory, count) -> {index, count}: more buffers for the current format.
Napi::Value V4l2CreateBufs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  v4l2_create_buffers c = {};
  c.format.type = ArgBufType(info, 1);
  c.memory = ArgMemory(info, 2);
  c.count = static_cast<uint32_t>(ArgInteger(info, 3, "count", 1, VIDEO_MAX_FRAME));
  V4L2_IOCTL(env, fd, VIDIOC_G_FMT, &c.format);
  V4L2_IOCTL(env, fd, VIDIOC_CREATE_BUFS, &c);
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", c.index);
  o.Set("count", c.count);
  return o;
}

// Fills buf (and planes) for QUERYBUF/QBUF/DQBUF.
void InitBuffer(v4l2_buffer* b, v4l2_plane* planes, uint32_t type, uint32_t memory, uint32_t index) {
  std::memset(b, 0, sizeof *b);
  std::memset(planes, 0, sizeof(v4l2_plane) * VIDEO_MAX_PLANES);
  b->type = type;
  b->memory = memory;
  b->index = index;
  if (IsMplane(type)) {
    b->m.planes = planes;
    b->length = VIDEO_MAX_PLANES;
  }
}

Napi::Object BufferObject(Napi::Env env, const v4l2_buffer& b, const v4l2_plane* planes) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", b.index);
  o.Set("flags", b.flags);
  o.Set("field", b.field);
  o.Set("sequence", b.sequence);
  o.Set("timestampUs", static_cast<double>(b.timestamp.tv_sec) * 1e6 + static_cast<double>(b.timestamp.tv_usec));
  Napi::Array pl = Napi::Array::New(env);
  if (IsMplane(b.type)) {
    for (uint32_t i = 0; i < b.length && i < VIDEO_MAX_PLANES; i++) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("length", planes[i].length);
      p.Set("bytesused", planes[i].bytesused);
      p.Set("offset", planes[i].m.mem_offset);
      pl.Set(i, p);
    }
  } else {
    Napi::Object p = Napi::Object::New(env);
    p.Set("length", b.length);
    p.Set("bytesused", b.bytesused);
    p.Set("offset", b.memory == V4L2_MEMORY_MMAP ? b.m.offset : 0);
    pl.Set(0u, p);
  }
  o.Set("planes", pl);
  return o;
}

// v4l2QueryBuf(fd, type, memory, index) -> {index, flags, planes: [{length, bytesused, offset}], ...}.
Napi::Value V4l2QueryBuf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t type = ArgBufType(info, 1);
  uint32_t memory = ArgMemory(info, 2);
  uint32_t index = ArgU32(info, 3, "index");
  v4l2_buffer b;
  v4l2_plane planes[VIDEO_MAX_PLANES];
  InitBuffer(&b, planes, type, memory, index);
  V4L2_IOCTL(env, fd, VIDIOC_QUERYBUF, &b);
  return BufferObject(env, b, planes);
}

// v4l2ExpBuf(fd, type, index, plane) -> dma-buf fd (O_RDWR|O_CLOEXEC), owned by the caller.
Napi::Value V4l2ExpBuf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  v4l2_exportbuffer e = {};
  e.type = ArgBufType(info, 1);
  e.index = ArgU32(info, 2, "index");
  e.plane = static_cast<uint32_t>(ArgInteger(info, 3, "plane", 0, VIDEO_MAX_PLANES - 1));
  e.flags = O_RDWR | O_CLOEXEC;
  V4L2_IOCTL(env, fd, VIDIOC_EXPBUF, &e);
  return Napi::Number::New(env, e.fd);
}

// v4l2Qbuf(fd, type, memory, index, dmabufFds|null, bytesused|null): VIDIOC_QBUF. dmabufFds (one per plane)
// for V4L2_MEMORY_DMABUF; bytesused (one per plane) for output queues.
void V4l2Qbuf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t type = ArgBufType(info, 1);
  uint32_t memory = ArgMemory(info, 2);
  uint32_t index = ArgU32(info, 3, "index");
  auto list = [&](size_t i, const char* name, double min, double max, uint32_t* out) -> uint32_t {
    if (info[i].IsNull() || info[i].IsUndefined()) return 0;
    if (!info[i].IsArray()) ThrowTypeError(env, std::string("The \"") + name + "\" argument must be an array or null");
    Napi::Array a = info[i].As<Napi::Array>();
    if (a.Length() < 1 || a.Length() > VIDEO_MAX_PLANES) {
      ThrowRangeError(env, std::string("The \"") + name + "\" argument must have 1 to 8 entries");
    }
    for (uint32_t k = 0; k < a.Length(); k++) {
      Napi::Value v = a.Get(k);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= min && d <= max) || d != static_cast<double>(static_cast<int64_t>(d))) {
        ThrowRangeError(env, std::string("The \"") + name + "\" entries must be integers in range");
      }
      out[k] = static_cast<uint32_t>(d);
    }
    return a.Length();
  };
  uint32_t fds[VIDEO_MAX_PLANES] = {};
  uint32_t used[VIDEO_MAX_PLANES] = {};
  uint32_t nfds = list(4, "dmabufFds", 0, 2147483647.0, fds);
  uint32_t nused = list(5, "bytesused", 0, 4294967295.0, used);
  if (memory == V4L2_MEMORY_DMABUF && nfds == 0) ThrowTypeError(env, "V4L2_MEMORY_DMABUF needs dmabufFds");
  if (memory != V4L2_MEMORY_DMABUF && nfds != 0) ThrowTypeError(env, "dmabufFds are for V4L2_MEMORY_DMABUF only");
  if (!IsMplane(type) && (nfds > 1 || nused > 1)) ThrowRangeError(env, "A single-planar buffer has one plane");
  v4l2_buffer b;
  v4l2_plane planes[VIDEO_MAX_PLANES];
  InitBuffer(&b, planes, type, memory, index);
  if (IsMplane(type)) {
    uint32_t n = nfds > nused ? nfds : nused;
    if (n == 0) {
      // The plane count from QUERYBUF.
      v4l2_buffer q;
      v4l2_plane qp[VIDEO_MAX_PLANES];
      InitBuffer(&q, qp, type, memory, index);
      V4L2_IOCTL(env, fd, VIDIOC_QUERYBUF, &q);
      n = q.length;
    }
    b.length = n;
    for (uint32_t k = 0; k < n; k++) {
      if (k < nfds) planes[k].m.fd = static_cast<int32_t>(fds[k]);
      if (k < nused) planes[k].bytesused = used[k];
    }
  } else {
    if (nfds) b.m.fd = static_cast<int32_t>(fds[0]);
    if (nused) b.bytesused = used[0];
  }
  V4L2_IOCTL(env, fd, VIDIOC_QBUF, &b);
}

// v4l2Dqbuf(fd, type, memory) -> the dequeued buffer, or null when none is ready (EAGAIN).
Napi::Value V4l2Dqbuf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t type = ArgBufType(info, 1);
  uint32_t memory = ArgMemory(info, 2);
  v4l2_buffer b;
  v4l2_plane planes[VIDEO_MAX_PLANES];
  InitBuffer(&b, planes, type, memory, 0);
  if (Ioctl(fd, VIDIOC_DQBUF, &b) == -1) {
    if (errno == EAGAIN) return env.Null();
    ThrowErrno(env, errno, "ioctl(VIDIOC_DQBUF)");
  }
  return BufferObject(env, b, planes);
}

// v4l2Stream(fd, type, on): VIDIOC_STREAMON / VIDIOC_STREAMOFF.
void V4l2Stream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int type = static_cast<int>(ArgBufType(info, 1));
  bool on = ArgBool(info, 2, "on");
  if (on) {
    V4L2_IOCTL(env, fd, VIDIOC_STREAMON, &type);
  } else {
    V4L2_IOCTL(env, fd, VIDIOC_STREAMOFF, &type);
  }
}

// v4l2SubscribeEvent(fd, type, id): VIDIOC_SUBSCRIBE_EVENT.
void V4l2SubscribeEvent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  v4l2_event_subscription s = {};
  s.type = ArgU32(info, 1, "type");
  s.id = ArgU32(info, 2, "id");
  V4L2_IOCTL(env, fd, VIDIOC_SUBSCRIBE_EVENT, &s);
}

// v4l2DqEvent(fd) -> {type, id, sequence, pending, changes} or null when none is pending.
Napi::Value V4l2DqEvent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  v4l2_event e = {};
  if (Ioctl(fd, VIDIOC_DQEVENT, &e) == -1) {
    if (errno == ENOENT || errno == EAGAIN) return env.Null();
    ThrowErrno(env, errno, "ioctl(VIDIOC_DQEVENT)");
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", e.type);
  o.Set("id", e.id);
  o.Set("sequence", e.sequence);
  o.Set("pending", e.pending);
  o.Set("changes", e.type == V4L2_EVENT_SOURCE_CHANGE ? e.u.src_change.changes : 0);
  return o;
}

}  // namespace

void V4l2Constants(Napi::Env env, Napi::Object c) {
#define V4L2_CONST(name) c.Set(#name, Napi::Number::New(env, static_cast<double>(name)))
  V4L2_CONST(V4L2_BUF_TYPE_VIDEO_CAPTURE);
  V4L2_CONST(V4L2_BUF_TYPE_VIDEO_OUTPUT);
  V4L2_CONST(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE);
  V4L2_CONST(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE);
  V4L2_CONST(V4L2_MEMORY_MMAP);
  V4L2_CONST(V4L2_MEMORY_DMABUF);
  V4L2_CONST(V4L2_CAP_VIDEO_CAPTURE);
  V4L2_CONST(V4L2_CAP_VIDEO_OUTPUT);
  V4L2_CONST(V4L2_CAP_VIDEO_CAPTURE_MPLANE);
  V4L2_CONST(V4L2_CAP_VIDEO_OUTPUT_MPLANE);
  V4L2_CONST(V4L2_CAP_VIDEO_M2M);
  V4L2_CONST(V4L2_CAP_VIDEO_M2M_MPLANE);
  V4L2_CONST(V4L2_CAP_STREAMING);
  V4L2_CONST(V4L2_BUF_FLAG_ERROR);
  V4L2_CONST(V4L2_BUF_FLAG_LAST);
  V4L2_CONST(V4L2_FIELD_NONE);
  V4L2_CONST(V4L2_EVENT_EOS);
  V4L2_CONST(V4L2_EVENT_SOURCE_CHANGE);
  V4L2_CONST(V4L2_PIX_FMT_XRGB32);
  V4L2_CONST(V4L2_PIX_FMT_XBGR32);
  V4L2_CONST(V4L2_PIX_FMT_YUYV);
  V4L2_CONST(V4L2_PIX_FMT_NV12);
  V4L2_CONST(V4L2_PIX_FMT_RGB24);
  V4L2_CONST(POLLPRI);
#undef V4L2_CONST
}

void InitV4l2(Napi::Env env, Napi::Object exports) {
  exports.Set("v4l2Open", Napi::Function::New(env, V4l2Open, "v4l2Open"));
  exports.Set("v4l2QueryCap", Napi::Function::New(env, V4l2QueryCap, "v4l2QueryCap"));
  exports.Set("v4l2EnumFmt", Napi::Function::New(env, V4l2EnumFmt, "v4l2EnumFmt"));
  exports.Set("v4l2GetFmt", Napi::Function::New(env, V4l2GetFmt, "v4l2GetFmt"));
  exports.Set("v4l2SetFmt", Napi::Function::New(env, V4l2SetFmt, "v4l2SetFmt"));
  exports.Set("v4l2SetParm", Napi::Function::New(env, V4l2SetParm, "v4l2SetParm"));
  exports.Set("v4l2QueryControls", Napi::Function::New(env, V4l2QueryControls, "v4l2QueryControls"));
  exports.Set("v4l2GetCtrl", Napi::Function::New(env, V4l2GetCtrl, "v4l2GetCtrl"));
  exports.Set("v4l2SetCtrl", Napi::Function::New(env, V4l2SetCtrl, "v4l2SetCtrl"));
  exports.Set("v4l2EnumIo", Napi::Function::New(env, V4l2EnumIo, "v4l2EnumIo"));
  exports.Set("v4l2SetIo", Napi::Function::New(env, V4l2SetIo, "v4l2SetIo"));
  exports.Set("v4l2ReqBufs", Napi::Function::New(env, V4l2ReqBufs, "v4l2ReqBufs"));
  exports.Set("v4l2CreateBufs", Napi::Function::New(env, V4l2CreateBufs, "v4l2CreateBufs"));
  exports.Set("v4l2QueryBuf", Napi::Function::New(env, V4l2QueryBuf, "v4l2QueryBuf"));
  exports.Set("v4l2ExpBuf", Napi::Function::New(env, V4l2ExpBuf, "v4l2ExpBuf"));
  exports.Set("v4l2Qbuf", Napi::Function::New(env, V4l2Qbuf, "v4l2Qbuf"));
  exports.Set("v4l2Dqbuf", Napi::Function::New(env, V4l2Dqbuf, "v4l2Dqbuf"));
  exports.Set("v4l2Stream", Napi::Function::New(env, V4l2Stream, "v4l2Stream"));
  exports.Set("v4l2SubscribeEvent", Napi::Function::New(env, V4l2SubscribeEvent, "v4l2SubscribeEvent"));
  exports.Set("v4l2DqEvent", Napi::Function::New(env, V4l2DqEvent, "v4l2DqEvent"));
}

}  // namespace dmabuf_sync
