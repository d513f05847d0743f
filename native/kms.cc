// DRM KMS ioctls (atomic modesetting): one function per ioctl sequence, arguments checked, errno thrown with
// `code`. The structs and request numbers are the project's own declaration of the UAPI (drm_uapi.h), so every
// build has them. Which connector, CRTC, plane or mode to use, and when to modeset, is decided in
// lib/kernel/kms-display.ts.
#include <errno.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "drm_uapi.h"
#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

// An ioctl of drm_uapi.h by its name without DRM_ (IOCTL_VERSION): errno thrown as "ioctl(DRM_IOCTL_VERSION)".
#define DRM_IOCTL(env, fd, name, arg)                                                                  \
  do {                                                                                                 \
    if (Ioctl((fd), uapi::name, (arg), true) == -1) ThrowErrno((env), errno, "ioctl(DRM_" #name ")"); \
  } while (0)

uint64_t Ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

Napi::Array U32Array(Napi::Env env, const std::vector<uint32_t>& v, size_t n) {
  Napi::Array a = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, v[i]));
  return a;
}

// A u64 property value as a JS number when exact, else a BigInt (rare: 64-bit range properties).
Napi::Value U64Value(Napi::Env env, uint64_t v) {
  if (v <= static_cast<uint64_t>(kMaxSafeInteger)) return Napi::Number::New(env, static_cast<double>(v));
  return Napi::BigInt::New(env, v);
}

Napi::Object ModeObject(Napi::Env env, const uapi::drm_mode_modeinfo& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("clock", m.clock);
  o.Set("hdisplay", m.hdisplay);
  o.Set("hsyncStart", m.hsync_start);
  o.Set("hsyncEnd", m.hsync_end);
  o.Set("htotal", m.htotal);
  o.Set("hskew", m.hskew);
  o.Set("vdisplay", m.vdisplay);
  o.Set("vsyncStart", m.vsync_start);
  o.Set("vsyncEnd", m.vsync_end);
  o.Set("vtotal", m.vtotal);
  o.Set("vscan", m.vscan);
  o.Set("vrefresh", m.vrefresh);
  o.Set("flags", m.flags);
  o.Set("type", m.type);
  size_t len = 0;
  while (len < sizeof m.name && m.name[len] != '\0') len++;
  o.Set("name", Napi::String::New(env, m.name, len));
  return o;
}

// Reads one integer field of a mode object, range-checked.
uint32_t ModeField(Napi::Env env, const Napi::Object& o, const char* key, double max) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) ThrowTypeError(env, std::string("The \"mode.") + key + "\" property must be of type number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::trunc(d) || d < 0 || d > max) {
    ThrowRangeError(env, std::string("The value of \"mode.") + key + "\" is out of range");
  }
  return static_cast<uint32_t>(d);
}

// kmsSetClientCap(fd, cap, value): DRM_IOCTL_SET_CLIENT_CAP.
void KmsSetClientCap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t cap = ArgU32(info, 1, "cap");
  uint32_t value = ArgU32(info, 2, "value");
  uapi::drm_set_client_cap c = {};
  c.capability = cap;
  c.value = value;
  DRM_IOCTL(env, fd, IOCTL_SET_CLIENT_CAP, &c);
}

