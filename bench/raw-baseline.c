// Raw baseline for the dmabuf-sync benchmarks: the syscalls the library performs, from C, with nothing else.
//
//   raw-baseline lock <nbufs> <ms> [access]   one "lock+unlock" of nbufs udmabufs per op, for about <ms> ms:
//                                              one poll(timeout 0) over all the dma-bufs (are their conflicting
//                                              fences signalled?), then per buffer SYNC START; then per buffer
//                                              SYNC END (access: rw|read|write)
//   raw-baseline wake <reps>                   vgem fence on a dumb bo (write), exported READ sync_file,
//                                              a second thread signals it; median poll() wake latency
//   raw-baseline flip <frames>                 the swap chain's ioctls on the first KMS card with a connected
//                                              output: 2 dumb buffers; per frame: EXPORT_SYNC_FILE(write) of
//                                              the back buffer + poll + close, SYNC START, write a row, SYNC
//                                              END, EXPORT_SYNC_FILE(read) + poll + close, wait for the last
//                                              flip, ATOMIC NONBLOCK with OUT_FENCE_PTR, IMPORT_SYNC_FILE of
//                                              the out-fence into the replaced buffer. Reports frames/s and
//                                              the median present→out-fence latency (a second pass that
//                                              polls every out-fence)
//   raw-baseline futex <reps> <settle_us>      hand-off between two processes (fork) on one MAP_SHARED word:
//                                              the holder sleeps settle_us (so the other is asleep in
//                                              FUTEX_WAIT), records CLOCK_MONOTONIC, passes the turn and
//                                              FUTEX_WAKEs (shared futex ops, not FUTEX_PRIVATE); one-way
//                                              latency = the waiter's wake time - that record. p50/p99 of
//                                              2 x reps hand-offs, after 20 warm-up ones
//   raw-baseline v4l2 <node> <nbufs> <warm> <frames>
//                                              capture → CPU read on a V4L2 capture node (vivid), the ioctls of
//                                              DeviceQueue + captureFrames() without the locks: S_FMT 640x480
//                                              XR24, S_PARM 1/60, REQBUFS MMAP, EXPBUF each, QBUF all, STREAMON;
//                                              per frame: poll(POLLIN), DQBUF, DMA_BUF_IOCTL_SYNC START(read) on
//                                              the exported fd (the frame is "locked": latency = now - the
//                                              buffer's CLOCK_MONOTONIC timestamp), SYNC END, QBUF. After <warm>
//                                              frames, <frames> are measured: frames/s, p50/p99 latency, CPU time
//                                              (getrusage, user+sys) per frame
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
#include <linux/futex.h>
#include <linux/videodev2.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
// The headers may be the kernel's include/uapi copies, not run through headers_install: strip __user.
#ifndef __user
#define __user
#endif
#include <drm.h>
#include <drm_mode.h>
#include <vgem_drm.h>

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

