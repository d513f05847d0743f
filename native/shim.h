// Per-file initialisers of the dmabuf-sync addon. Each adds its functions to `exports`.
#ifndef DMABUF_SYNC_SHIM_H_
#define DMABUF_SYNC_SHIM_H_

#include <napi.h>

#include <cstdint>

namespace dmabuf_sync {

void InitDmaBuf(Napi::Env env, Napi::Object exports);    // dma_buf.cc
void InitSyncFile(Napi::Env env, Napi::Object exports);  // sync_file.cc
void InitFdWait(Napi::Env env, Napi::Object exports);    // fd_wait.cc
void InitFd(Napi::Env env, Napi::Object exports);        // fd.cc
void InitMapping(Napi::Env env, Napi::Object exports);   // mapping.cc
void InitAlloc(Napi::Env env, Napi::Object exports);     // alloc.cc
void InitVgem(Napi::Env env, Napi::Object exports);      // vgem.cc
void InitKms(Napi::Env env, Napi::Object exports);       // kms.cc
// Adds the KMS constants (client caps, object types, atomic flags, formats) to the constants object.
void KmsConstants(Napi::Env env, Napi::Object constants);  // kms.cc
void InitStore(Napi::Env env, Napi::Object exports);     // store.cc
void InitFutex(Napi::Env env, Napi::Object exports);     // futex.cc
void InitFdPassing(Napi::Env env, Napi::Object exports);  // fd_passing.cc
// Adds AF_UNIX, SOCK_STREAM and SCM_MAX_FD to the constants object.
void FdPassingConstants(Napi::Env env, Napi::Object constants);  // fd_passing.cc
void InitV4l2(Napi::Env env, Napi::Object exports);      // v4l2.cc
// Adds the V4L2 buffer types, memory types, capability and flag bits, pixel formats.
void V4l2Constants(Napi::Env env, Napi::Object constants);  // v4l2.cc

// mapping.cc: replaces every active mapping carrying revocation `token` by scratch memory (any thread),
// and remembers the token. Returns how many it replaced, or -errno.
int RevokeToken(uint64_t token);

}  // namespace dmabuf_sync

#endif  // DMABUF_SYNC_SHIM_H_
