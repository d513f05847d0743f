// fd passing over a Unix domain socket: sendmsg/recvmsg with SCM_RIGHTS, never blocking (MSG_DONTWAIT; the
// caller waits for POLLOUT/POLLIN through libuv and calls again). Control buffers are sized with CMSG_SPACE
// and walked with CMSG_FIRSTHDR/CMSG_NXTHDR from <sys/socket.h>: no layout is assumed. Framing, checks of
// what arrived and closing of unwanted fds are the caller's (lib/kernel/fd-passing.ts).
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <vector>

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

// The most fds one sendmsg may carry on Linux (SCM_MAX_FD in include/net/scm.h; not in the UAPI headers).
// More is EINVAL from the kernel; we refuse it as an argument instead.
constexpr size_t kScmMaxFd = 253;

// A control buffer of `bytes` bytes, aligned for struct cmsghdr.
std::vector<struct cmsghdr> ControlBuffer(size_t bytes) {
  return std::vector<struct cmsghdr>((bytes + sizeof(struct cmsghdr) - 1) / sizeof(struct cmsghdr));
}

Napi::Uint8Array ArgBytes(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value v = info[index];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(info.Env(), std::string("The \"") + name + "\" argument must be a Uint8Array");
  }
  Napi::Uint8Array bytes = v.As<Napi::Uint8Array>();
  if (bytes.ElementLength() == 0) {
    ThrowRangeError(info.Env(), std::string("The \"") + name + "\" argument must not be empty");
  }
  return bytes;
}

// sendFds(sock, data, fds) -> bytes sent (the fds go with the first byte), or -1 when the socket's buffer is
// full (EAGAIN: wait for POLLOUT and call again). MSG_NOSIGNAL: a closed peer is EPIPE, never SIGPIPE.
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = ArgFd(info, 0, "sock");
  Napi::Uint8Array data = ArgBytes(info, 1, "data");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowTypeError(env, "The \"fds\" argument must be an Int32Array");
  }
  Napi::Int32Array fds = info[2].As<Napi::Int32Array>();
  size_t n = fds.ElementLength();
  if (n > kScmMaxFd) ThrowRangeError(env, "The \"fds\" argument must hold at most 253 fds (SCM_MAX_FD)");
  for (size_t i = 0; i < n; i++) {
    if (fds[i] < 0) ThrowRangeError(env, "The \"fds\" argument must hold fds >= 0");
  }

  struct iovec iov = {data.Data(), data.ByteLength()};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<struct cmsghdr> control;
  if (n > 0) {
    size_t payload = n * sizeof(int);
    control = ControlBuffer(CMSG_SPACE(payload));
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(payload);
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(payload);
    memcpy(CMSG_DATA(cmsg), fds.Data(), payload);
  }
  ssize_t sent;
  do {
    sent = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (sent == -1 && errno == EINTR);
  if (sent == -1) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowErrno(env, errno, "sendmsg(SCM_RIGHTS)");
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

// recvFds(sock, buffer, maxFds) -> { bytes, fds, truncated } or null when nothing is queued (EAGAIN: wait for
// POLLIN and call again). Reads at most buffer.length bytes; the control buffer has room for exactly
// `maxFds` fds (0: none), so a peer that sends more gets MSG_CTRUNC (`truncated`) and the kernel closes the
// rest. Received fds are close-on-exec (MSG_CMSG_CLOEXEC) and all returned: the caller owns and closes them.
// bytes 0 with no fds is end of stream.
Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = ArgFd(info, 0, "sock");
  Napi::Uint8Array buffer = ArgBytes(info, 1, "buffer");
  size_t max_fds = static_cast<size_t>(ArgInteger(info, 2, "maxFds", 0, static_cast<double>(kScmMaxFd)));

  struct iovec iov = {buffer.Data(), buffer.ByteLength()};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<struct cmsghdr> control;
  if (max_fds > 0) {
    control = ControlBuffer(CMSG_SPACE(max_fds * sizeof(int)));
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(max_fds * sizeof(int));
  }
  ssize_t got;
  do {
    got = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (got == -1 && errno == EINTR);
  if (got == -1) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, errno, "recvmsg(SCM_RIGHTS)");
  }

  // Collect every fd first (no JS call can throw in between): the caller must get all of them to close them.
  std::vector<int> received;
  if (msg.msg_controllen > 0) {
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char* p = CMSG_DATA(c);
      for (size_t i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, p + i * sizeof(int), sizeof(int));
        received.push_back(fd);
      }
    }
  }
  try {
    Napi::Object result = Napi::Object::New(env);
    Napi::Array fds = Napi::Array::New(env, received.size());
    for (size_t i = 0; i < received.size(); i++) fds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, received[i]));
    result.Set("bytes", Napi::Number::New(env, static_cast<double>(got)));
    result.Set("fds", fds);
    result.Set("truncated", Napi::Boolean::New(env, (msg.msg_flags & MSG_CTRUNC) != 0));
    return result;
  } catch (...) {
    for (int fd : received) close(fd);  // the caller will never see them
    throw;
  }
}

// socketType(fd) -> { domain, type } from getsockopt(SO_DOMAIN / SO_TYPE). Not a socket: ENOTSOCK.
Napi::Value SocketType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int domain = 0;
  int type = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == -1) ThrowErrno(env, errno, "getsockopt(SO_DOMAIN)");
  len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1) ThrowErrno(env, errno, "getsockopt(SO_TYPE)");
  Napi::Object result = Napi::Object::New(env);
  result.Set("domain", Napi::Number::New(env, domain));
  result.Set("type", Napi::Number::New(env, type));
  return result;
}

}  // namespace

void FdPassingConstants(Napi::Env env, Napi::Object constants) {
  constants.Set("AF_UNIX", Napi::Number::New(env, AF_UNIX));
  constants.Set("SOCK_STREAM", Napi::Number::New(env, SOCK_STREAM));
  constants.Set("SCM_MAX_FD", Napi::Number::New(env, static_cast<double>(kScmMaxFd)));
}

void InitFdPassing(Napi::Env env, Napi::Object exports) {
  exports.Set("sendFds", Napi::Function::New(env, SendFds, "sendFds"));
  exports.Set("recvFds", Napi::Function::New(env, RecvFds, "recvFds"));
  exports.Set("socketType", Napi::Function::New(env, SocketType, "socketType"));
}

}  // namespace dmabuf_sync