// One "lock": are the buffers' conflicting fences signalled? (one poll, timeout 0, over all the dma-bufs:
// POLLIN = writers done, POLLOUT = all done), then SYNC START each. As DmabufSync.lock() does.
static void lock_all(const int *fds, int n, uint32_t flags) {
  struct pollfd p[64];
  short ev = (flags & DMA_BUF_SYNC_WRITE) ? POLLOUT : POLLIN;
  if (n > 64) { errno = EINVAL; die("more than 64 buffers"); }
  for (int i = 0; i < n; i++) p[i] = (struct pollfd){.fd = fds[i], .events = ev};
  int r;
  do r = poll(p, (nfds_t)n, 0);
  while (r == -1 && errno == EINTR);
  if (r != n) { errno = EBUSY; die("fence not signalled"); }
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

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

// --- futex: the C floor of a cross-process hand-off ---------------------------------------------------
#define FUTEX_WARM 20

// Shared between the two processes (MAP_SHARED | MAP_ANONYMOUS, inherited across fork).
struct handoff {
  uint32_t turn;  // the side (0 = parent, 1 = child) that may run; the futex word
  uint64_t t_release;  // CLOCK_MONOTONIC when the turn was passed
  uint64_t lat[];  // side s writes its samples at [s * reps, (s + 1) * reps)
};

// Shared (not FUTEX_PRIVATE) ops: the word is in a mapping shared by two processes.
static long futex_op(uint32_t *word, int op, uint32_t val) {
  return syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

// Blocks until it is side `me`'s turn; returns the wake time.
static uint64_t wait_turn(struct handoff *h, uint32_t me) {
  uint32_t t;
  while ((t = __atomic_load_n(&h->turn, __ATOMIC_ACQUIRE)) != me) {
    if (futex_op(&h->turn, FUTEX_WAIT, t) < 0 && errno != EAGAIN && errno != EINTR) die("FUTEX_WAIT");
  }
  return now_ns();
}

// Sleeps settle_us (the other side falls asleep in FUTEX_WAIT), then passes the turn and wakes it.
static void pass_turn(struct handoff *h, uint32_t me, long settle_us) {
  struct timespec d = {.tv_sec = settle_us / 1000000, .tv_nsec = (settle_us % 1000000) * 1000};
  nanosleep(&d, NULL);
  h->t_release = now_ns();
  __atomic_store_n(&h->turn, me ^ 1u, __ATOMIC_RELEASE);
  if (futex_op(&h->turn, FUTEX_WAKE, 1) < 0) die("FUTEX_WAKE");
}

// One side's loop: side 0 starts with the turn; each side records `reps` hand-offs after the warm-up.
static void ping_pong(struct handoff *h, uint32_t me, int reps, long settle_us) {
  int rounds = reps + FUTEX_WARM;
  for (int i = 0; i < rounds; i++) {
    if (me == 1 || i > 0) {
      uint64_t t_wake = wait_turn(h, me);
      if (i >= FUTEX_WARM) h->lat[(size_t)me * (size_t)reps + (size_t)(i - FUTEX_WARM)] = t_wake - h->t_release;
    }
    pass_turn(h, me, settle_us);
  }
}

static int bench_futex(int reps, long settle_us) {
  if (reps < 2) { errno = EINVAL; die("futex: reps < 2"); }
  size_t size = sizeof(struct handoff) + 2 * (size_t)reps * sizeof(uint64_t);
  struct handoff *h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (h == MAP_FAILED) die("mmap");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    ping_pong(h, 1, reps, settle_us);
    _exit(0);
  }
  ping_pong(h, 0, reps, settle_us);
  int status;
  if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) { errno = ECHILD; die("futex child"); }
  size_t n = 2 * (size_t)reps;
  uint64_t *lat = h->lat;
  qsort(lat, n, sizeof *lat, cmp_u64);
  printf("{\"mode\":\"futex\",\"handoffs\":%zu,\"settleUs\":%ld,\"p50Ns\":%llu,\"p99Ns\":%llu,\"minNs\":%llu,\"maxNs\":%llu}\n", n,
         settle_us, (unsigned long long)lat[(n - 1) / 2], (unsigned long long)lat[(n * 99 + 99) / 100 - 1], (unsigned long long)lat[0],
         (unsigned long long)lat[n - 1]);
  munmap(h, size);
  return 0;
}

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

// --- flip: KMS ------------------------------------------------------------------------------------------
struct kms {
  int fd;
  uint32_t conn, crtc, plane, mode_blob, w, h;
  uint32_t p_conn_crtc, p_mode, p_active, p_out_fence, p_fb, p_crtc, p_sx, p_sy, p_sw, p_sh, p_cx, p_cy, p_cw, p_ch;
};

static uint32_t prop_id(int fd, uint32_t obj, uint32_t type, const char *name) {
  uint32_t ids[64];
  uint64_t vals[64];
  struct drm_mode_obj_get_properties g = {.props_ptr = (uintptr_t)ids, .prop_values_ptr = (uintptr_t)vals, .count_props = 64, .obj_id = obj, .obj_type = type};
  if (xioctl(fd, DRM_IOCTL_MODE_OBJ_GETPROPERTIES, &g) < 0) die("OBJ_GETPROPERTIES");
  for (uint32_t i = 0; i < g.count_props && i < 64; i++) {
    struct drm_mode_get_property p = {.prop_id = ids[i]};
    if (xioctl(fd, DRM_IOCTL_MODE_GETPROPERTY, &p) < 0) die("GETPROPERTY");
    if (!strcmp(p.name, name)) return ids[i];
    if (!strcmp(name, "type=primary") && !strcmp(p.name, "type")) return vals[i] == 1;
  }
  return 0;
}

