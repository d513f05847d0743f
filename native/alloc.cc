// dma-buf allocation: udmabuf (from a sealed memfd) and dma-heap.
#include <errno.h>
#include <fcntl.h>
#include <linux/ioctl.h>  // _IO* for the UAPI header below (not always included by it)
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

// Closes a temporary fd on every path.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int OpenRetry(const char* path, int flags) {
  int fd;
  do {
    fd = open(path, flags);
  } while (fd == -1 && errno == EINTR);
  return fd;
}

// udmabufCreate(size) -> dma-buf fd: memfd_create + ftruncate + F_SEAL_SHRINK + UDMABUF_CREATE.
Napi::Value UdmabufCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t size = ArgSize(info, 0, "size");
  FdGuard memfd(memfd_create("dmabuf-sync", MFD_ALLOW_SEALING | MFD_CLOEXEC));
  if (memfd.get() == -1) ThrowErrno(env, errno, "memfd_create");
  int r;
  do {
    r = ftruncate(memfd.get(), static_cast<off_t>(size));
  } while (r == -1 && errno == EINTR);
  if (r == -1) ThrowErrno(env, errno, "ftruncate");
  if (fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK) == -1) ThrowErrno(env, errno, "fcntl(F_ADD_SEALS)");
  FdGuard dev(OpenRetry("/dev/udmabuf", O_RDWR | O_CLOEXEC));
  if (dev.get() == -1) ThrowErrno(env, errno, "open(/dev/udmabuf)");
  struct udmabuf_create create = {};
  create.memfd = static_cast<__u32>(memfd.get());
  create.flags = UDMABUF_FLAGS_CLOEXEC;
  create.offset = 0;
  create.size = size;
  int fd = Ioctl(dev.get(), UDMABUF_CREATE, &create);
  if (fd == -1) ThrowErrno(env, errno, "ioctl(UDMABUF_CREATE)");
  return Napi::Number::New(env, fd);
}

// heapAlloc(heapName, size) -> dma-buf fd from /dev/dma_heap/<heapName>.
Napi::Value HeapAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "heapName");
  if (name.empty() || name.size() > 64 || name.find('/') != std::string::npos ||
      name.find("..") != std::string::npos || name.find('\0') != std::string::npos) {
    ThrowRangeError(env, "The value of \"heapName\" is out of range. It must be a dma-heap name (1-64 bytes, no '/', "
                         "no '..'). Received '" + name + "'");
  }
  size_t size = ArgSize(info, 1, "size");
  std::string path = "/dev/dma_heap/" + name;
  FdGuard heap(OpenRetry(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (heap.get() == -1) ThrowErrno(env, errno, "open(" + path + ")");
  struct dma_heap_allocation_data data = {};
  data.len = size;
  data.fd_flags = O_RDWR | O_CLOEXEC;
  data.heap_flags = 0;
  if (Ioctl(heap.get(), DMA_HEAP_IOCTL_ALLOC, &data) == -1) ThrowErrno(env, errno, "ioctl(DMA_HEAP_IOCTL_ALLOC)");
  return Napi::Number::New(env, static_cast<int>(data.fd));
}

}  // namespace

void InitAlloc(Napi::Env env, Napi::Object exports) {
  exports.Set("udmabufCreate", Napi::Function::New(env, UdmabufCreate, "udmabufCreate"));
  exports.Set("heapAlloc", Napi::Function::New(env, HeapAlloc, "heapAlloc"));
}

}  // namespace dmabuf_sync
