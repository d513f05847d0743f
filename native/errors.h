// Throwing helpers and argument validation shared by the addon's source files.
//
// Argument errors follow Node's conventions: a TypeError with code 'ERR_INVALID_ARG_TYPE' for a wrong type,
// a RangeError with code 'ERR_OUT_OF_RANGE' for a value outside what the syscall can take. A failed syscall
// throws an Error with `code` (errno name), `errno` (positive) and `syscall`, and a message like
// "ioctl(DMA_BUF_IOCTL_SYNC): EBADF (Bad file descriptor)".
#ifndef DMABUF_SYNC_ERRORS_H_
#define DMABUF_SYNC_ERRORS_H_

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace dmabuf_sync {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message);

// An Error for errno `err` (positive) from `syscall`.
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall);
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall);
// An Error for a negative libuv status (on Unix: -errno).
Napi::Error UvError(Napi::Env env, int status, const std::string& syscall);

// Argument readers: each validates info[index] and throws as above. `name` is the parameter's name.
int ArgFd(const Napi::CallbackInfo& info, size_t index, const char* name);
// An integer in [min, max] (max <= Number.MAX_SAFE_INTEGER).
double ArgInteger(const Napi::CallbackInfo& info, size_t index, const char* name, double min, double max);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t index, const char* name);
// A byte size: integer > 0, a multiple of the page size, <= Number.MAX_SAFE_INTEGER.
size_t ArgSize(const Napi::CallbackInfo& info, size_t index, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t index, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t index, const char* name);
Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t index, const char* name);
// Non-zero `events`, a subset of POLLIN|POLLOUT.
short ArgPollEvents(const Napi::CallbackInfo& info, size_t index, const char* name);

size_t PageSize();

// ioctl() retried on EINTR (and on EAGAIN when `retry_eagain`). Returns ioctl's result; errno is set on -1.
int Ioctl(int fd, unsigned long request, void* arg, bool retry_eagain = false);

}  // namespace dmabuf_sync

#endif  // DMABUF_SYNC_ERRORS_H_