// The first card with a connected connector: its CRTC (of the first encoder) and a primary plane of it.
static int kms_open(struct kms *k) {
  char path[64];
  for (int i = 0; i < 16; i++) {
    snprintf(path, sizeof path, "/dev/dri/card%d", i);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    struct drm_set_client_cap c1 = {.capability = DRM_CLIENT_CAP_UNIVERSAL_PLANES, .value = 1};
    struct drm_set_client_cap c2 = {.capability = DRM_CLIENT_CAP_ATOMIC, .value = 1};
    uint32_t crtcs[8], conns[8], encs[8];
    struct drm_mode_card_res res = {.crtc_id_ptr = (uintptr_t)crtcs, .connector_id_ptr = (uintptr_t)conns, .encoder_id_ptr = (uintptr_t)encs,
                                    .count_crtcs = 8, .count_connectors = 8, .count_encoders = 8};
    if (ioctl(fd, DRM_IOCTL_SET_CLIENT_CAP, &c1) < 0 || ioctl(fd, DRM_IOCTL_SET_CLIENT_CAP, &c2) < 0 ||
        ioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res) < 0) { close(fd); continue; }
    for (uint32_t j = 0; j < res.count_connectors && j < 8; j++) {
      struct drm_mode_modeinfo modes[64];
      uint32_t cencs[8];
      struct drm_mode_get_connector gc = {.connector_id = conns[j]};
      if (xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &gc) < 0) die("GETCONNECTOR");
      if (gc.connection != 1 || gc.count_modes == 0) continue;
      struct drm_mode_get_connector g2 = {.connector_id = conns[j], .modes_ptr = (uintptr_t)modes, .count_modes = gc.count_modes < 64 ? gc.count_modes : 64,
                                          .encoders_ptr = (uintptr_t)cencs, .count_encoders = gc.count_encoders < 8 ? gc.count_encoders : 8};
      if (xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &g2) < 0) die("GETCONNECTOR");
      struct drm_mode_modeinfo *m = &modes[0];
      for (uint32_t q = 0; q < g2.count_modes && q < 64; q++) if (modes[q].type & DRM_MODE_TYPE_PREFERRED) { m = &modes[q]; break; }
      struct drm_mode_get_encoder e = {.encoder_id = cencs[0]};
      if (xioctl(fd, DRM_IOCTL_MODE_GETENCODER, &e) < 0) die("GETENCODER");
      int ci = 0;
      while (ci < 8 && !(e.possible_crtcs & (1u << ci))) ci++;
      uint32_t planes[16];
      struct drm_mode_get_plane_res pr = {.plane_id_ptr = (uintptr_t)planes, .count_planes = 16};
      if (xioctl(fd, DRM_IOCTL_MODE_GETPLANERESOURCES, &pr) < 0) die("GETPLANERESOURCES");
      for (uint32_t q = 0; q < pr.count_planes && q < 16; q++) {
        struct drm_mode_get_plane gp = {.plane_id = planes[q]};
        if (xioctl(fd, DRM_IOCTL_MODE_GETPLANE, &gp) < 0) die("GETPLANE");
        if (!(gp.possible_crtcs & (1u << ci)) || !prop_id(fd, planes[q], DRM_MODE_OBJECT_PLANE, "type=primary")) continue;
        k->fd = fd; k->conn = conns[j]; k->crtc = crtcs[ci]; k->plane = planes[q]; k->w = m->hdisplay; k->h = m->vdisplay;
        struct drm_mode_create_blob b = {.data = (uintptr_t)m, .length = sizeof *m};
        if (xioctl(fd, DRM_IOCTL_MODE_CREATEPROPBLOB, &b) < 0) die("CREATEPROPBLOB");
        k->mode_blob = b.blob_id;
        k->p_conn_crtc = prop_id(fd, k->conn, DRM_MODE_OBJECT_CONNECTOR, "CRTC_ID");
        k->p_mode = prop_id(fd, k->crtc, DRM_MODE_OBJECT_CRTC, "MODE_ID");
        k->p_active = prop_id(fd, k->crtc, DRM_MODE_OBJECT_CRTC, "ACTIVE");
        k->p_out_fence = prop_id(fd, k->crtc, DRM_MODE_OBJECT_CRTC, "OUT_FENCE_PTR");
        const char *pn[] = {"FB_ID", "CRTC_ID", "SRC_X", "SRC_Y", "SRC_W", "SRC_H", "CRTC_X", "CRTC_Y", "CRTC_W", "CRTC_H"};
        uint32_t *pp[] = {&k->p_fb, &k->p_crtc, &k->p_sx, &k->p_sy, &k->p_sw, &k->p_sh, &k->p_cx, &k->p_cy, &k->p_cw, &k->p_ch};
        for (int t = 0; t < 10; t++) *pp[t] = prop_id(fd, k->plane, DRM_MODE_OBJECT_PLANE, pn[t]);
        return 0;
      }
    }
    close(fd);
  }
  errno = ENODEV;
  die("no KMS card with a connected output (run with DMABUF_VM_DISPLAY=bochs)");
  return -1;
}

