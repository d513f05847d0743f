// dma-buf ioctls: the CPU-access cache bracket and sync_file export/import.
#include <errno.h>
#include <linux/dma-buf.h>

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

}  // namespace

void InitDmaBuf(Napi::Env env, Napi::Object exports) {
  exports.Set("dmaBufSync", Napi::Function::New(env, DmaBufSync, "dmaBufSync"));
  exports.Set("exportSyncFile", Napi::Function::New(env, ExportSyncFile, "exportSyncFile"));
  exports.Set("importSyncFile", Napi::Function::New(env, ImportSyncFile, "importSyncFile"));
}

}  // namespace dmabuf_sync