// kmsGetResources(fd) -> {crtcs, connectors, encoders, minWidth, maxWidth, minHeight, maxHeight}.
Napi::Value KmsGetResources(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uapi::drm_mode_card_res res;
  std::vector<uint32_t> fbs, crtcs, connectors, encoders;
  // The counts can grow between the two calls (hotplug): repeat until they fit.
  for (;;) {
    res = {};
    DRM_IOCTL(env, fd, IOCTL_MODE_GETRESOURCES, &res);
    fbs.resize(res.count_fbs + 1);
    crtcs.resize(res.count_crtcs + 1);
    connectors.resize(res.count_connectors + 1);
    encoders.resize(res.count_encoders + 1);
    uapi::drm_mode_card_res again = res;
    again.fb_id_ptr = Ptr(fbs.data());
    again.crtc_id_ptr = Ptr(crtcs.data());
    again.connector_id_ptr = Ptr(connectors.data());
    again.encoder_id_ptr = Ptr(encoders.data());
    DRM_IOCTL(env, fd, IOCTL_MODE_GETRESOURCES, &again);
    if (again.count_fbs <= res.count_fbs && again.count_crtcs <= res.count_crtcs &&
        again.count_connectors <= res.count_connectors && again.count_encoders <= res.count_encoders) {
      res = again;
      break;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("crtcs", U32Array(env, crtcs, res.count_crtcs));
  o.Set("connectors", U32Array(env, connectors, res.count_connectors));
  o.Set("encoders", U32Array(env, encoders, res.count_encoders));
  o.Set("minWidth", res.min_width);
  o.Set("maxWidth", res.max_width);
  o.Set("minHeight", res.min_height);
  o.Set("maxHeight", res.max_height);
  return o;
}

// kmsGetConnector(fd, id) -> {id, type, typeId, connection, encoderId, encoders, modes, mmWidth, mmHeight}.
// The first call with no mode array makes the kernel probe the outputs (that is what fills the mode list).
Napi::Value KmsGetConnector(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t id = ArgU32(info, 1, "connectorId");
  uapi::drm_mode_get_connector c;
  std::vector<uint32_t> encoders;
  std::vector<uapi::drm_mode_modeinfo> modes;
  for (;;) {
    c = {};
    c.connector_id = id;
    DRM_IOCTL(env, fd, IOCTL_MODE_GETCONNECTOR, &c);
    encoders.resize(c.count_encoders + 1);
    modes.resize(c.count_modes + 1);
    uapi::drm_mode_get_connector again = {};
    again.connector_id = id;
    again.count_encoders = c.count_encoders;
    again.count_modes = c.count_modes;
    again.encoders_ptr = Ptr(encoders.data());
    again.modes_ptr = Ptr(modes.data());
    DRM_IOCTL(env, fd, IOCTL_MODE_GETCONNECTOR, &again);
    if (again.count_encoders <= c.count_encoders && again.count_modes <= c.count_modes) {
      c = again;
      break;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", c.connector_id);
  o.Set("type", c.connector_type);
  o.Set("typeId", c.connector_type_id);
  o.Set("connection", c.connection);
  o.Set("encoderId", c.encoder_id);
  o.Set("encoders", U32Array(env, encoders, c.count_encoders));
  Napi::Array ms = Napi::Array::New(env, c.count_modes);
  for (uint32_t i = 0; i < c.count_modes; i++) ms.Set(i, ModeObject(env, modes[i]));
  o.Set("modes", ms);
  o.Set("mmWidth", c.mm_width);
  o.Set("mmHeight", c.mm_height);
  return o;
}

// kmsGetEncoder(fd, id) -> {id, type, crtcId, possibleCrtcs}.
Napi::Value KmsGetEncoder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t id = ArgU32(info, 1, "encoderId");
  uapi::drm_mode_get_encoder e = {};
  e.encoder_id = id;
  DRM_IOCTL(env, fd, IOCTL_MODE_GETENCODER, &e);
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", e.encoder_id);
  o.Set("type", e.encoder_type);
  o.Set("crtcId", e.crtc_id);
  o.Set("possibleCrtcs", e.possible_crtcs);
  return o;
}

// kmsGetPlaneResources(fd) -> plane ids (all planes once DRM_CLIENT_CAP_UNIVERSAL_PLANES is set).
Napi::Value KmsGetPlaneResources(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  std::vector<uint32_t> planes;
  uapi::drm_mode_get_plane_res r;
  for (;;) {
    r = {};
    DRM_IOCTL(env, fd, IOCTL_MODE_GETPLANERESOURCES, &r);
    planes.resize(r.count_planes + 1);
    uapi::drm_mode_get_plane_res again = {};
    again.count_planes = r.count_planes;
    again.plane_id_ptr = Ptr(planes.data());
    DRM_IOCTL(env, fd, IOCTL_MODE_GETPLANERESOURCES, &again);
    if (again.count_planes <= r.count_planes) {
      r = again;
      break;
    }
  }
  return U32Array(env, planes, r.count_planes);
}

// kmsGetPlane(fd, id) -> {id, crtcId, fbId, possibleCrtcs, formats}.
Napi::Value KmsGetPlane(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t id = ArgU32(info, 1, "planeId");
  uapi::drm_mode_get_plane p = {};
  p.plane_id = id;
  DRM_IOCTL(env, fd, IOCTL_MODE_GETPLANE, &p);
  std::vector<uint32_t> formats(p.count_format_types + 1);
  uint32_t count = p.count_format_types;
  p = {};
  p.plane_id = id;
  p.count_format_types = count;
  p.format_type_ptr = Ptr(formats.data());
  DRM_IOCTL(env, fd, IOCTL_MODE_GETPLANE, &p);
  if (p.count_format_types < count) count = p.count_format_types;
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", p.plane_id);
  o.Set("crtcId", p.crtc_id);
  o.Set("fbId", p.fb_id);
  o.Set("possibleCrtcs", p.possible_crtcs);
  o.Set("formats", U32Array(env, formats, count));
  return o;
}

// kmsObjectProperties(fd, objectId, objectType) -> [{id, name, value}]: OBJ_GETPROPERTIES, then GETPROPERTY
// on each id for its name.
Napi::Value KmsObjectProperties(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t id = ArgU32(info, 1, "objectId");
  uint32_t type = ArgU32(info, 2, "objectType");
  std::vector<uint32_t> props;
  std::vector<uint64_t> values;
  uapi::drm_mode_obj_get_properties g;
  for (;;) {
    g = {};
    g.obj_id = id;
    g.obj_type = type;
    DRM_IOCTL(env, fd, IOCTL_MODE_OBJ_GETPROPERTIES, &g);
    props.resize(g.count_props + 1);
    values.resize(g.count_props + 1);
    uapi::drm_mode_obj_get_properties again = {};
    again.obj_id = id;
    again.obj_type = type;
    again.count_props = g.count_props;
    again.props_ptr = Ptr(props.data());
    again.prop_values_ptr = Ptr(values.data());
    DRM_IOCTL(env, fd, IOCTL_MODE_OBJ_GETPROPERTIES, &again);
    if (again.count_props <= g.count_props) {
      g = again;
      break;
    }
  }
  Napi::Array out = Napi::Array::New(env, g.count_props);
  for (uint32_t i = 0; i < g.count_props; i++) {
    uapi::drm_mode_get_property p = {};
    p.prop_id = props[i];
    DRM_IOCTL(env, fd, IOCTL_MODE_GETPROPERTY, &p);
    size_t len = 0;
    while (len < sizeof p.name && p.name[len] != '\0') len++;
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", props[i]);
    o.Set("name", Napi::String::New(env, p.name, len));
    o.Set("value", U64Value(env, values[i]));
    out.Set(i, o);
  }
  return out;
}

// kmsCreateModeBlob(fd, mode) -> blob id: DRM_IOCTL_MODE_CREATEPROPBLOB of a drm_mode_modeinfo built from a
// mode object as kmsGetConnector returns it.
Napi::Value KmsCreateModeBlob(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (!info[1].IsObject()) ThrowTypeError(env, "The \"mode\" argument must be an object");
  Napi::Object o = info[1].As<Napi::Object>();
  uapi::drm_mode_modeinfo m = {};
  m.clock = ModeField(env, o, "clock", 4294967295.0);
  m.hdisplay = ModeField(env, o, "hdisplay", 65535);
  m.hsync_start = ModeField(env, o, "hsyncStart", 65535);
  m.hsync_end = ModeField(env, o, "hsyncEnd", 65535);
  m.htotal = ModeField(env, o, "htotal", 65535);
  m.hskew = ModeField(env, o, "hskew", 65535);
  m.vdisplay = ModeField(env, o, "vdisplay", 65535);
  m.vsync_start = ModeField(env, o, "vsyncStart", 65535);
  m.vsync_end = ModeField(env, o, "vsyncEnd", 65535);
  m.vtotal = ModeField(env, o, "vtotal", 65535);
  m.vscan = ModeField(env, o, "vscan", 65535);
  m.vrefresh = ModeField(env, o, "vrefresh", 4294967295.0);
  m.flags = ModeField(env, o, "flags", 4294967295.0);
  m.type = ModeField(env, o, "type", 4294967295.0);
  Napi::Value name = o.Get("name");
  if (name.IsString()) {
    std::string s = name.As<Napi::String>().Utf8Value();
    s.copy(m.name, sizeof m.name - 1);
  }
  uapi::drm_mode_create_blob b = {};
  b.data = Ptr(&m);
  b.length = sizeof m;
  DRM_IOCTL(env, fd, IOCTL_MODE_CREATEPROPBLOB, &b);
  return Napi::Number::New(env, b.blob_id);
}

// kmsDestroyBlob(fd, blobId): DRM_IOCTL_MODE_DESTROYPROPBLOB.
void KmsDestroyBlob(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t id = ArgU32(info, 1, "blobId");
  uapi::drm_mode_destroy_blob b = {};
  b.blob_id = id;
  DRM_IOCTL(env, fd, IOCTL_MODE_DESTROYPROPBLOB, &b);
}

// drmDumbDestroy(fd, handle): DRM_IOCTL_MODE_DESTROY_DUMB.
void DrmDumbDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t handle = ArgU32(info, 1, "handle");
  uapi::drm_mode_destroy_dumb d = {};
  d.handle = handle;
  DRM_IOCTL(env, fd, IOCTL_MODE_DESTROY_DUMB, &d);
}

// drmPrimeFdToHandle(fd, dmaBufFd) -> GEM handle: DRM_IOCTL_PRIME_FD_TO_HANDLE.
Napi::Value DrmPrimeFdToHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int dmabuf = ArgFd(info, 1, "dmaBufFd");
  uapi::drm_prime_handle p = {};
  p.fd = dmabuf;
  DRM_IOCTL(env, fd, IOCTL_PRIME_FD_TO_HANDLE, &p);
  return Napi::Number::New(env, p.handle);
}

// kmsAddFb2(fd, width, height, fourcc, handle, pitch, offset) -> framebuffer id: DRM_IOCTL_MODE_ADDFB2 with
// one plane and no modifier.
Napi::Value KmsAddFb2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t width = ArgU32(info, 1, "width");
  uint32_t height = ArgU32(info, 2, "height");
  uint32_t fourcc = ArgU32(info, 3, "fourcc");
  uint32_t handle = ArgU32(info, 4, "handle");
  uint32_t pitch = ArgU32(info, 5, "pitch");
  uint32_t offset = ArgU32(info, 6, "offset");
  uapi::drm_mode_fb_cmd2 f = {};
  f.width = width;
  f.height = height;
  f.pixel_format = fourcc;
  f.handles[0] = handle;
  f.pitches[0] = pitch;
  f.offsets[0] = offset;
  DRM_IOCTL(env, fd, IOCTL_MODE_ADDFB2, &f);
  return Napi::Number::New(env, f.fb_id);
}

