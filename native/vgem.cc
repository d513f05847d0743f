// DRM / vgem ioctls (test support: a device whose fences userspace can attach and signal). Without the DRM
// UAPI headers (HAVE_VGEM undefined) every function validates its arguments and throws ENOSYS.
#include <errno.h>

#include <cstdint>
#include <string>
#include <vector>

#ifdef HAVE_VGEM
#include <fcntl.h>  // O_CLOEXEC, O_RDWR behind DRM_CLOEXEC, DRM_RDWR
#include <linux/ioctl.h>  // _IO* for drm.h
// The headers may be the kernel's include/uapi copies, not run through headers_install: strip __user.
#ifndef __user
#define __user
#endif
#include "drm.h"
#include "vgem_drm.h"
#endif

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

#ifdef HAVE_VGEM
#define DRM_IOCTL_OR_ENOSYS(env, fd, request, arg)                                               \
  do {                                                                                           \
    if (Ioctl((fd), (request), (arg), true) == -1) ThrowErrno((env), errno, "ioctl(" #request ")"); \
  } while (0)
#else
#define DRM_IOCTL_OR_ENOSYS(env, fd, request, arg) ThrowNoDrmHeaders((env), "ioctl(" #request ")")
#endif

// drmDriverName(fd) -> DRM_IOCTL_VERSION's name.
Napi::Value DrmDriverName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
#ifdef HAVE_VGEM
  struct drm_version version = {};
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_VERSION, &version);
  size_t len = version.name_len;
  std::vector<char> name(len + 1);
  version = {};
  version.name_len = len;
  version.name = name.data();
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_VERSION, &version);
  if (version.name_len < len) len = version.name_len;
  return Napi::String::New(env, name.data(), len);
#else
  (void)fd;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_VERSION, nullptr);
#endif
}

// drmDumbCreate(fd, width, height, bpp) -> {handle, pitch, size}.
Napi::Value DrmDumbCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t width = ArgU32(info, 1, "width");
  uint32_t height = ArgU32(info, 2, "height");
  uint32_t bpp = ArgU32(info, 3, "bpp");
#ifdef HAVE_VGEM
  struct drm_mode_create_dumb dumb = {};
  dumb.width = width;
  dumb.height = height;
  dumb.bpp = bpp;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_MODE_CREATE_DUMB, &dumb);
  Napi::Object result = Napi::Object::New(env);
  result.Set("handle", Napi::Number::New(env, dumb.handle));
  result.Set("pitch", Napi::Number::New(env, dumb.pitch));
  result.Set("size", Napi::Number::New(env, static_cast<double>(dumb.size)));
  return result;
#else
  (void)fd, (void)width, (void)height, (void)bpp;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_MODE_CREATE_DUMB, nullptr);
#endif
}

// drmPrimeHandleToFd(fd, handle) -> dma-buf fd (DRM_CLOEXEC|DRM_RDWR).
Napi::Value DrmPrimeHandleToFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t handle = ArgU32(info, 1, "handle");
#ifdef HAVE_VGEM
  struct drm_prime_handle prime = {};
  prime.handle = handle;
  prime.flags = DRM_CLOEXEC | DRM_RDWR;
  prime.fd = -1;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &prime);
  return Napi::Number::New(env, prime.fd);
#else
  (void)fd, (void)handle;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, nullptr);
#endif
}

// drmGemClose(fd, handle).
void DrmGemClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t handle = ArgU32(info, 1, "handle");
#ifdef HAVE_VGEM
  struct drm_gem_close close = {};
  close.handle = handle;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_GEM_CLOSE, &close);
#else
  (void)fd, (void)handle;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_GEM_CLOSE, nullptr);
#endif
}

// vgemFenceAttach(fd, handle, write) -> fence id.
Napi::Value VgemFenceAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t handle = ArgU32(info, 1, "handle");
  bool write = ArgBool(info, 2, "write");
#ifdef HAVE_VGEM
  struct drm_vgem_fence_attach attach = {};
  attach.handle = handle;
  attach.flags = write ? VGEM_FENCE_WRITE : 0;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_VGEM_FENCE_ATTACH, &attach);
  return Napi::Number::New(env, attach.out_fence);
#else
  (void)fd, (void)handle, (void)write;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_VGEM_FENCE_ATTACH, nullptr);
#endif
}

// vgemFenceSignal(fd, fenceId).
void VgemFenceSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t fence = ArgU32(info, 1, "fenceId");
#ifdef HAVE_VGEM
  struct drm_vgem_fence_signal signal = {};
  signal.fence = fence;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_VGEM_FENCE_SIGNAL, &signal);
#else
  (void)fd, (void)fence;
  DRM_IOCTL_OR_ENOSYS(env, fd, DRM_IOCTL_VGEM_FENCE_SIGNAL, nullptr);
#endif
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
