// mmap of a dma-buf as an external ArrayBuffer, and its process-wide registry.
//
// Every live mapping is recorded (address -> size, state, id) under one mutex shared by all threads, so that
// unmap, replaceWithScratch (possibly from another thread, by address) and the GC finalizer never munmap a
// range twice or munmap a range that has since been reused by a newer mapping (the id tells them apart).
// Read-only views are also guarded (write_guard.cc): a store into one is caught instead of killing the
// process, and unmap reports it.
//
// A mapping lent out for one lock (lendView) carries a revocation token (the lock core's token of the acquire
// context it was lent under). RevokeToken replaces every active mapping with that token by scratch memory and
// remembers the token, so that a mapping lent with it afterwards is scratch from the start: a watchdog in
// another process asks this process's revoker thread (futex.cc) to do that while this process's JavaScript
// may be blocked.
#include <errno.h>
#include <sys/mman.h>

#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "errors.h"
#include "shim.h"
#include "write_guard.h"

namespace dmabuf_sync {
namespace {

enum class State { kActive, kScratch };  // absent from the registry = released

struct Entry {
  size_t size;
  State state;
  uint64_t id;
  bool guarded;  // a read-only view known to the write guard
  bool written;  // the guard caught a write into it (before it was replaced by scratch)
  uint64_t token;  // revocation token, 0 = none
};

// Stops guarding `e` (before its range is unmapped or replaced), remembering a caught write.
void Unguard(uintptr_t addr, Entry& e) {
  if (!e.guarded) return;
  e.guarded = false;
  if (UnguardView(addr)) e.written = true;
}

// How many revoked tokens are remembered: a token is revoked when its context is forced, and a context
// maps nothing new once it learns that (or it is scratch at once while the token is remembered here).
constexpr size_t kRevokedTokens = 256;

struct Registry {
  std::mutex mutex;
  std::unordered_map<uintptr_t, Entry> entries;
  uint64_t next_id = 1;
  uint64_t next_token = 1;
  uint64_t revoked[kRevokedTokens] = {};
  size_t revoked_next = 0;
};

// Never destroyed: finalizers may run on worker threads during process exit.
Registry& GetRegistry() {
  static Registry* registry = new Registry();
  return *registry;
}

// Replaces the active mapping `e` at `addr` in place by private anonymous memory. Registry mutex held.
int ScratchLocked(uintptr_t addr, Entry& e) {
  Unguard(addr, e);  // scratch memory is writable: nothing left to guard
  void* p = mmap(reinterpret_cast<void*>(addr), e.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) return errno;
  if (p != reinterpret_cast<void*>(addr)) {
    // Cannot happen with MAP_FIXED; never leave a stray mapping behind if it does.
    munmap(p, e.size);
    return EFAULT;
  }
  e.state = State::kScratch;
  return 0;
}

bool IsRevokedLocked(const Registry& r, uint64_t token) {
  for (uint64_t t : r.revoked) {
    if (t == token) return true;
  }
  return false;
}

// GC finalizer of a mapped ArrayBuffer: munmap only if this very mapping is still registered.
void FinalizeMapping(Napi::Env /*env*/, void* data, void* hint) {
  uintptr_t addr = reinterpret_cast<uintptr_t>(data);
  uint64_t id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(hint));
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.entries.find(addr);
  if (it == r.entries.end() || it->second.id != id) return;
  Unguard(addr, it->second);
  munmap(data, it->second.size);
  r.entries.erase(it);
}

Napi::ArrayBuffer ArgArrayBuffer(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value v = info[index];
  if (!v.IsArrayBuffer()) ThrowTypeError(info.Env(), std::string("The \"") + name + "\" argument must be an ArrayBuffer");
  return v.As<Napi::ArrayBuffer>();
}

// A revocation token argument: a non-zero bigint that fits 64 bits.
uint64_t ArgToken(const Napi::CallbackInfo& info, size_t index) {
  Napi::Value v = info[index];
  if (!v.IsBigInt()) ThrowTypeError(info.Env(), "The \"token\" argument must be a bigint");
  bool lossless = false;
  uint64_t t = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless || t == 0) ThrowRangeError(info.Env(), "The value of \"token\" is out of range. It must be a token from newRevocationToken()");
  return t;
}