// kmsRmFb(fd, fbId): DRM_IOCTL_MODE_RMFB.
void KmsRmFb(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t id = ArgU32(info, 1, "fbId");
  unsigned int fb = id;
  DRM_IOCTL(env, fd, IOCTL_MODE_RMFB, &fb);
}

// kmsAtomicCommit(fd, objs, counts, props, values, flags, outFenceIndex) -> out-fence fd or -1.
// objs[i] has counts[i] consecutive (props, values) pairs. values are numbers (negative ones are passed as
// their two's complement, e.g. IN_FENCE_FD -1). When outFenceIndex >= 0, values[outFenceIndex] (the
// OUT_FENCE_PTR property) is replaced by a pointer to an s32 the kernel fills with a new sync_file fd, which
// is returned (close-on-exec, owned by the caller).
Napi::Value KmsAtomicCommit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    ThrowTypeError(env, "The \"objs\" argument must be a Uint32Array");
  }
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    ThrowTypeError(env, "The \"counts\" argument must be a Uint32Array");
  }
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    ThrowTypeError(env, "The \"props\" argument must be a Uint32Array");
  }
  if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    ThrowTypeError(env, "The \"values\" argument must be a Float64Array");
  }
  Napi::Uint32Array objs = info[1].As<Napi::Uint32Array>();
  Napi::Uint32Array counts = info[2].As<Napi::Uint32Array>();
  Napi::Uint32Array props = info[3].As<Napi::Uint32Array>();
  Napi::Float64Array values = info[4].As<Napi::Float64Array>();
  uint32_t flags = ArgU32(info, 5, "flags");
  double out_index = ArgInteger(info, 6, "outFenceIndex", -1, 4294967295.0);
  if (counts.ElementLength() != objs.ElementLength()) {
    ThrowRangeError(env, "The \"counts\" argument must have one element per object");
  }
  if (props.ElementLength() != values.ElementLength()) {
    ThrowRangeError(env, "The \"props\" and \"values\" arguments must have the same length");
  }
  uint64_t total = 0;
  for (size_t i = 0; i < counts.ElementLength(); i++) total += counts[i];
  if (total != props.ElementLength()) ThrowRangeError(env, "The sum of \"counts\" must equal the length of \"props\"");
  if (out_index >= static_cast<double>(props.ElementLength())) {
    ThrowRangeError(env, "The value of \"outFenceIndex\" is out of range");
  }
  std::vector<uint64_t> raw(values.ElementLength() + 1);
  for (size_t i = 0; i < values.ElementLength(); i++) {
    double d = values[i];
    if (!std::isfinite(d) || d != std::trunc(d) || std::fabs(d) > kMaxSafeInteger) {
      ThrowRangeError(env, "The value of \"values[" + std::to_string(i) + "]\" is out of range. It must be a safe integer");
    }
    raw[i] = d < 0 ? static_cast<uint64_t>(static_cast<int64_t>(d)) : static_cast<uint64_t>(d);
  }
  int32_t out_fence = -1;
  if (out_index >= 0) raw[static_cast<size_t>(out_index)] = Ptr(&out_fence);
  uapi::drm_mode_atomic a = {};
  a.flags = flags;
  a.count_objs = static_cast<uint32_t>(objs.ElementLength());
  a.objs_ptr = Ptr(objs.Data());
  a.count_props_ptr = Ptr(counts.Data());
  a.props_ptr = Ptr(props.Data());
  a.prop_values_ptr = Ptr(raw.data());
  // No retry on EAGAIN here: a nonblocking commit's EBUSY/EAGAIN is the caller's to handle.
  if (Ioctl(fd, uapi::IOCTL_MODE_ATOMIC, &a, false) == -1) ThrowErrno(env, errno, "ioctl(DRM_IOCTL_MODE_ATOMIC)");
  return Napi::Number::New(env, out_fence);
}

}  // namespace