static void poll_fd(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r;
  do r = poll(&p, 1, 10000);
  while (r == -1 && errno == EINTR);
  if (r != 1) { errno = ETIMEDOUT; die("poll"); }
}

// Waits for the buffer's fences conflicting with `flags`, as DmabufSync.lock does: a poll(timeout 0) of the
// dma-buf, and only if one is pending EXPORT_SYNC_FILE + poll + close.
static void wait_fences(int dmabuf, uint32_t flags) {
  struct pollfd now = {.fd = dmabuf, .events = (flags & DMA_BUF_SYNC_WRITE) ? POLLOUT : POLLIN};
  int r;
  do r = poll(&now, 1, 0);
  while (r == -1 && errno == EINTR);
  if (r == 1) return;
  struct dma_buf_export_sync_file ex = {.flags = flags, .fd = -1};
  if (xioctl(dmabuf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &ex) < 0) die("EXPORT_SYNC_FILE");
  poll_fd(ex.fd);
  close(ex.fd);
}

// One atomic commit of `fb`; returns the out-fence fd.
static int commit(struct kms *k, uint32_t fb, int modeset) {
  uint32_t objs[3], counts[3], props[16];
  uint64_t vals[16];
  int32_t out = -1;
  int no = 0, np = 0;
#define PROP(id, v) (props[np] = (id), vals[np] = (uint64_t)(v), np++)
  if (modeset) { objs[no] = k->conn; counts[no++] = 1; PROP(k->p_conn_crtc, k->crtc); }
  objs[no] = k->crtc; counts[no++] = modeset ? 3 : 1;
  PROP(k->p_out_fence, (uintptr_t)&out);
  if (modeset) { PROP(k->p_mode, k->mode_blob); PROP(k->p_active, 1); }
  objs[no] = k->plane; counts[no++] = 10;
  PROP(k->p_fb, fb); PROP(k->p_crtc, k->crtc); PROP(k->p_sx, 0); PROP(k->p_sy, 0); PROP(k->p_sw, (uint64_t)k->w << 16);
  PROP(k->p_sh, (uint64_t)k->h << 16); PROP(k->p_cx, 0); PROP(k->p_cy, 0); PROP(k->p_cw, k->w); PROP(k->p_ch, k->h);
#undef PROP
  struct drm_mode_atomic a = {.flags = DRM_MODE_ATOMIC_NONBLOCK | (modeset ? DRM_MODE_ATOMIC_ALLOW_MODESET : 0), .count_objs = (uint32_t)no,
                              .objs_ptr = (uintptr_t)objs, .count_props_ptr = (uintptr_t)counts, .props_ptr = (uintptr_t)props, .prop_values_ptr = (uintptr_t)vals};
  if (ioctl(k->fd, DRM_IOCTL_MODE_ATOMIC, &a) < 0) die("MODE_ATOMIC");
  return out;
}