// The start address behind a (possibly detached) ArrayBuffer; 0 when detached.
uintptr_t AddressOf(Napi::ArrayBuffer buffer) {
  if (buffer.IsDetached()) return 0;
  return reinterpret_cast<uintptr_t>(buffer.Data());
}

// map(fd, size, writable) -> external ArrayBuffer over mmap(MAP_SHARED) at offset 0.
Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  size_t size = ArgSize(info, 1, "size");
  bool writable = ArgBool(info, 2, "writable");
  void* addr = mmap(nullptr, size, writable ? (PROT_READ | PROT_WRITE) : PROT_READ, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap");
  if (!writable && !GuardReadOnlyView(reinterpret_cast<uintptr_t>(addr), size)) {
    munmap(addr, size);
    ThrowErrno(env, ENOMEM, "mmap (more read-only views than the write guard can hold: release some)");
  }
  Registry& r = GetRegistry();
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    id = r.next_id++;
    r.entries[reinterpret_cast<uintptr_t>(addr)] = Entry{size, State::kActive, id, !writable, false, 0};
  }
  try {
    return Napi::ArrayBuffer::New(env, addr, size, FinalizeMapping, reinterpret_cast<void*>(static_cast<uintptr_t>(id)));
  } catch (...) {
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.entries.find(reinterpret_cast<uintptr_t>(addr));
    if (it != r.entries.end() && it->second.id == id) {
      Unguard(reinterpret_cast<uintptr_t>(addr), it->second);
      munmap(addr, size);
      r.entries.erase(it);
    }
    throw;
  }
}

// unmap(buffer) -> 1 if it munmapped (the mapping was active or replaced by scratch), 2 if it munmapped a
// read-only view into which a write was caught, 0 if it was already released or never a mapping. A mapping's
// buffer is detached either way.
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::ArrayBuffer buffer = ArgArrayBuffer(info, 0, "buffer");
  uintptr_t addr = AddressOf(buffer);
  if (addr == 0) return Napi::Number::New(env, 0);
  Registry& r = GetRegistry();
  bool written;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.entries.find(addr);
    // Not registered: not one of ours (a live mapping's buffer stays registered until it is detached here).
    if (it == r.entries.end()) return Napi::Number::New(env, 0);
    Unguard(addr, it->second);
    written = it->second.written;
    if (munmap(reinterpret_cast<void*>(addr), it->second.size) == -1) ThrowErrno(env, errno, "munmap");
    r.entries.erase(it);
  }
  buffer.Detach();
  return Napi::Number::New(env, written ? 2 : 1);
}

// replaceWithScratch(buffer | address) -> true if an active mapping was replaced in place by a private
// anonymous one of the same size, false if it was already replaced or released.
Napi::Value ReplaceWithScratch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value arg = info[0];
  uintptr_t addr = 0;
  if (arg.IsBigInt()) {
    bool lossless = false;
    uint64_t v = arg.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless || static_cast<uint64_t>(static_cast<uintptr_t>(v)) != v) {
      ThrowRangeError(env, "The value of \"buffer\" is out of range. It must be an address returned by mappingAddress()");
    }
    addr = static_cast<uintptr_t>(v);
  } else if (arg.IsArrayBuffer()) {
    addr = AddressOf(arg.As<Napi::ArrayBuffer>());
  } else {
    ThrowTypeError(env, "The \"buffer\" argument must be an ArrayBuffer or a bigint");
  }
  if (addr == 0) return Napi::Boolean::New(env, false);
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.entries.find(addr);
  if (it == r.entries.end() || it->second.state != State::kActive) return Napi::Boolean::New(env, false);
  int err = ScratchLocked(addr, it->second);
  if (err != 0) ThrowErrno(env, err, "mmap");
  return Napi::Boolean::New(env, true);
}

