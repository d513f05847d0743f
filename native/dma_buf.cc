// dma-buf ioctls: the CPU-access cache bracket and sync_file export/import.
#include <errno.h>
// <linux/ioctl.h> first: some kernel header sets (cross toolchains, older boards) do not include it from
// the UAPI header, and _IOW/_IOWR would be undeclared. Numbers and layouts come from these headers, per arch.
#include <linux/ioctl.h>
#include <linux/dma-buf.h>
#include <poll.h>
#include <unistd.h>

#include <vector>

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

// dmaBufSync(fd, flags): DMA_BUF_IOCTL_SYNC. May block briefly in the kernel (cache maintenance, implicit
// fence wait); EINTR/EAGAIN are retried. Flags are passed through: the kernel rejects bad ones (EINVAL).
void DmaBufSync(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  struct dma_buf_sync sync = {};
  sync.flags = static_cast<__u64>(ArgInteger(info, 1, "flags", 0, kMaxSafeInteger));
  if (Ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync, true) == -1) ThrowErrno(info.Env(), errno, "ioctl(DMA_BUF_IOCTL_SYNC)");
}

// exportSyncFile(fd, flags) -> sync_file fd (the kernel opens it O_CLOEXEC).
Napi::Value ExportSyncFile(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  struct dma_buf_export_sync_file arg = {};
  arg.flags = ArgU32(info, 1, "flags");
  arg.fd = -1;
  if (Ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &arg) == -1) {
    ThrowErrno(info.Env(), errno, "ioctl(DMA_BUF_IOCTL_EXPORT_SYNC_FILE)");
  }
  return Napi::Number::New(info.Env(), arg.fd);
}

// importSyncFile(fd, syncFileFd, flags).
void ImportSyncFile(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0, "fd");
  struct dma_buf_import_sync_file arg = {};
  arg.fd = ArgFd(info, 1, "syncFileFd");
  arg.flags = ArgU32(info, 2, "flags");
  if (Ioctl(fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &arg) == -1) {
    ThrowErrno(info.Env(), errno, "ioctl(DMA_BUF_IOCTL_IMPORT_SYNC_FILE)");
  }
}

