#include "errors.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <uv.h>

#include <cmath>
#include <cstdio>

namespace dmabuf_sync {

namespace {

// strerror_r is the GNU variant on glibc, the XSI one elsewhere (musl).
[[maybe_unused]] const char* StrerrorResult(int ret, const char* buf) { return ret == 0 ? buf : "Unknown error"; }
[[maybe_unused]] const char* StrerrorResult(const char* ret, const char*) { return ret; }

std::string Describe(int err) {
  char buf[256];
  buf[0] = '\0';
  return StrerrorResult(strerror_r(err, buf, sizeof buf), buf);
}

std::string FormatNumber(double v) {
  char buf[64];
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) <= kMaxSafeInteger) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
  }
  return buf;
}

std::string TypeOf(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "type boolean";
    case napi_number: return "type number";
    case napi_string: return "type string";
    case napi_symbol: return "type symbol";
    case napi_object: return "an instance of Object";
    case napi_function: return "function";
    case napi_external: return "type external";
    case napi_bigint: return "type bigint";
  }
  return "unknown";
}

[[noreturn]] void ThrowInvalidType(Napi::Env env, const char* name, const char* expected, const Napi::Value& got) {
  ThrowTypeError(env, std::string("The \"") + name + "\" argument must be " + expected + ". Received " + TypeOf(got));
}

[[noreturn]] void ThrowOutOfRange(Napi::Env env, const char* name, const std::string& must, const std::string& got) {
  ThrowRangeError(env, std::string("The value of \"") + name + "\" is out of range. It must be " + must +
                           ". Received " + got);
}

}  // namespace

void ThrowTypeError(Napi::Env env, const std::string& message) {
  Napi::TypeError e = Napi::TypeError::New(env, message);
  e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  throw e;
}

void ThrowRangeError(Napi::Env env, const std::string& message) {
  Napi::RangeError e = Napi::RangeError::New(env, message);
  e.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
  throw e;
}

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall) {
  const char* code = uv_err_name(-err);
  Napi::Error e = Napi::Error::New(env, syscall + ": " + code + " (" + Describe(err) + ")");
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const std::string& syscall) { throw ErrnoError(env, err, syscall); }

Napi::Error UvError(Napi::Env env, int status, const std::string& syscall) {
  const char* code = uv_err_name(status);
  Napi::Error e = Napi::Error::New(env, syscall + ": " + code + " (" + uv_strerror(status) + ")");
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -status));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

double ArgInteger(const Napi::CallbackInfo& info, size_t index, const char* name, double min, double max) {
  Napi::Value v = info[index];
  if (!v.IsNumber()) ThrowInvalidType(info.Env(), name, "of type number", v);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::trunc(d)) ThrowOutOfRange(info.Env(), name, "an integer", FormatNumber(d));
  if (d < min || d > max) {
    ThrowOutOfRange(info.Env(), name, ">= " + FormatNumber(min) + " && <= " + FormatNumber(max), FormatNumber(d));
  }
  return d;
}

int ArgFd(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return static_cast<int>(ArgInteger(info, index, name, 0, 2147483647.0));
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return static_cast<uint32_t>(ArgInteger(info, index, name, 0, 4294967295.0));
}

size_t ArgSize(const Napi::CallbackInfo& info, size_t index, const char* name) {
  double d = ArgInteger(info, index, name, 1, kMaxSafeInteger);
  size_t size = static_cast<size_t>(d);
  if (static_cast<double>(size) != d || size % PageSize() != 0) {
    ThrowOutOfRange(info.Env(), name, "a multiple of the page size (" + std::to_string(PageSize()) + ")",
                    FormatNumber(d));
  }
  return size;
}

bool ArgBool(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value v = info[index];
  if (!v.IsBoolean()) ThrowInvalidType(info.Env(), name, "of type boolean", v);
  return v.As<Napi::Boolean>().Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value v = info[index];
  if (!v.IsString()) ThrowInvalidType(info.Env(), name, "of type string", v);
  return v.As<Napi::String>().Utf8Value();
}

Napi::Function ArgFunction(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value v = info[index];
  if (!v.IsFunction()) ThrowInvalidType(info.Env(), name, "of type function", v);
  return v.As<Napi::Function>();
}

short ArgPollEvents(const Napi::CallbackInfo& info, size_t index, const char* name) {
  double d = ArgInteger(info, index, name, 0, 32767);
  int events = static_cast<int>(d);
  if (events == 0 || (events & ~(POLLIN | POLLOUT)) != 0) {
    ThrowOutOfRange(info.Env(), name, "a non-empty combination of POLLIN and POLLOUT", FormatNumber(d));
  }
  return static_cast<short>(events);
}

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

int Ioctl(int fd, unsigned long request, void* arg, bool retry_eagain) {
  int ret;
  do {
    ret = ioctl(fd, request, arg);
  } while (ret == -1 && (errno == EINTR || (retry_eagain && errno == EAGAIN)));
  return ret;
}

}  // namespace dmabuf_sync