void InitKms(Napi::Env env, Napi::Object exports) {
  exports.Set("kmsSetClientCap", Napi::Function::New(env, KmsSetClientCap, "kmsSetClientCap"));
  exports.Set("kmsGetResources", Napi::Function::New(env, KmsGetResources, "kmsGetResources"));
  exports.Set("kmsGetConnector", Napi::Function::New(env, KmsGetConnector, "kmsGetConnector"));
  exports.Set("kmsGetEncoder", Napi::Function::New(env, KmsGetEncoder, "kmsGetEncoder"));
  exports.Set("kmsGetPlaneResources", Napi::Function::New(env, KmsGetPlaneResources, "kmsGetPlaneResources"));
  exports.Set("kmsGetPlane", Napi::Function::New(env, KmsGetPlane, "kmsGetPlane"));
  exports.Set("kmsObjectProperties", Napi::Function::New(env, KmsObjectProperties, "kmsObjectProperties"));
  exports.Set("kmsCreateModeBlob", Napi::Function::New(env, KmsCreateModeBlob, "kmsCreateModeBlob"));
  exports.Set("kmsDestroyBlob", Napi::Function::New(env, KmsDestroyBlob, "kmsDestroyBlob"));
  exports.Set("drmDumbDestroy", Napi::Function::New(env, DrmDumbDestroy, "drmDumbDestroy"));
  exports.Set("drmPrimeFdToHandle", Napi::Function::New(env, DrmPrimeFdToHandle, "drmPrimeFdToHandle"));
  exports.Set("kmsAddFb2", Napi::Function::New(env, KmsAddFb2, "kmsAddFb2"));
  exports.Set("kmsRmFb", Napi::Function::New(env, KmsRmFb, "kmsRmFb"));
  exports.Set("kmsAtomicCommit", Napi::Function::New(env, KmsAtomicCommit, "kmsAtomicCommit"));
}

