// sync_file ioctls: fence info and merge.
#include <errno.h>
#include <linux/ioctl.h>  // _IO* for the UAPI header below (not always included by it)
#include <linux/sync_file.h>
#include <string.h>

#include <cstdint>
#include <vector>

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

Napi::String FixedString(Napi::Env env, const char* s, size_t max) { return Napi::String::New(env, s, strnlen(s, max)); }

// syncFileInfo(fd) -> {name, status, fences: [{objName, driverName, status, flags, timestampNs}]}.
Napi::Value SyncFileInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  struct sync_file_info file = {};
  if (Ioctl(fd, SYNC_IOC_FILE_INFO, &file) == -1) ThrowErrno(env, errno, "ioctl(SYNC_IOC_FILE_INFO)");
  std::vector<struct sync_fence_info> fences(file.num_fences);
  if (file.num_fences > 0) {
    __u32 count = file.num_fences;
    file = {};
    file.num_fences = count;
    file.sync_fence_info = static_cast<__u64>(reinterpret_cast<uintptr_t>(fences.data()));
    if (Ioctl(fd, SYNC_IOC_FILE_INFO, &file) == -1) ThrowErrno(env, errno, "ioctl(SYNC_IOC_FILE_INFO)");
    fences.resize(file.num_fences < count ? file.num_fences : count);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("name", FixedString(env, file.name, sizeof file.name));
  result.Set("status", Napi::Number::New(env, file.status));
  Napi::Array list = Napi::Array::New(env, fences.size());
  for (size_t i = 0; i < fences.size(); i++) {
    const struct sync_fence_info& f = fences[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("objName", FixedString(env, f.obj_name, sizeof f.obj_name));
    o.Set("driverName", FixedString(env, f.driver_name, sizeof f.driver_name));
    o.Set("status", Napi::Number::New(env, f.status));
    o.Set("flags", Napi::Number::New(env, f.flags));
    o.Set("timestampNs", Napi::BigInt::New(env, static_cast<uint64_t>(f.timestamp_ns)));
    list.Set(static_cast<uint32_t>(i), o);
  }
  result.Set("fences", list);
  return result;
}

// syncFileMerge(fd1, fd2, name) -> new sync_file fd (the kernel opens it O_CLOEXEC).
Napi::Value SyncFileMerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd1 = ArgFd(info, 0, "fd1");
  struct sync_merge_data data = {};
  data.fd2 = ArgFd(info, 1, "fd2");
  std::string name = ArgString(info, 2, "name");
  if (name.size() >= sizeof data.name || name.find('\0') != std::string::npos) {
    ThrowRangeError(env, "The value of \"name\" is out of range. It must be at most " +
                             std::to_string(sizeof data.name - 1) + " bytes of UTF-8 without NUL. Received " +
                             std::to_string(name.size()) + " bytes");
  }
  memcpy(data.name, name.c_str(), name.size() + 1);
  data.fence = -1;
  if (Ioctl(fd1, SYNC_IOC_MERGE, &data) == -1) ThrowErrno(env, errno, "ioctl(SYNC_IOC_MERGE)");
  return Napi::Number::New(env, data.fence);
}

}  // namespace

void InitSyncFile(Napi::Env env, Napi::Object exports) {
  exports.Set("syncFileInfo", Napi::Function::New(env, SyncFileInfo, "syncFileInfo"));
  exports.Set("syncFileMerge", Napi::Function::New(env, SyncFileMerge, "syncFileMerge"));
}

}  // namespace dmabuf_sync