// Reads info[at] (Int32Array of fds, named `fdsName`) and info[at + 1] (Uint32Array of flags, same length,
// named `flagsName`).
void ArgBatch(const Napi::CallbackInfo& info, Napi::Int32Array* fds, Napi::Uint32Array* flags, size_t at = 0,
              const std::string& fdsName = "fds", const std::string& flagsName = "flags") {
  if (info.Length() < at + 2 || !info[at].IsTypedArray() || info[at].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowTypeError(info.Env(), "The \"" + fdsName + "\" argument must be an Int32Array");
  }
  if (!info[at + 1].IsTypedArray() || info[at + 1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    ThrowTypeError(info.Env(), "The \"" + flagsName + "\" argument must be a Uint32Array");
  }
  *fds = info[at].As<Napi::Int32Array>();
  *flags = info[at + 1].As<Napi::Uint32Array>();
  if (fds->ElementLength() != flags->ElementLength()) {
    ThrowRangeError(info.Env(), "The \"" + fdsName + "\" and \"" + flagsName + "\" arguments must have the same length");
  }
  for (size_t i = 0; i < fds->ElementLength(); i++) {
    if ((*fds)[i] < 0) ThrowRangeError(info.Env(), "The \"" + fdsName + "\" argument must hold fds >= 0");
  }
}

// A syscall error for element `index` of a batch: the caller learns which elements were done.
[[noreturn]] void ThrowBatchErrno(Napi::Env env, int err, const std::string& syscall, size_t index) {
  Napi::Error e = ErrnoError(env, err, syscall);
  e.Set("index", Napi::Number::New(env, static_cast<double>(index)));
  throw e;
}

long PollFirstUnready(const Napi::CallbackInfo& info, const Napi::Int32Array& fds, const Napi::Uint32Array& events);

// firstUnready(fds, events) -> index of the first fd for which poll() (one call, timeout 0, over all of
// them) reports none of its events[i] ready, or -1 when every fd is ready. On a dma-buf, POLLIN means its
// write fences are signalled and POLLOUT that all are: the same fence sets EXPORT_SYNC_FILE exports for READ
// and WRITE, checked in one syscall instead of export + poll + close per buffer. POLLNVAL throws EBADF and
// POLLERR EIO, with `index`.
Napi::Value FirstUnready(const Napi::CallbackInfo& info) {
  Napi::Int32Array fds;
  Napi::Uint32Array events;
  ArgBatch(info, &fds, &events);
  return Napi::Number::New(info.Env(), static_cast<double>(PollFirstUnready(info, fds, events)));
}

// The poll() of firstUnready: index of the first fd whose events are not ready, or -1.
long PollFirstUnready(const Napi::CallbackInfo& info, const Napi::Int32Array& fds, const Napi::Uint32Array& events) {
  const size_t n = fds.ElementLength();
  struct pollfd stack[16];
  std::vector<struct pollfd> heap;
  struct pollfd* p = stack;
  if (n > 16) {
    heap.resize(n);
    p = heap.data();
  }
  for (size_t i = 0; i < n; i++) {
    if (events[i] > 0xffff) ThrowRangeError(info.Env(), "The \"events\" argument must hold poll event masks");
    p[i].fd = fds[i];
    p[i].events = static_cast<short>(events[i]);
    p[i].revents = 0;
  }
  int r;
  do r = poll(p, n, 0);
  while (r == -1 && (errno == EINTR || errno == EAGAIN));
  if (r == -1) ThrowErrno(info.Env(), errno, "poll");
  for (size_t i = 0; i < n; i++) {
    if (p[i].revents & POLLNVAL) ThrowBatchErrno(info.Env(), EBADF, "poll", i);
    if (p[i].revents & POLLERR) ThrowBatchErrno(info.Env(), EIO, "poll", i);
    if (!(p[i].revents & p[i].events)) return static_cast<long>(i);
  }
  return -1;
}

// dmaBufSyncEach(fds, flags): DMA_BUF_IOCTL_SYNC on each fd with flags[i], in order. On a failure the error
// carries `index`: elements before it were done, it and those after were not.
// The loop of dmaBufSyncEach; `synced` marks its errors as from readyThenSyncEach's SYNC part.
void SyncEach(Napi::Env env, const Napi::Int32Array& fds, const Napi::Uint32Array& flags, bool synced) {
  for (size_t i = 0; i < fds.ElementLength(); i++) {
    struct dma_buf_sync sync = {};
    sync.flags = flags[i];
    if (Ioctl(fds[i], DMA_BUF_IOCTL_SYNC, &sync, true) == -1) {
      int err = errno;
      Napi::Error e = ErrnoError(env, err, "ioctl(DMA_BUF_IOCTL_SYNC)");
      e.Set("index", Napi::Number::New(env, static_cast<double>(i)));
      if (synced) e.Set("synced", Napi::Boolean::New(env, true));
      throw e;
    }
  }
}

void DmaBufSyncEach(const Napi::CallbackInfo& info) {
  Napi::Int32Array fds;
  Napi::Uint32Array flags;
  ArgBatch(info, &fds, &flags);
  SyncEach(info.Env(), fds, flags, false);
}

// readyThenSyncEach(fds, events, syncFds, syncFlags) -> the whole uncontended lock of a batch in one call:
// firstUnready(fds, events); if every fd is ready, dmaBufSyncEach(syncFds, syncFlags) and -1, otherwise the
// index of the first unready fd and no ioctl made. Errors as theirs: a poll() failure carries `index`, a
// DMA_BUF_IOCTL_SYNC failure carries `index` into syncFds and `synced: true` (the elements before it were
// done, the rest were not).
Napi::Value ReadyThenSyncEach(const Napi::CallbackInfo& info) {
  Napi::Int32Array fds;
  Napi::Uint32Array events;
  ArgBatch(info, &fds, &events);
  Napi::Int32Array syncFds;
  Napi::Uint32Array syncFlags;
  ArgBatch(info, &syncFds, &syncFlags, 2, "syncFds", "syncFlags");
  long unready = PollFirstUnready(info, fds, events);
  if (unready >= 0) return Napi::Number::New(info.Env(), static_cast<double>(unready));
  SyncEach(info.Env(), syncFds, syncFlags, true);
  return Napi::Number::New(info.Env(), -1);
}

}  // namespace

void InitDmaBuf(Napi::Env env, Napi::Object exports) {
  exports.Set("dmaBufSync", Napi::Function::New(env, DmaBufSync, "dmaBufSync"));
  exports.Set("exportSyncFile", Napi::Function::New(env, ExportSyncFile, "exportSyncFile"));
  exports.Set("importSyncFile", Napi::Function::New(env, ImportSyncFile, "importSyncFile"));
  exports.Set("firstUnready", Napi::Function::New(env, FirstUnready, "firstUnready"));
  exports.Set("dmaBufSyncEach", Napi::Function::New(env, DmaBufSyncEach, "dmaBufSyncEach"));
  exports.Set("readyThenSyncEach", Napi::Function::New(env, ReadyThenSyncEach, "readyThenSyncEach"));
}

}  // namespace dmabuf_sync
