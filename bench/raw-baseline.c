// Raw baseline for the dmabuf-sync benchmarks: the syscalls the library performs, from C, with nothing else.
//
//   raw-baseline lock <nbufs> <ms> [access]   one "lock+unlock" of nbufs udmabufs per op, for about <ms> ms:
//                                              per buffer EXPORT_SYNC_FILE + poll(timeout 0) + close, then
//                                              SYNC START; then per buffer SYNC END (access: rw|read|write)
//   raw-baseline wake <reps>                   vgem fence on a dumb bo (write), exported READ sync_file,
//                                              a second thread signals it; median poll() wake latency
//
// Prints one JSON object on stdout. Built by scripts/bench.sh with: cc -O2 -pthread -I<drm uapi dir>.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/udmabuf.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_VGEM
// The headers may be the kernel's include/uapi copies, not run through headers_install: strip __user.
#ifndef __user
#define __user
#endif
#include <drm.h>
#include <drm_mode.h>
#include <vgem_drm.h>
#endif

static void die(const char *what) {
  fprintf(stderr, "raw-baseline: %s: %s\n", what, strerror(errno));
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int xioctl(int fd, unsigned long req, void *arg) {
  int r;
  do r = ioctl(fd, req, arg);
  while (r == -1 && (errno == EINTR || errno == EAGAIN));
  return r;
}

// memfd + F_SEAL_SHRINK + UDMABUF_CREATE, as the addon's udmabufCreate does.
static int udmabuf_alloc(int dev, size_t size) {
  int memfd = memfd_create("raw-baseline", MFD_ALLOW_SEALING | MFD_CLOEXEC);
  if (memfd < 0) die("memfd_create");
  if (ftruncate(memfd, (off_t)size) < 0) die("ftruncate");
  if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) die("F_ADD_SEALS");
  struct udmabuf_create c = {.memfd = (uint32_t)memfd, .flags = UDMABUF_FLAGS_CLOEXEC, .offset = 0, .size = size};
  int fd = ioctl(dev, UDMABUF_CREATE, &c);
  if (fd < 0) die("UDMABUF_CREATE");
  close(memfd);
  return fd;
}

// One "lock": for each buffer, are its conflicting fences signalled? (export + poll 0 + close), then SYNC START.
static void lock_all(const int *fds, int n, uint32_t flags) {
  for (int i = 0; i < n; i++) {
    struct dma_buf_export_sync_file ex = {.flags = flags, .fd = -1};
    if (xioctl(fds[i], DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &ex) < 0) die("EXPORT_SYNC_FILE");
    struct pollfd p = {.fd = ex.fd, .events = POLLIN};
    int r;
    do r = poll(&p, 1, 0);
    while (r == -1 && errno == EINTR);
    if (r != 1) { errno = EBUSY; die("fence not signalled"); }
    close(ex.fd);
  }
  for (int i = 0; i < n; i++) {
    struct dma_buf_sync s = {.flags = DMA_BUF_SYNC_START | flags};
    if (xioctl(fds[i], DMA_BUF_IOCTL_SYNC, &s) < 0) die("SYNC START");
  }
}

static void unlock_all(const int *fds, int n, uint32_t flags) {
  for (int i = 0; i < n; i++) {
    struct dma_buf_sync s = {.flags = DMA_BUF_SYNC_END | flags};
    if (xioctl(fds[i], DMA_BUF_IOCTL_SYNC, &s) < 0) die("SYNC END");
  }
}

static int bench_lock(int n, double ms, const char *access) {
  uint32_t flags = !strcmp(access, "read") ? DMA_BUF_SYNC_READ : !strcmp(access, "write") ? DMA_BUF_SYNC_WRITE : DMA_BUF_SYNC_RW;
  int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
  if (dev < 0) die("/dev/udmabuf");
  int *fds = calloc((size_t)n, sizeof *fds);
  long page = sysconf(_SC_PAGESIZE);
  for (int i = 0; i < n; i++) fds[i] = udmabuf_alloc(dev, (size_t)page);
  // Warm-up: a tenth of the time.
  uint64_t end = now_ns() + (uint64_t)(ms * 1e5);
  while (now_ns() < end) { lock_all(fds, n, flags); unlock_all(fds, n, flags); }
  // Measure in batches until the time is up.
  uint64_t ops = 0, batch = 16, t0 = now_ns(), t1;
  end = t0 + (uint64_t)(ms * 1e6);
  do {
    for (uint64_t k = 0; k < batch; k++) { lock_all(fds, n, flags); unlock_all(fds, n, flags); }
    ops += batch;
    t1 = now_ns();
  } while (t1 < end);
  printf("{\"mode\":\"lock\",\"buffers\":%d,\"access\":\"%s\",\"ops\":%llu,\"nsPerOp\":%.1f}\n", n, access,
         (unsigned long long)ops, (double)(t1 - t0) / (double)ops);
  for (int i = 0; i < n; i++) close(fds[i]);
  close(dev);
  free(fds);
  return 0;
}

