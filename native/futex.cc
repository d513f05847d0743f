// futex(2) on 32-bit words of a shared mapping (the lock store), shared between processes: never
// FUTEX_PRIVATE_FLAG. V8's Atomics.wait/notify are emulated inside one process and never reach another, so
// cross-process waits and wakes go through here.
//
//   futexWake(buffer, index, count)           FUTEX_WAKE
//   futexWait(buffer, index, expected, ms)    FUTEX_WAIT with a timeout: only for the store's table lock,
//                                             whose holder leaves within microseconds (bounded, like a spin)
//   doorbell(buffer, index, callback)         a helper thread blocked in FUTEX_WAIT on one word; each change
//                                             of the word calls `callback` on this thread's event loop
//   revoker(buffer, req, token, ackAt)        a helper thread that revokes mappings (mapping.cc) on request
//                                             of another process, without this thread's event loop
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <thread>

#include "errors.h"
#include "shim.h"

namespace dmabuf_sync {
namespace {

long Futex(uint32_t* addr, int op, uint32_t val, const struct timespec* timeout) {
  return syscall(SYS_futex, addr, op, val, timeout, nullptr, 0);
}

// The address of the 32-bit word `index` of the ArrayBuffer argument at `at` (checked in bounds).
uint32_t* WordArg(const Napi::CallbackInfo& info, size_t at) {
  Napi::Value v = info[at];
  if (!v.IsArrayBuffer()) ThrowTypeError(info.Env(), "The \"buffer\" argument must be an ArrayBuffer");
  Napi::ArrayBuffer buffer = v.As<Napi::ArrayBuffer>();
  double words = static_cast<double>(buffer.ByteLength() / 4);
  if (words < 1) ThrowRangeError(info.Env(), "The value of \"buffer\" is out of range. It must hold a 32-bit word");
  double index = ArgInteger(info, at + 1, "index", 0, words - 1);
  return static_cast<uint32_t*>(buffer.Data()) + static_cast<size_t>(index);
}

Napi::Value FutexWake(const Napi::CallbackInfo& info) {
  uint32_t* word = WordArg(info, 0);
  int count = static_cast<int>(ArgInteger(info, 2, "count", 1, INT_MAX));
  long r = Futex(word, FUTEX_WAKE, static_cast<uint32_t>(count), nullptr);
  if (r == -1) ThrowErrno(info.Env(), errno, "futex(FUTEX_WAKE)");
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}

// -> 'ok' (woken, or spuriously), 'not-equal' (the word was not `expected`), 'timed-out'.
Napi::Value FutexWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t* word = WordArg(info, 0);
  uint32_t expected = static_cast<uint32_t>(static_cast<int32_t>(ArgInteger(info, 2, "expected", INT32_MIN, UINT32_MAX)));
  double ms = ArgInteger(info, 3, "timeoutMs", 0, 1000);
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ms / 1000);
  ts.tv_nsec = static_cast<long>((static_cast<long long>(ms) % 1000) * 1000000);
  if (Futex(word, FUTEX_WAIT, expected, &ts) == 0) return Napi::String::New(env, "ok");
  if (errno == EAGAIN) return Napi::String::New(env, "not-equal");
  if (errno == ETIMEDOUT) return Napi::String::New(env, "timed-out");
  if (errno == EINTR) return Napi::String::New(env, "ok");
  ThrowErrno(env, errno, "futex(FUTEX_WAIT)");
}

// One helper thread per doorbell, blocked in FUTEX_WAIT on the word; a change is handed to the event loop
// through a thread-safe function, coalesced (at most one call pending). The thread is stopped and joined
// at environment teardown, before the store it watches is unmapped (cleanup hooks run last-in first-out).
struct Doorbell {
  uint32_t* word;
  // The word's value when doorbell() was called: a ring after that call and before the thread first runs
  // must wake it (the thread reading the word itself would take such a ring as the starting value).
  uint32_t initial;
  Napi::ThreadSafeFunction tsfn;
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<bool> pending{false};
  bool stopped = false;
};

void Ring(Napi::Env env, Napi::Function callback, Doorbell* bell) {
  bell->pending.store(false);
  if (env == nullptr || callback == nullptr) return;
  // The plain N-API call: an exception from the callback stays pending and Node reports it as uncaught; a
  // C++ exception must not leave this thread-safe function callback (and none is needed at teardown, when
  // calls into JS fail).
  napi_value result;
  napi_call_function(env, env.Undefined(), callback, 0, nullptr, &result);
}

void Watch(Doorbell* bell) {
  uint32_t seen = bell->initial;
  while (!bell->stop.load()) {
    Futex(bell->word, FUTEX_WAIT, seen, nullptr);
    uint32_t now = __atomic_load_n(bell->word, __ATOMIC_SEQ_CST);
    if (now == seen || bell->stop.load()) continue;
    seen = now;
    if (!bell->pending.exchange(true)) {
      if (bell->tsfn.NonBlockingCall(bell, Ring) != napi_ok) bell->pending.store(false);
    }
  }
}

void StopDoorbell(void* arg) {
  Doorbell* bell = static_cast<Doorbell*>(arg);
  if (bell->stopped) return;
  bell->stopped = true;
  bell->stop.store(true);
  // Change the word so that the thread cannot go back to sleep on its old value, and wake it.
  __atomic_add_fetch(bell->word, 1, __ATOMIC_SEQ_CST);
  Futex(bell->word, FUTEX_WAKE, INT_MAX, nullptr);
  bell->thread.join();
  bell->tsfn.Release();
}

void CleanupDoorbell(void* arg) {
  StopDoorbell(arg);
  delete static_cast<Doorbell*>(arg);
}