// Constants the TypeScript side needs, from drm_uapi.h; the request numbers too, so a test can check each
// against the _IOC encoding of the architecture it runs on (and a user can see the DRM part is there).
void KmsConstants(Napi::Env env, Napi::Object c) {
  c.Set("DRM_CLIENT_CAP_UNIVERSAL_PLANES", Napi::Number::New(env, uapi::CLIENT_CAP_UNIVERSAL_PLANES));
  c.Set("DRM_CLIENT_CAP_ATOMIC", Napi::Number::New(env, uapi::CLIENT_CAP_ATOMIC));
  c.Set("DRM_MODE_OBJECT_CRTC", Napi::Number::New(env, uapi::MODE_OBJECT_CRTC));
  c.Set("DRM_MODE_OBJECT_CONNECTOR", Napi::Number::New(env, uapi::MODE_OBJECT_CONNECTOR));
  c.Set("DRM_MODE_OBJECT_PLANE", Napi::Number::New(env, uapi::MODE_OBJECT_PLANE));
  c.Set("DRM_MODE_ATOMIC_TEST_ONLY", Napi::Number::New(env, uapi::MODE_ATOMIC_TEST_ONLY));
  c.Set("DRM_MODE_ATOMIC_NONBLOCK", Napi::Number::New(env, uapi::MODE_ATOMIC_NONBLOCK));
  c.Set("DRM_MODE_ATOMIC_ALLOW_MODESET", Napi::Number::New(env, uapi::MODE_ATOMIC_ALLOW_MODESET));
  c.Set("DRM_MODE_PAGE_FLIP_EVENT", Napi::Number::New(env, uapi::MODE_PAGE_FLIP_EVENT));
  // The UAPI headers name neither the connection states nor the plane types; both are ABI (libdrm's
  // DRM_MODE_CONNECTED, the kernel's enum drm_plane_type behind the "type" property).
  c.Set("DRM_MODE_CONNECTED", Napi::Number::New(env, 1));
  c.Set("DRM_PLANE_TYPE_PRIMARY", Napi::Number::New(env, 1));
  c.Set("DRM_FORMAT_XRGB8888", Napi::Number::New(env, uapi::FORMAT_XRGB8888));
  c.Set("DRM_IOCTL_VERSION", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_VERSION)));
  c.Set("DRM_IOCTL_GEM_CLOSE", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_GEM_CLOSE)));
  c.Set("DRM_IOCTL_SET_CLIENT_CAP", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_SET_CLIENT_CAP)));
  c.Set("DRM_IOCTL_PRIME_HANDLE_TO_FD", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_PRIME_HANDLE_TO_FD)));
  c.Set("DRM_IOCTL_PRIME_FD_TO_HANDLE", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_PRIME_FD_TO_HANDLE)));
  c.Set("DRM_IOCTL_MODE_GETRESOURCES", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_GETRESOURCES)));
  c.Set("DRM_IOCTL_MODE_GETENCODER", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_GETENCODER)));
  c.Set("DRM_IOCTL_MODE_GETCONNECTOR", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_GETCONNECTOR)));
  c.Set("DRM_IOCTL_MODE_GETPROPERTY", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_GETPROPERTY)));
  c.Set("DRM_IOCTL_MODE_RMFB", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_RMFB)));
  c.Set("DRM_IOCTL_MODE_CREATE_DUMB", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_CREATE_DUMB)));
  c.Set("DRM_IOCTL_MODE_DESTROY_DUMB", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_DESTROY_DUMB)));
  c.Set("DRM_IOCTL_MODE_GETPLANERESOURCES", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_GETPLANERESOURCES)));
  c.Set("DRM_IOCTL_MODE_GETPLANE", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_GETPLANE)));
  c.Set("DRM_IOCTL_MODE_ADDFB2", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_ADDFB2)));
  c.Set("DRM_IOCTL_MODE_OBJ_GETPROPERTIES", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_OBJ_GETPROPERTIES)));
  c.Set("DRM_IOCTL_MODE_ATOMIC", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_ATOMIC)));
  c.Set("DRM_IOCTL_MODE_CREATEPROPBLOB", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_CREATEPROPBLOB)));
  c.Set("DRM_IOCTL_MODE_DESTROYPROPBLOB", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_MODE_DESTROYPROPBLOB)));
  c.Set("DRM_IOCTL_VGEM_FENCE_ATTACH", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_VGEM_FENCE_ATTACH)));
  c.Set("DRM_IOCTL_VGEM_FENCE_SIGNAL", Napi::Number::New(env, static_cast<double>(uapi::IOCTL_VGEM_FENCE_SIGNAL)));
}

}  // namespace dmabuf_sync
