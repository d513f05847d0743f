// Module init: the constants object and every file's functions. Context-aware (one instance per
// environment: main thread and each worker); no per-environment state is kept in statics.
#include <linux/ioctl.h>  // _IO* for the UAPI header below (not always included by it)
#include <linux/dma-buf.h>
#include <poll.h>

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("DMA_BUF_SYNC_READ", Napi::Number::New(env, DMA_BUF_SYNC_READ));
  c.Set("DMA_BUF_SYNC_WRITE", Napi::Number::New(env, DMA_BUF_SYNC_WRITE));
  c.Set("DMA_BUF_SYNC_RW", Napi::Number::New(env, DMA_BUF_SYNC_RW));
  c.Set("DMA_BUF_SYNC_START", Napi::Number::New(env, DMA_BUF_SYNC_START));
  c.Set("DMA_BUF_SYNC_END", Napi::Number::New(env, DMA_BUF_SYNC_END));
  c.Set("POLLIN", Napi::Number::New(env, POLLIN));
  c.Set("POLLOUT", Napi::Number::New(env, POLLOUT));
  c.Set("PAGE_SIZE", Napi::Number::New(env, static_cast<double>(PageSize())));
  KmsConstants(env, c);
  FdPassingConstants(env, c);
  V4l2Constants(env, c);
  c.Freeze();
  return c;
}

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  exports.Set("constants", Constants(env));
  InitDmaBuf(env, exports);
  InitSyncFile(env, exports);
  InitFdWait(env, exports);
  InitFd(env, exports);
  InitMapping(env, exports);
  InitAlloc(env, exports);
  InitVgem(env, exports);
  InitKms(env, exports);
  InitStore(env, exports);
  InitFutex(env, exports);
  InitFdPassing(env, exports);
  InitV4l2(env, exports);
  return exports;
}

}  // namespace
}  // namespace dmabuf_sync

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return dmabuf_sync::InitAll(env, exports); }

NODE_API_MODULE(dmabuf_sync, Init)
