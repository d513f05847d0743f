// The shared lock store's syscalls: mapping the store file MAP_SHARED as an external ArrayBuffer, OFD byte
// locks (the liveness and format locks), and CLOCK_MONOTONIC. Policy (paths, checks, layout) is in
// lib/ww/store-file.ts.
//
// A mapped store keeps its fd: OFD locks belong to the open file description, so the kernel releases this
// environment's locks exactly when the fd is closed, which happens when the environment (main thread or
// worker) ends, or when the process dies, however it dies.
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

struct AttachedStore {
  int fd;
  void* addr;
  size_t size;
};

// At environment teardown: unmap, then close (which drops every OFD lock taken through this fd).
void DetachStore(void* arg) {
  AttachedStore* s = static_cast<AttachedStore*>(arg);
  munmap(s->addr, s->size);
  close(s->fd);
  delete s;
}

void NoFinalize(Napi::Env, void*) {}

// storeAttach(fd, size) -> ArrayBuffer over mmap(MAP_SHARED, PROT_READ|PROT_WRITE) of the whole file. The
// addon owns `fd` from now on: it is closed, and the mapping removed, when this environment ends.
Napi::Value StoreAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  size_t size = ArgSize(info, 1, "size");
  void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap");
  AttachedStore* s = new AttachedStore{fd, addr, size};
  Napi::ArrayBuffer buffer;
  try {
    buffer = Napi::ArrayBuffer::New(env, addr, size, NoFinalize);
  } catch (...) {
    munmap(addr, size);
    delete s;
    throw;
  }
  napi_add_env_cleanup_hook(env, DetachStore, s);
  return buffer;
}

int LockType(const Napi::CallbackInfo& info, size_t index) {
  std::string t = ArgString(info, index, "type");
  if (t == "read") return F_RDLCK;
  if (t == "write") return F_WRLCK;
  if (t == "unlock") return F_UNLCK;
  ThrowRangeError(info.Env(), "The value of \"type\" is out of range. It must be 'read', 'write' or 'unlock'");
}

struct flock Range(const Napi::CallbackInfo& info, size_t index, short type) {
  struct flock fl;
  std::memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(ArgInteger(info, index, "start", 0, kMaxSafeInteger));
  fl.l_len = static_cast<off_t>(ArgInteger(info, index + 1, "length", 1, kMaxSafeInteger));
  fl.l_pid = 0;  // required for OFD locks
  return fl;
}

// ofdLock(fd, type, start, length, wait) -> true if taken (or converted, or released); false if another
// open file description holds a conflicting lock (F_OFD_SETLK: EAGAIN). With `wait`, F_OFD_SETLKW: blocks
// until it can take it, so use it only where the holder releases within microseconds.
Napi::Value OfdLock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  short type = static_cast<short>(LockType(info, 1));
  struct flock fl = Range(info, 2, type);
  bool wait = ArgBool(info, 4, "wait");
  int r;
  do {
    r = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
  } while (r == -1 && errno == EINTR);
  if (r == -1) {
    if (!wait && (errno == EAGAIN || errno == EACCES)) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, wait ? "fcntl(F_OFD_SETLKW)" : "fcntl(F_OFD_SETLK)");
  }
  return Napi::Boolean::New(env, true);
}

// ofdTest(fd, type, start, length) -> true if another open file description holds a lock that conflicts
// with `type` on the range (F_OFD_GETLK). Locks held through `fd` itself never conflict.
Napi::Value OfdTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  short type = static_cast<short>(LockType(info, 1));
  if (type == F_UNLCK) ThrowRangeError(env, "The value of \"type\" is out of range. It must be 'read' or 'write'");
  struct flock fl = Range(info, 2, type);
  if (fcntl(fd, F_OFD_GETLK, &fl) == -1) ThrowErrno(env, errno, "fcntl(F_OFD_GETLK)");
  return Napi::Boolean::New(env, fl.l_type != F_UNLCK);
}

// monotonicMs() -> clock_gettime(CLOCK_MONOTONIC) in ms: one time base for every process of the machine,
// which never jumps (boards without an RTC set the wall clock late).
Napi::Value MonotonicMs(const Napi::CallbackInfo& info) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return Napi::Number::New(info.Env(), static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6);
}

}  // namespace

void InitStore(Napi::Env env, Napi::Object exports) {
  exports.Set("storeAttach", Napi::Function::New(env, StoreAttach, "storeAttach"));
  exports.Set("ofdLock", Napi::Function::New(env, OfdLock, "ofdLock"));
  exports.Set("ofdTest", Napi::Function::New(env, OfdTest, "ofdTest"));
  exports.Set("monotonicMs", Napi::Function::New(env, MonotonicMs, "monotonicMs"));
}

}  // namespace dmabuf_sync
