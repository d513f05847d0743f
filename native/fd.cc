// Plain fd operations: dup, close, open of a device node.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

// dup(fd) -> fcntl(F_DUPFD_CLOEXEC).
Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy == -1) ThrowErrno(info.Env(), errno, "fcntl(F_DUPFD_CLOEXEC)");
  return Napi::Number::New(info.Env(), copy);
}

// close(fd). On Linux the fd is released even when close() reports EINTR, so only other errors throw.
void Close(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  if (close(fd) == -1 && errno != EINTR) ThrowErrno(info.Env(), errno, "close");
}

// openDevice(path) -> open(path, O_RDWR|O_CLOEXEC).
Napi::Value OpenDevice(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  if (path.empty() || path.find('\0') != std::string::npos) {
    ThrowRangeError(info.Env(), "The value of \"path\" is out of range. It must be a non-empty path without NUL");
  }
  int fd;
  do {
    fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  } while (fd == -1 && errno == EINTR);
  if (fd == -1) ThrowErrno(info.Env(), errno, "open(" + path + ")");
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("openDevice", Napi::Function::New(env, OpenDevice, "openDevice"));
}

}  // namespace dmabuf_sync