// lendView(owner, token) -> a new external ArrayBuffer over the same memory as the mapping `owner` (from map),
// for one lock: the sync layer keeps a mapping across its locks and hands out a fresh view per lock, which
// returnView detaches at unlock; no mmap/munmap per lock. The view has no finalizer: the caller keeps
// `owner` reachable from the view (so the memory cannot be unmapped under it). The mapping takes revocation
// `token` (non-zero) for the loan; if that token is already revoked the mapping becomes scratch at once.
// Throws EBADF if `owner` is not a live mapping, EIO if it is scratch (the caller maps afresh).
Napi::Value LendView(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::ArrayBuffer owner = ArgArrayBuffer(info, 0, "owner");
  uint64_t token = ArgToken(info, 1);
  uintptr_t addr = AddressOf(owner);
  Registry& r = GetRegistry();
  size_t size;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.entries.find(addr);
    if (addr == 0 || it == r.entries.end()) ThrowErrno(env, EBADF, "lendView (the mapping was released)");
    Entry& e = it->second;
    if (e.state != State::kActive) ThrowErrno(env, EIO, "lendView (the mapping was replaced by scratch memory)");
    e.token = token;
    if (IsRevokedLocked(r, token)) {
      int err = ScratchLocked(addr, e);
      if (err != 0) ThrowErrno(env, err, "mmap");
    }
    size = e.size;
  }
  return Napi::ArrayBuffer::New(env, reinterpret_cast<void*>(addr), size);
}

// returnView(view) -> detaches a view from lendView and ends its loan (the mapping's token is cleared).
// Returns 1 if the mapping is still active and clean (reusable), 2 if the write guard caught a store into
// the (read-only) mapping (a page is now a private copy: unmap it), 3 if it was replaced by scratch memory
// (unmap it), 0 if the view was already detached or its mapping released.
Napi::Value ReturnView(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::ArrayBuffer view = ArgArrayBuffer(info, 0, "view");
  uintptr_t addr = AddressOf(view);
  if (addr == 0) return Napi::Number::New(env, 0);
  int result = 0;
  {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.entries.find(addr);
    if (it != r.entries.end()) {
      Entry& e = it->second;
      e.token = 0;
      if (e.state != State::kActive) {
        result = 3;
      } else if (e.guarded && WrittenView(addr)) {
        result = 2;
      } else {
        result = 1;
      }
    }
  }
  view.Detach();
  return Napi::Number::New(env, result);
}

// newRevocationToken() -> a bigint never returned before in this process (never 0).
Napi::Value NewRevocationToken(const Napi::CallbackInfo& info) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return Napi::BigInt::New(info.Env(), r.next_token++);
}

// revokeToken(token) -> how many active mappings it replaced by scratch memory (see RevokeToken).
Napi::Value RevokeTokenJs(const Napi::CallbackInfo& info) {
  uint64_t token = ArgToken(info, 0);
  int replaced = RevokeToken(token);
  if (replaced < 0) ThrowErrno(info.Env(), -replaced, "mmap");
  return Napi::Number::New(info.Env(), replaced);
}

// mappingAddress(buffer) -> the registered start address behind `buffer`, or 0n.
Napi::Value MappingAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uintptr_t addr = AddressOf(ArgArrayBuffer(info, 0, "buffer"));
  if (addr != 0) {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> lock(r.mutex);
    if (r.entries.find(addr) == r.entries.end()) addr = 0;
  }
  return Napi::BigInt::New(env, static_cast<uint64_t>(addr));
}

}  // namespace

int RevokeToken(uint64_t token) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!IsRevokedLocked(r, token)) {
    r.revoked[r.revoked_next] = token;
    r.revoked_next = (r.revoked_next + 1) % kRevokedTokens;
  }
  int replaced = 0;
  int first_error = 0;
  for (auto& [addr, e] : r.entries) {
    if (e.token != token || e.state != State::kActive) continue;
    int err = ScratchLocked(addr, e);
    if (err == 0) replaced++;
    else if (first_error == 0) first_error = err;
  }
  return first_error != 0 ? -first_error : replaced;
}

void InitMapping(Napi::Env env, Napi::Object exports) {
  exports.Set("newRevocationToken", Napi::Function::New(env, NewRevocationToken, "newRevocationToken"));
  exports.Set("revokeToken", Napi::Function::New(env, RevokeTokenJs, "revokeToken"));
  exports.Set("map", Napi::Function::New(env, Map, "map"));
  exports.Set("unmap", Napi::Function::New(env, Unmap, "unmap"));
  exports.Set("lendView", Napi::Function::New(env, LendView, "lendView"));
  exports.Set("returnView", Napi::Function::New(env, ReturnView, "returnView"));
  exports.Set("replaceWithScratch", Napi::Function::New(env, ReplaceWithScratch, "replaceWithScratch"));
  exports.Set("mappingAddress", Napi::Function::New(env, MappingAddress, "mappingAddress"));
}

}  // namespace dmabuf_sync
