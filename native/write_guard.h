// The write guard of read-only views: a store into a PROT_READ mapping of a dma-buf must not kill the
// process (JavaScript has no read-only typed array). See write_guard.cc.
#ifndef DMABUF_SYNC_WRITE_GUARD_H_
#define DMABUF_SYNC_WRITE_GUARD_H_

#include <cstddef>
#include <cstdint>

namespace dmabuf_sync {

// Installs the SIGSEGV handler (once per process) and records [start, start + size) as a read-only view.
// Returns false if the table of guarded views is full (the caller must not hand the view out).
bool GuardReadOnlyView(uintptr_t start, size_t size);

// Forgets the view that starts at `start` (call it BEFORE munmap or replacing the range). Returns true if a
// write into the view was caught since it was guarded. Unknown `start`: false.
bool UnguardView(uintptr_t start);

// Whether a write into the guarded view that starts at `start` was caught (it stays guarded). Unknown: false.
bool WrittenView(uintptr_t start);

}  // namespace dmabuf_sync

#endif  // DMABUF_SYNC_WRITE_GUARD_H_