static int bench_flip(int frames) {
  struct kms k;
  kms_open(&k);
  int dmabuf[2];
  uint32_t fb[2], handle[2], pitch[2];
  uint32_t *px[2];
  for (int i = 0; i < 2; i++) {
    struct drm_mode_create_dumb d = {.width = k.w, .height = k.h, .bpp = 32};
    if (xioctl(k.fd, DRM_IOCTL_MODE_CREATE_DUMB, &d) < 0) die("MODE_CREATE_DUMB");
    struct drm_prime_handle p = {.handle = d.handle, .flags = DRM_CLOEXEC | DRM_RDWR, .fd = -1};
    if (xioctl(k.fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p) < 0) die("PRIME_HANDLE_TO_FD");
    struct drm_mode_fb_cmd2 f = {.width = k.w, .height = k.h, .pixel_format = 0x34325258 /* XR24 */, .handles = {d.handle}, .pitches = {d.pitch}};
    if (xioctl(k.fd, DRM_IOCTL_MODE_ADDFB2, &f) < 0) die("ADDFB2");
    dmabuf[i] = p.fd; fb[i] = f.fb_id; handle[i] = d.handle; pitch[i] = d.pitch;
    px[i] = mmap(NULL, d.size, PROT_READ | PROT_WRITE, MAP_SHARED, p.fd, 0);
    if (px[i] == MAP_FAILED) die("mmap");
  }
  uint64_t *lat = calloc((size_t)frames, sizeof *lat);
  double fps = 0;
  for (int pass = 0; pass < 2; pass++) {  // pass 0: frames/s (out-fences not awaited); pass 1: latency
    int last = -1;
    uint64_t t0 = now_ns();
    for (int n = -2; n < frames; n++) {  // two warm-up frames (the first one sets the mode)
      int b = (n + 2) & 1;
      wait_fences(dmabuf[b], DMA_BUF_SYNC_WRITE);  // acquire: the display let go of it
      struct dma_buf_sync s = {.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE};
      if (xioctl(dmabuf[b], DMA_BUF_IOCTL_SYNC, &s) < 0) die("SYNC START");
      for (uint32_t x = 0; x < k.w; x++) px[b][x] = (uint32_t)n;
      s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE;
      if (xioctl(dmabuf[b], DMA_BUF_IOCTL_SYNC, &s) < 0) die("SYNC END");
      wait_fences(dmabuf[b], DMA_BUF_SYNC_READ);  // present: lock for device read
      uint64_t tp = now_ns();
      if (last >= 0) { poll_fd(last); close(last); }  // the previous flip latched (else EBUSY)
      int out = commit(&k, fb[b], pass == 0 && n == -2);
      struct dma_buf_import_sync_file im = {.flags = DMA_BUF_SYNC_READ, .fd = out};
      if (xioctl(dmabuf[b ^ 1], DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &im) < 0) die("IMPORT_SYNC_FILE");
      if (pass == 1) { poll_fd(out); if (n >= 0) lat[n] = now_ns() - tp; }
      last = out;
      if (n == -1) t0 = now_ns();
    }
    if (last >= 0) { poll_fd(last); close(last); }
    if (pass == 0) fps = frames / ((double)(now_ns() - t0) / 1e9);
  }
  qsort(lat, (size_t)frames, sizeof *lat, cmp_u64);
  printf("{\"mode\":\"flip\",\"frames\":%d,\"width\":%u,\"height\":%u,\"framesPerS\":%.1f,\"medianLatencyNs\":%llu}\n", frames, k.w, k.h, fps,
         (unsigned long long)lat[frames / 2]);
  for (int i = 0; i < 2; i++) {
    munmap(px[i], (size_t)pitch[i] * k.h);
    ioctl(k.fd, DRM_IOCTL_MODE_RMFB, &fb[i]);
    struct drm_mode_destroy_dumb dd = {.handle = handle[i]};
    ioctl(k.fd, DRM_IOCTL_MODE_DESTROY_DUMB, &dd);
    close(dmabuf[i]);
  }
  close(k.fd);
  free(lat);
  return 0;
}

