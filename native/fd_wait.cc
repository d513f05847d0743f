// pollReady (non-blocking poll) and waitFd (a libuv poll on a dup of the fd, reported once).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <uv.h>

#include <memory>

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

// pollReady(fd, events) -> poll() with timeout 0: true when any of `events` is reported.
Napi::Value PollReady(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct pollfd p = {};
  p.fd = ArgFd(info, 0, "fd");
  p.events = ArgPollEvents(info, 1, "events");
  int n;
  do {
    n = poll(&p, 1, 0);
  } while (n == -1 && (errno == EINTR || errno == EAGAIN));
  if (n == -1) ThrowErrno(env, errno, "poll");
  if (p.revents & POLLNVAL) ThrowErrno(env, EBADF, "poll");
  if (p.revents & POLLERR) ThrowErrno(env, EIO, "poll");
  return Napi::Boolean::New(env, (p.revents & p.events) != 0);
}

// One waitFd() call. Owned jointly by the JS waiter object (napi_wrap; `js_alive`) and the uv handle
// (`handle_open`, until its close callback); freed when both are gone. All fields are touched only on the
// environment's loop thread.
struct Waiter {
  uv_poll_t poll;
  int dup_fd = -1;
  napi_env env = nullptr;
  bool pending = false;      // poll running; the references below are held
  bool handle_open = false;  // uv_poll_init succeeded and the close callback has not run yet
  bool js_alive = true;      // the wrapper object has not been finalized
  Napi::FunctionReference callback;
  Napi::ObjectReference self;  // strong: the waiter stays alive (and the poll going) until done
  std::unique_ptr<Napi::AsyncContext> async;
};

void MaybeFree(Waiter* w) {
  if (!w->handle_open && !w->js_alive) delete w;
}

void OnClose(uv_handle_t* handle) {
  Waiter* w = static_cast<Waiter*>(handle->data);
  if (w->dup_fd != -1) close(w->dup_fd);
  w->dup_fd = -1;
  w->handle_open = false;
  MaybeFree(w);
}

// Stops the poll and starts closing the handle. Does not touch JS references.
void StopPoll(Waiter* w) {
  w->pending = false;
  uv_poll_stop(&w->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnClose);
}

void OnEnvCleanup(void* arg);

// Ends a pending wait from JS (callback fired or cancel()): stop, close, drop the references.
void Finish(Waiter* w) {
  StopPoll(w);
  napi_remove_env_cleanup_hook(w->env, OnEnvCleanup, w);
  w->callback.Reset();
  w->self.Reset();
  w->async.reset();
}

// The environment is going away (worker exit, process teardown) with the wait pending: the handle must be
// closed so the loop can be; the callback is not called.
void OnEnvCleanup(void* arg) {
  Waiter* w = static_cast<Waiter*>(arg);
  if (!w->pending) return;
  StopPoll(w);
  w->callback.Reset();
  w->self.Reset();
  w->async.reset();
}

void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  Waiter* w = static_cast<Waiter*>(handle->data);
  if (!w->pending) return;
  Napi::Env env(w->env);
  Napi::HandleScope scope(env);
  try {
    Napi::Function callback = w->callback.Value();
    Napi::Object self = w->self.Value();
    std::unique_ptr<Napi::AsyncContext> async = std::move(w->async);
    Napi::Value arg = env.Null();
    if (status < 0) arg = UvError(env, status, "uv_poll").Value();
    Finish(w);  // `w` stays valid until the close callback, which runs on a later loop iteration
    callback.MakeCallback(self, {arg}, *async);
  } catch (const Napi::Error& e) {
    // Thrown by the callback (or by N-API while the environment is stopping): report it like any uncaught
    // exception. `self` is still held by `scope`, so the wrapper cannot have been finalized: `w` is alive.
    if (w->pending) Finish(w);
    napi_fatal_exception(env, e.Value());
  }
}

void FinalizeWaiter(napi_env /*env*/, void* data, void* /*hint*/) {
  Waiter* w = static_cast<Waiter*>(data);
  w->js_alive = false;
  MaybeFree(w);
}

// waiter.cancel(): idempotent; the callback is never called afterwards.
void Cancel(const Napi::CallbackInfo& info) {
  void* data = nullptr;
  if (!info.This().IsObject() || napi_unwrap(info.Env(), info.This(), &data) != napi_ok || data == nullptr) {
    ThrowTypeError(info.Env(), "cancel() must be called on a waiter returned by waitFd()");
  }
  Waiter* w = static_cast<Waiter*>(data);
  if (w->pending) Finish(w);
}

// waitFd(fd, events, callback) -> {cancel()}.
Napi::Value WaitFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  short events = ArgPollEvents(info, 1, "events");
  Napi::Function callback = ArgFunction(info, 2, "callback");

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "waitFd: no libuv event loop for this environment");
  }

  // The JS side first: the wrapper owns the Waiter (its finalizer frees it) once napi_wrap succeeds.
  Napi::Object waiter = Napi::Object::New(env);
  waiter.Set("cancel", Napi::Function::New(env, Cancel, "cancel"));
  std::unique_ptr<Waiter> owned(new Waiter());
  owned->env = env;
  owned->poll.data = owned.get();
  owned->callback = Napi::Persistent(callback);
  owned->self = Napi::Persistent(waiter);
  owned->async.reset(new Napi::AsyncContext(env, "dmabuf-sync:waitFd", waiter));
  napi_status s = napi_wrap(env, waiter, owned.get(), FinalizeWaiter, nullptr, nullptr);
  NAPI_THROW_IF_FAILED(env, s, env.Undefined());
  Waiter* w = owned.release();

  // Then the poll: on failure drop the references (the wrapper's finalizer frees the Waiter) and throw.
  auto fail = [w](const Napi::Error& e) {
    w->callback.Reset();
    w->self.Reset();
    w->async.reset();
    throw e;
  };
  w->dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (w->dup_fd == -1) fail(ErrnoError(env, errno, "fcntl(F_DUPFD_CLOEXEC)"));
  int r = uv_poll_init(loop, &w->poll, w->dup_fd);
  if (r < 0) {
    close(w->dup_fd);
    w->dup_fd = -1;
    fail(UvError(env, r, "uv_poll_init"));
  }
  w->handle_open = true;
  int uv_events = ((events & POLLIN) ? UV_READABLE : 0) | ((events & POLLOUT) ? UV_WRITABLE : 0);
  r = uv_poll_start(&w->poll, uv_events, OnPoll);
  if (r < 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnClose);  // closes the dup
    fail(UvError(env, r, "uv_poll_start"));
  }
  w->pending = true;
  napi_add_env_cleanup_hook(env, OnEnvCleanup, w);
  return waiter;
}

}  // namespace

void InitFdWait(Napi::Env env, Napi::Object exports) {
  exports.Set("pollReady", Napi::Function::New(env, PollReady, "pollReady"));
  exports.Set("waitFd", Napi::Function::New(env, WaitFd, "waitFd"));
}

}  // namespace dmabuf_sync
