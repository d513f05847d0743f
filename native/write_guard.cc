// The write guard of read-only views.
//
// A buffer locked for 'read' is mapped PROT_READ, and JavaScript has no read-only typed array: one store into
// the view would end the process with SIGSEGV. So the addon installs (once per process) a SIGSEGV handler.
// For a write fault inside one of its read-only views it replaces the faulting page by a private anonymous
// copy of it (mmap a page, copy, then mremap(MREMAP_FIXED) it over the faulting page in one step, so other
// readers never see a hole), records that the view was written, and returns: the store completes into the
// private page, the dma-buf is untouched, and the JS goes on. The library reports the write when the view is
// released (EACCES). Every other fault goes to the handler that was installed before ours (V8's and Node's),
// or, if there was none, kills the process with the default action as if we were not there.
//
// The handler may run in any thread at any time, so the table of guarded views is a fixed array of atomics
// (no lock, no allocation): each slot has a state word (generation << 2 | kFree/kBusy/kActive) that works as
// a seqlock for the start/size it guards.
#include "write_guard.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace dmabuf_sync {
namespace {

constexpr uint32_t kFree = 0;
constexpr uint32_t kBusy = 1;
constexpr uint32_t kActive = 2;
constexpr uint32_t kStateMask = 3;
constexpr size_t kSlots = 4096;

struct Slot {
  std::atomic<uint32_t> state{0};
  std::atomic<uintptr_t> start{0};
  std::atomic<size_t> size{0};
  // The state word of the view a write was caught in (0: none). Keeping the generation means a handler that
  // raced with the view's release cannot mark the next view that reuses the slot.
  std::atomic<uint32_t> written{0};
};

Slot g_slots[kSlots];
std::atomic<size_t> g_used{0};  // high-water mark: slots at or past it were never used
size_t g_page_size = 0;
struct sigaction g_previous;
std::once_flag g_install_once;

// Die of `sig` with the default action (a real fault re-faults on return; a sent signal stays pending while
// the handler blocks it, and is delivered when it returns).
void DieOfSignal(int sig) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  raise(sig);
}

void PassOn(int sig, siginfo_t* info, void* context) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) {
      g_previous.sa_sigaction(sig, info, context);
      return;
    }
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  DieOfSignal(sig);
}

// The active slot whose view contains `addr` (and its state word in `*state`), or nullptr.
// Async-signal-safe.
Slot* FindView(uintptr_t addr, uint32_t* state) {
  size_t used = g_used.load(std::memory_order_acquire);
  for (size_t i = 0; i < used; i++) {
    Slot& s = g_slots[i];
    uint32_t before = s.state.load(std::memory_order_acquire);
    if ((before & kStateMask) != kActive) continue;
    uintptr_t start = s.start.load(std::memory_order_relaxed);
    size_t size = s.size.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.state.load(std::memory_order_relaxed) != before) continue;  // changed under us: not a stable view
    if (addr >= start && addr - start < size) {
      *state = before;
      return &s;
    }
  }
  return nullptr;
}

// Replaces the page holding `addr` by a private copy of itself. Async-signal-safe (syscalls and memcpy).
bool PrivatizePage(uintptr_t addr) {
  void* page = reinterpret_cast<void*>(addr & ~(g_page_size - 1));
  void* copy = mmap(nullptr, g_page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (copy == MAP_FAILED) return false;
  memcpy(copy, page, g_page_size);
  if (mremap(copy, g_page_size, g_page_size, MREMAP_MAYMOVE | MREMAP_FIXED, page) == MAP_FAILED) {
    munmap(copy, g_page_size);
    return false;
  }
  return true;
}

void OnSegv(int sig, siginfo_t* info, void* context) {
  int saved_errno = errno;
  // SEGV_ACCERR: the page is mapped but the access is not allowed. Our views are readable, so on one of them
  // it is a write. Signals sent with kill() have si_code <= 0 and are never ours.
  if (info != nullptr && info->si_code == SEGV_ACCERR) {
    uint32_t state = 0;
    Slot* view = FindView(reinterpret_cast<uintptr_t>(info->si_addr), &state);
    if (view != nullptr && PrivatizePage(reinterpret_cast<uintptr_t>(info->si_addr))) {
      view->written.store(state, std::memory_order_release);
      errno = saved_errno;
      return;
    }
  }
  errno = saved_errno;
  PassOn(sig, info, context);
}

void Install() {
  g_page_size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = OnSegv;
  sigemptyset(&action.sa_mask);
  // SA_ONSTACK: run on the thread's alternate stack when it has one (a fault may come with a full stack).
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGSEGV, &action, &g_previous);
}

// The first active slot at index >= *from whose view starts at `start` (its state word in `*state`), or
// nullptr; *from is left just past it, so a caller that loses a race for the slot can search on.
Slot* FindViewAt(uintptr_t start, size_t* from, uint32_t* state) {
  size_t used = g_used.load(std::memory_order_acquire);
  for (size_t i = *from; i < used; i++) {
    Slot& s = g_slots[i];
    uint32_t st = s.state.load(std::memory_order_acquire);
    if ((st & kStateMask) != kActive || s.start.load(std::memory_order_relaxed) != start) continue;
    *from = i + 1;
    *state = st;
    return &s;
  }
  return nullptr;
}

}  // namespace

bool GuardReadOnlyView(uintptr_t start, size_t size) {
  std::call_once(g_install_once, Install);
  for (size_t i = 0; i < kSlots; i++) {
    Slot& s = g_slots[i];
    uint32_t state = s.state.load(std::memory_order_relaxed);
    if ((state & kStateMask) != kFree) continue;
    uint32_t gen = state & ~kStateMask;
    if (!s.state.compare_exchange_strong(state, gen | kBusy, std::memory_order_acq_rel)) continue;
    s.start.store(start, std::memory_order_relaxed);
    s.size.store(size, std::memory_order_relaxed);
    s.written.store(0, std::memory_order_relaxed);
    s.state.store((gen + 4) | kActive, std::memory_order_release);
    size_t used = g_used.load(std::memory_order_relaxed);
    while (used < i + 1 && !g_used.compare_exchange_weak(used, i + 1, std::memory_order_release)) {
    }
    return true;
  }
  return false;
}

bool UnguardView(uintptr_t start) {
  for (size_t from = 0;;) {
    uint32_t state = 0;
    Slot* s = FindViewAt(start, &from, &state);
    if (s == nullptr) return false;
    uint32_t gen = state & ~kStateMask;
    if (!s->state.compare_exchange_strong(state, gen | kBusy, std::memory_order_acq_rel)) continue;
    bool written = s->written.exchange(0, std::memory_order_acq_rel) == state;
    s->state.store((gen + 4) | kFree, std::memory_order_release);
    return written;
  }
}

bool WrittenView(uintptr_t start) {
  size_t from = 0;
  uint32_t state = 0;
  Slot* s = FindViewAt(start, &from, &state);
  return s != nullptr && s->written.load(std::memory_order_acquire) == state;
}

}  // namespace dmabuf_sync
