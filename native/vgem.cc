// DRM / vgem ioctls (test support: a device whose fences userspace can attach and signal). The structs and
// request numbers are the project's own declaration of the UAPI (drm_uapi.h), so every build has them.
#include <errno.h>

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

// drmDriverName(fd) -> DRM_IOCTL_VERSION's name.
Napi::Value DrmDriverName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uapi::drm_version version = {};
  DRM_IOCTL(env, fd, IOCTL_VERSION, &version);
  size_t len = version.name_len;
  std::vector<char> name(len + 1);
  version = {};
  version.name_len = len;
  version.name = name.data();
  DRM_IOCTL(env, fd, IOCTL_VERSION, &version);
  if (version.name_len < len) len = version.name_len;
  return Napi::String::New(env, name.data(), len);
}

// drmDumbCreate(fd, width, height, bpp) -> {handle, pitch, size}.
Napi::Value DrmDumbCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t width = ArgU32(info, 1, "width");
  uint32_t height = ArgU32(info, 2, "height");
  uint32_t bpp = ArgU32(info, 3, "bpp");
  uapi::drm_mode_create_dumb dumb = {};
  dumb.width = width;
  dumb.height = height;
  dumb.bpp = bpp;
  DRM_IOCTL(env, fd, IOCTL_MODE_CREATE_DUMB, &dumb);
  Napi::Object result = Napi::Object::New(env);
  result.Set("handle", Napi::Number::New(env, dumb.handle));
  result.Set("pitch", Napi::Number::New(env, dumb.pitch));
  result.Set("size", Napi::Number::New(env, static_cast<double>(dumb.size)));
  return result;
}

// drmPrimeHandleToFd(fd, handle) -> dma-buf fd (DRM_CLOEXEC|DRM_RDWR).
Napi::Value DrmPrimeHandleToFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t handle = ArgU32(info, 1, "handle");
  uapi::drm_prime_handle prime = {};
  prime.handle = handle;
  prime.flags = uapi::CLOEXEC | uapi::RDWR;
  prime.fd = -1;
  DRM_IOCTL(env, fd, IOCTL_PRIME_HANDLE_TO_FD, &prime);
  return Napi::Number::New(env, prime.fd);
}

// drmGemClose(fd, handle).
void DrmGemClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t handle = ArgU32(info, 1, "handle");
  uapi::drm_gem_close close = {};
  close.handle = handle;
  DRM_IOCTL(env, fd, IOCTL_GEM_CLOSE, &close);
}

// vgemFenceAttach(fd, handle, write) -> fence id.
Napi::Value VgemFenceAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t handle = ArgU32(info, 1, "handle");
  bool write = ArgBool(info, 2, "write");
  uapi::drm_vgem_fence_attach attach = {};
  attach.handle = handle;
  attach.flags = write ? uapi::VGEM_FENCE_FLAG_WRITE : 0;
  DRM_IOCTL(env, fd, IOCTL_VGEM_FENCE_ATTACH, &attach);
  return Napi::Number::New(env, attach.out_fence);
}

// vgemFenceSignal(fd, fenceId).
void VgemFenceSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t fence = ArgU32(info, 1, "fenceId");
  uapi::drm_vgem_fence_signal signal = {};
  signal.fence = fence;
  DRM_IOCTL(env, fd, IOCTL_VGEM_FENCE_SIGNAL, &signal);
}

}  // namespace

void InitVgem(Napi::Env env, Napi::Object exports) {
  exports.Set("drmDriverName", Napi::Function::New(env, DrmDriverName, "drmDriverName"));
  exports.Set("drmDumbCreate", Napi::Function::New(env, DrmDumbCreate, "drmDumbCreate"));
  exports.Set("drmPrimeHandleToFd", Napi::Function::New(env, DrmPrimeHandleToFd, "drmPrimeHandleToFd"));
  exports.Set("drmGemClose", Napi::Function::New(env, DrmGemClose, "drmGemClose"));
  exports.Set("vgemFenceAttach", Napi::Function::New(env, VgemFenceAttach, "vgemFenceAttach"));
  exports.Set("vgemFenceSignal", Napi::Function::New(env, VgemFenceSignal, "vgemFenceSignal"));
}

}  // namespace dmabuf_sync