// doorbell(buffer, index, callback) -> { ref(), unref() }. Never keeps the loop alive unless ref()'d.
Napi::Value DoorbellStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t* word = WordArg(info, 0);
  Napi::Function callback = ArgFunction(info, 2, "callback");
  Doorbell* bell = new Doorbell();
  bell->word = word;
  bell->initial = __atomic_load_n(word, __ATOMIC_SEQ_CST);
  bell->tsfn = Napi::ThreadSafeFunction::New(env, callback, "dmabuf-sync doorbell", 0, 1);
  bell->tsfn.Unref(env);
  try {
    bell->thread = std::thread(Watch, bell);
  } catch (...) {
    bell->tsfn.Release();
    delete bell;
    ThrowErrno(env, EAGAIN, "pthread_create");
  }
  // Registered after the thread-safe function, so it runs before N-API finalizes it at teardown.
  napi_add_env_cleanup_hook(env, CleanupDoorbell, bell);
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("ref", Napi::Function::New(env, [bell](const Napi::CallbackInfo& i) { if (!bell->stopped) bell->tsfn.Ref(i.Env()); }, "ref"));
  handle.Set("unref", Napi::Function::New(env, [bell](const Napi::CallbackInfo& i) { if (!bell->stopped) bell->tsfn.Unref(i.Env()); }, "unref"));
  return handle;
}

// The revoker: a helper thread that serves revocation requests posted into three words of the store by a
// watchdog in another process (lib/ww/ww-rules.ts). The request is a seqlock: the poster makes word `req`
// odd, writes the 64-bit token at `token` and the index of the 64-bit acknowledgement field at `ackAt`, then
// makes `req` even. The thread reads a consistent request, revokes the token (every mapping handed out
// under it becomes scratch memory), then stores the token into the acknowledgement field and wakes it.
// It never calls into JavaScript, so it works while this thread's event loop is blocked.
struct Revoker {
  uint32_t* words;
  size_t nwords;
  size_t req, token, ack_at;
  std::thread thread;
  std::atomic<bool> stop{false};
  bool stopped = false;
};

void Serve(Revoker* rv) {
  uint32_t* req = rv->words + rv->req;
  uint32_t served = __atomic_load_n(req, __ATOMIC_ACQUIRE);
  while (!rv->stop.load()) {
    uint32_t now = __atomic_load_n(req, __ATOMIC_ACQUIRE);
    if (now == served || (now & 1) != 0) {
      // Nothing new, or a poster is mid-write (it finishes within its critical section): sleep on the word.
      struct timespec ts = {0, 1000000};
      Futex(req, FUTEX_WAIT, now, (now & 1) != 0 ? &ts : nullptr);
      continue;
    }
    uint64_t token = __atomic_load_n(reinterpret_cast<uint64_t*>(rv->words + rv->token), __ATOMIC_ACQUIRE);
    uint32_t ack_at = __atomic_load_n(rv->words + rv->ack_at, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(req, __ATOMIC_ACQUIRE) != now) continue;  // overwritten meanwhile: read again
    served = now;
    if (token == 0 || ack_at % 2 != 0 || ack_at + 1 >= rv->nwords) continue;  // not a request we can serve
    if (RevokeToken(token) < 0) continue;  // not acknowledged: the poster keeps waiting, never forces
    uint32_t* ack = rv->words + ack_at;
    __atomic_store_n(reinterpret_cast<uint64_t*>(ack), token, __ATOMIC_RELEASE);
    Futex(ack, FUTEX_WAKE, INT_MAX, nullptr);
  }
}

void StopRevoker(void* arg) {
  Revoker* rv = static_cast<Revoker*>(arg);
  if (!rv->stopped) {
    rv->stopped = true;
    rv->stop.store(true);
    uint32_t* req = rv->words + rv->req;
    // Keep the word's parity (posters use it) but change it, so the thread cannot sleep on its old value.
    __atomic_add_fetch(req, 2, __ATOMIC_SEQ_CST);
    Futex(req, FUTEX_WAKE, INT_MAX, nullptr);
    rv->thread.join();
  }
  delete rv;
}

// revoker(buffer, reqIndex, tokenIndex, ackAtIndex): starts the revoker thread of this participant; it is
// stopped and joined at environment teardown, before the store is unmapped.
Napi::Value RevokerStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t* req = WordArg(info, 0);
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  size_t nwords = buffer.ByteLength() / 4;
  double token = ArgInteger(info, 2, "tokenIndex", 0, static_cast<double>(nwords) - 2);
  if (static_cast<size_t>(token) % 2 != 0) ThrowRangeError(env, "The value of \"tokenIndex\" is out of range. It must be even (a 64-bit field)");
  double ack_at = ArgInteger(info, 3, "ackAtIndex", 0, static_cast<double>(nwords) - 1);
  Revoker* rv = new Revoker();
  rv->words = static_cast<uint32_t*>(buffer.Data());
  rv->nwords = nwords;
  rv->req = static_cast<size_t>(req - rv->words);
  rv->token = static_cast<size_t>(token);
  rv->ack_at = static_cast<size_t>(ack_at);
  try {
    rv->thread = std::thread(Serve, rv);
  } catch (...) {
    delete rv;
    ThrowErrno(env, EAGAIN, "pthread_create");
  }
  napi_add_env_cleanup_hook(env, StopRevoker, rv);
  return env.Undefined();
}

}  // namespace

void InitFutex(Napi::Env env, Napi::Object exports) {
  exports.Set("futexWake", Napi::Function::New(env, FutexWake, "futexWake"));
  exports.Set("futexWait", Napi::Function::New(env, FutexWait, "futexWait"));
  exports.Set("doorbell", Napi::Function::New(env, DoorbellStart, "doorbell"));
  exports.Set("revoker", Napi::Function::New(env, RevokerStart, "revoker"));
}

}  // namespace dmabuf_sync