#ifdef HAVE_VGEM
static int vgem_open(void) {
  char path[64];
  for (int i = 0; i < 16; i++) {
    snprintf(path, sizeof path, "/dev/dri/card%d", i);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    char name[32] = {0};
    struct drm_version v = {.name = name, .name_len = sizeof name - 1};
    if (ioctl(fd, DRM_IOCTL_VERSION, &v) == 0 && !strcmp(name, "vgem")) return fd;
    close(fd);
  }
  errno = ENODEV;
  die("no vgem card in /dev/dri");
  return -1;
}

struct signaller {
  int dev;
  uint32_t fence;
  uint64_t t_signal;
  uint64_t delay_ns;
};

static void *signal_thread(void *arg) {
  struct signaller *s = arg;
  struct timespec d = {.tv_sec = 0, .tv_nsec = (long)s->delay_ns};
  nanosleep(&d, NULL);  // let the main thread block in poll() first
  struct drm_vgem_fence_signal sig = {.fence = s->fence};
  s->t_signal = now_ns();
  if (xioctl(s->dev, DRM_IOCTL_VGEM_FENCE_SIGNAL, &sig) < 0) die("VGEM_FENCE_SIGNAL");
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int bench_wake(int reps, double delay_ms) {
  int dev = vgem_open();
  struct drm_mode_create_dumb dumb = {.width = 1024, .height = 1, .bpp = 32};
  if (xioctl(dev, DRM_IOCTL_MODE_CREATE_DUMB, &dumb) < 0) die("MODE_CREATE_DUMB");
  struct drm_prime_handle prime = {.handle = dumb.handle, .flags = DRM_CLOEXEC | DRM_RDWR, .fd = -1};
  if (xioctl(dev, DRM_IOCTL_PRIME_HANDLE_TO_FD, &prime) < 0) die("PRIME_HANDLE_TO_FD");
  uint64_t *lat = calloc((size_t)reps, sizeof *lat);
  for (int i = -3; i < reps; i++) {  // 3 warm-up rounds
    struct drm_vgem_fence_attach at = {.handle = dumb.handle, .flags = VGEM_FENCE_WRITE};
    if (xioctl(dev, DRM_IOCTL_VGEM_FENCE_ATTACH, &at) < 0) die("VGEM_FENCE_ATTACH");
    struct dma_buf_export_sync_file ex = {.flags = DMA_BUF_SYNC_READ, .fd = -1};
    if (xioctl(prime.fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &ex) < 0) die("EXPORT_SYNC_FILE");
    struct signaller s = {.dev = dev, .fence = at.out_fence, .delay_ns = (uint64_t)(delay_ms * 1e6)};
    pthread_t th;
    if (pthread_create(&th, NULL, signal_thread, &s) != 0) die("pthread_create");
    struct pollfd p = {.fd = ex.fd, .events = POLLIN};
    int r;
    do r = poll(&p, 1, 10000);
    while (r == -1 && errno == EINTR);
    uint64_t t_wake = now_ns();
    if (r != 1) { errno = ETIMEDOUT; die("poll on the sync_file"); }
    pthread_join(th, NULL);
    close(ex.fd);
    if (i >= 0) lat[i] = t_wake - s.t_signal;
  }
  qsort(lat, (size_t)reps, sizeof *lat, cmp_u64);
  printf("{\"mode\":\"wake\",\"reps\":%d,\"medianNs\":%llu,\"minNs\":%llu,\"maxNs\":%llu,\"samplesNs\":[", reps,
         (unsigned long long)lat[reps / 2], (unsigned long long)lat[0], (unsigned long long)lat[reps - 1]);
  for (int i = 0; i < reps; i++) printf("%s%llu", i ? "," : "", (unsigned long long)lat[i]);
  printf("]}\n");
  close(prime.fd);
  struct drm_gem_close gc = {.handle = dumb.handle};
  ioctl(dev, DRM_IOCTL_GEM_CLOSE, &gc);
  close(dev);
  free(lat);
  return 0;
}
#endif

int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "lock")) return bench_lock(atoi(argv[2]), atof(argv[3]), argc > 4 ? argv[4] : "rw");
  if (argc >= 3 && !strcmp(argv[1], "wake")) {
#ifdef HAVE_VGEM
    return bench_wake(atoi(argv[2]), argc > 3 ? atof(argv[3]) : 5.0);
#else
    fprintf(stderr, "raw-baseline: built without the DRM UAPI headers (no vgem)\n");
    return 2;
#endif
  }
  fprintf(stderr, "usage: raw-baseline lock <nbufs> <ms> [rw|read|write] | wake <reps> [delay_ms]\n");
  return 2;
}