static uint64_t rusage_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
         ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int bench_v4l2(const char *node, int nbufs, int warm, int frames) {
  if (nbufs < 2 || nbufs > 32 || warm < 0 || frames < 2) { errno = EINVAL; die("v4l2: bad arguments"); }
  int fd = open(node, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die(node);
  struct v4l2_format fmt = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
  fmt.fmt.pix.width = 640;
  fmt.fmt.pix.height = 480;
  fmt.fmt.pix.pixelformat = V4L2_PIX_FMT_XBGR32;
  fmt.fmt.pix.field = V4L2_FIELD_NONE;
  if (xioctl(fd, VIDIOC_S_FMT, &fmt) < 0) die("VIDIOC_S_FMT");
  struct v4l2_streamparm parm = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
  parm.parm.capture.timeperframe.numerator = 1;
  parm.parm.capture.timeperframe.denominator = 60;
  if (xioctl(fd, VIDIOC_S_PARM, &parm) < 0) die("VIDIOC_S_PARM");
  struct v4l2_requestbuffers req = {.count = (uint32_t)nbufs, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP};
  if (xioctl(fd, VIDIOC_REQBUFS, &req) < 0) die("VIDIOC_REQBUFS");
  int n = (int)req.count;
  int dmabuf[32];
  for (int i = 0; i < n; i++) {
    struct v4l2_exportbuffer e = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .index = (uint32_t)i, .flags = O_RDWR | O_CLOEXEC};
    if (xioctl(fd, VIDIOC_EXPBUF, &e) < 0) die("VIDIOC_EXPBUF");
    dmabuf[i] = e.fd;
  }
  for (int i = 0; i < n; i++) {
    struct v4l2_buffer b = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP, .index = (uint32_t)i};
    if (xioctl(fd, VIDIOC_QBUF, &b) < 0) die("VIDIOC_QBUF");
  }
  int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
  if (xioctl(fd, VIDIOC_STREAMON, &type) < 0) die("VIDIOC_STREAMON");
  int64_t *lat = calloc((size_t)frames, sizeof *lat);
  if (!lat) die("calloc");
  uint64_t t_first = 0, t_last = 0, cpu0 = 0, cpu1 = 0;
  uint32_t tsflags = 0;
  for (int f = 0; f < warm + frames; f++) {
    struct v4l2_buffer b = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP};
    for (;;) {
      if (ioctl(fd, VIDIOC_DQBUF, &b) == 0) break;
      if (errno != EAGAIN && errno != EINTR) die("VIDIOC_DQBUF");
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (poll(&p, 1, 5000) <= 0) { errno = ETIMEDOUT; die("poll"); }
    }
    struct dma_buf_sync s = {.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ};
    if (xioctl(dmabuf[b.index], DMA_BUF_IOCTL_SYNC, &s) < 0) die("DMA_BUF_IOCTL_SYNC START");
    uint64_t t = now_ns();
    if (f >= warm) {
      uint64_t ts = (uint64_t)b.timestamp.tv_sec * 1000000000ull + (uint64_t)b.timestamp.tv_usec * 1000ull;
      lat[f - warm] = (int64_t)(t - ts); // negative when the driver stamps a time after the frame was done
      if (f == warm) { t_first = t; cpu0 = rusage_ns(); tsflags = b.flags & (V4L2_BUF_FLAG_TIMESTAMP_MASK | V4L2_BUF_FLAG_TSTAMP_SRC_MASK); }
      t_last = t;
      if (f == warm + frames - 1) cpu1 = rusage_ns();
    }
    s.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ;
    if (xioctl(dmabuf[b.index], DMA_BUF_IOCTL_SYNC, &s) < 0) die("DMA_BUF_IOCTL_SYNC END");
    if (xioctl(fd, VIDIOC_QBUF, &b) < 0) die("VIDIOC_QBUF");
  }
  uint64_t cpu = cpu1 - cpu0;
  if (xioctl(fd, VIDIOC_STREAMOFF, &type) < 0) die("VIDIOC_STREAMOFF");
  for (int i = 0; i < n; i++) close(dmabuf[i]);
  req.count = 0;
  xioctl(fd, VIDIOC_REQBUFS, &req);
  close(fd);
  qsort(lat, (size_t)frames, sizeof *lat, cmp_i64);
  double fps = (double)(frames - 1) * 1e9 / (double)(t_last - t_first);
  printf("{\"mode\":\"v4l2\",\"buffers\":%d,\"frames\":%d,\"framesPerS\":%.2f,\"p50Ns\":%lld,\"p99Ns\":%lld,\"minNs\":%lld,\"cpuNsPerFrame\":%.0f,\"timestampFlags\":%u}\n",
         n, frames, fps, (long long)lat[frames / 2], (long long)lat[(frames * 99 + 99) / 100 - 1],
         (long long)lat[0], (double)cpu / (double)(frames - 1), tsflags);
  free(lat);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "lock")) return bench_lock(atoi(argv[2]), atof(argv[3]), argc > 4 ? argv[4] : "rw");
  if (argc >= 3 && !strcmp(argv[1], "wake")) {
    return bench_wake(atoi(argv[2]), argc > 3 ? atof(argv[3]) : 5.0);
  }
  if (argc >= 3 && !strcmp(argv[1], "futex")) return bench_futex(atoi(argv[2]), argc > 3 ? atol(argv[3]) : 1000);
  if (argc >= 3 && !strcmp(argv[1], "flip")) {
    return bench_flip(atoi(argv[2]));
  }
  if (argc >= 6 && !strcmp(argv[1], "v4l2")) return bench_v4l2(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
  fprintf(stderr, "usage: raw-baseline lock <nbufs> <ms> [rw|read|write] | wake <reps> [delay_ms] | flip <frames> | futex <reps> [settle_us] | v4l2 <node> <nbufs> <warm> <frames>\n");
  return 2;
}
