// The DRM UAPI the shim uses (kms.cc, vgem.cc), declared here so every build on every architecture has KMS
// and vgem: the display is a feature and must not depend on a header that some systems lack (Debian's amd64
// linux-libc-dev ships no drm/). Transcribed from the kernel's include/uapi/drm/{drm.h,drm_mode.h,
// drm_fourcc.h,vgem_drm.h}: fixed-width fields as the ABI documents them, request numbers through the
// kernel's _IO* macros so each architecture gets its own encoding. Names live in namespace uapi without the
// DRM_ prefix, so this header can sit next to the system's (native/drm_uapi_check.cc proves they match:
// sizes, every field's offset, every request number).
#ifndef DMABUF_SYNC_DRM_UAPI_H_
#define DMABUF_SYNC_DRM_UAPI_H_

#include <asm/ioctl.h>
#include <fcntl.h>
#include <linux/types.h>

#include <cstddef>

namespace dmabuf_sync {
namespace uapi {

// drm.h
struct drm_version {
  int version_major;
  int version_minor;
  int version_patchlevel;
  __kernel_size_t name_len;
  char* name;
  __kernel_size_t date_len;
  char* date;
  __kernel_size_t desc_len;
  char* desc;
};

struct drm_gem_close {
  __u32 handle;
  __u32 pad;
};

struct drm_set_client_cap {
  __u64 capability;
  __u64 value;
};

struct drm_prime_handle {
  __u32 handle;
  __u32 flags;
  __s32 fd;
};

constexpr __u64 CLIENT_CAP_UNIVERSAL_PLANES = 2;
constexpr __u64 CLIENT_CAP_ATOMIC = 3;
constexpr __u32 CLOEXEC = O_CLOEXEC;
constexpr __u32 RDWR = O_RDWR;

// drm_mode.h
constexpr size_t DISPLAY_MODE_LEN = 32;
constexpr size_t PROP_NAME_LEN = 32;

struct drm_mode_modeinfo {
  __u32 clock;
  __u16 hdisplay;
  __u16 hsync_start;
  __u16 hsync_end;
  __u16 htotal;
  __u16 hskew;
  __u16 vdisplay;
  __u16 vsync_start;
  __u16 vsync_end;
  __u16 vtotal;
  __u16 vscan;
  __u32 vrefresh;
  __u32 flags;
  __u32 type;
  char name[DISPLAY_MODE_LEN];
};

struct drm_mode_card_res {
  __u64 fb_id_ptr;
  __u64 crtc_id_ptr;
  __u64 connector_id_ptr;
  __u64 encoder_id_ptr;
  __u32 count_fbs;
  __u32 count_crtcs;
  __u32 count_connectors;
  __u32 count_encoders;
  __u32 min_width;
  __u32 max_width;
  __u32 min_height;
  __u32 max_height;
};

struct drm_mode_get_plane {
  __u32 plane_id;
  __u32 crtc_id;
  __u32 fb_id;
  __u32 possible_crtcs;
  __u32 gamma_size;
  __u32 count_format_types;
  __u64 format_type_ptr;
};

struct drm_mode_get_plane_res {
  __u64 plane_id_ptr;
  __u32 count_planes;
};

struct drm_mode_get_encoder {
  __u32 encoder_id;
  __u32 encoder_type;
  __u32 crtc_id;
  __u32 possible_crtcs;
  __u32 possible_clones;
};

struct drm_mode_get_connector {
  __u64 encoders_ptr;
  __u64 modes_ptr;
  __u64 props_ptr;
  __u64 prop_values_ptr;
  __u32 count_modes;
  __u32 count_props;
  __u32 count_encoders;
  __u32 encoder_id;
  __u32 connector_id;
  __u32 connector_type;
  __u32 connector_type_id;
  __u32 connection;
  __u32 mm_width;
  __u32 mm_height;
  __u32 subpixel;
  __u32 pad;
};

struct drm_mode_get_property {
  __u64 values_ptr;
  __u64 enum_blob_ptr;
  __u32 prop_id;
  __u32 flags;
  char name[PROP_NAME_LEN];
  __u32 count_values;
  __u32 count_enum_blobs;
};

struct drm_mode_obj_get_properties {
  __u64 props_ptr;
  __u64 prop_values_ptr;
  __u32 count_props;
  __u32 obj_id;
  __u32 obj_type;
};

struct drm_mode_fb_cmd2 {
  __u32 fb_id;
  __u32 width;
  __u32 height;
  __u32 pixel_format;
  __u32 flags;
  __u32 handles[4];
  __u32 pitches[4];
  __u32 offsets[4];
  __u64 modifier[4];
};

struct drm_mode_create_dumb {
  __u32 height;
  __u32 width;
  __u32 bpp;
  __u32 flags;
  __u32 handle;
  __u32 pitch;
  __u64 size;
};

struct drm_mode_destroy_dumb {
  __u32 handle;
};

struct drm_mode_atomic {
  __u32 flags;
  __u32 count_objs;
  __u64 objs_ptr;
  __u64 count_props_ptr;
  __u64 props_ptr;
  __u64 prop_values_ptr;
  __u64 reserved;
  __u64 user_data;
};

struct drm_mode_create_blob {
  __u64 data;
  __u32 length;
  __u32 blob_id;
};

struct drm_mode_destroy_blob {
  __u32 blob_id;
};

constexpr __u32 MODE_OBJECT_CRTC = 0xcccccccc;
constexpr __u32 MODE_OBJECT_CONNECTOR = 0xc0c0c0c0;
constexpr __u32 MODE_OBJECT_PLANE = 0xeeeeeeee;
constexpr __u32 MODE_PAGE_FLIP_EVENT = 0x01;
constexpr __u32 MODE_ATOMIC_TEST_ONLY = 0x0100;
constexpr __u32 MODE_ATOMIC_NONBLOCK = 0x0200;
constexpr __u32 MODE_ATOMIC_ALLOW_MODESET = 0x0400;

// drm_fourcc.h
constexpr __u32 FourccCode(char a, char b, char c, char d) {
  return static_cast<__u32>(a) | static_cast<__u32>(b) << 8 | static_cast<__u32>(c) << 16 |
         static_cast<__u32>(d) << 24;
}
constexpr __u32 FORMAT_XRGB8888 = FourccCode('X', 'R', '2', '4');

// vgem_drm.h
struct drm_vgem_fence_attach {
  __u32 handle;
  __u32 flags;
  __u32 out_fence;
  __u32 pad;
};

struct drm_vgem_fence_signal {
  __u32 fence;
  __u32 flags;
};

constexpr __u32 VGEM_FENCE_FLAG_WRITE = 0x1;

// Request numbers: drm.h's DRM_IO* are the kernel's _IO* with type 'd'; driver ioctls start at
// DRM_COMMAND_BASE.
constexpr unsigned IOCTL_BASE = 'd';
constexpr unsigned COMMAND_BASE = 0x40;
constexpr unsigned long IOCTL_VERSION = _IOWR(IOCTL_BASE, 0x00, struct drm_version);
constexpr unsigned long IOCTL_GEM_CLOSE = _IOW(IOCTL_BASE, 0x09, struct drm_gem_close);
constexpr unsigned long IOCTL_SET_CLIENT_CAP = _IOW(IOCTL_BASE, 0x0d, struct drm_set_client_cap);
constexpr unsigned long IOCTL_PRIME_HANDLE_TO_FD = _IOWR(IOCTL_BASE, 0x2d, struct drm_prime_handle);
constexpr unsigned long IOCTL_PRIME_FD_TO_HANDLE = _IOWR(IOCTL_BASE, 0x2e, struct drm_prime_handle);
constexpr unsigned long IOCTL_MODE_GETRESOURCES = _IOWR(IOCTL_BASE, 0xA0, struct drm_mode_card_res);
constexpr unsigned long IOCTL_MODE_GETENCODER = _IOWR(IOCTL_BASE, 0xA6, struct drm_mode_get_encoder);
constexpr unsigned long IOCTL_MODE_GETCONNECTOR = _IOWR(IOCTL_BASE, 0xA7, struct drm_mode_get_connector);
constexpr unsigned long IOCTL_MODE_GETPROPERTY = _IOWR(IOCTL_BASE, 0xAA, struct drm_mode_get_property);
constexpr unsigned long IOCTL_MODE_RMFB = _IOWR(IOCTL_BASE, 0xAF, unsigned int);
constexpr unsigned long IOCTL_MODE_CREATE_DUMB = _IOWR(IOCTL_BASE, 0xB2, struct drm_mode_create_dumb);
constexpr unsigned long IOCTL_MODE_DESTROY_DUMB = _IOWR(IOCTL_BASE, 0xB4, struct drm_mode_destroy_dumb);
constexpr unsigned long IOCTL_MODE_GETPLANERESOURCES = _IOWR(IOCTL_BASE, 0xB5, struct drm_mode_get_plane_res);
constexpr unsigned long IOCTL_MODE_GETPLANE = _IOWR(IOCTL_BASE, 0xB6, struct drm_mode_get_plane);
constexpr unsigned long IOCTL_MODE_ADDFB2 = _IOWR(IOCTL_BASE, 0xB8, struct drm_mode_fb_cmd2);
constexpr unsigned long IOCTL_MODE_OBJ_GETPROPERTIES = _IOWR(IOCTL_BASE, 0xB9, struct drm_mode_obj_get_properties);
constexpr unsigned long IOCTL_MODE_ATOMIC = _IOWR(IOCTL_BASE, 0xBC, struct drm_mode_atomic);
constexpr unsigned long IOCTL_MODE_CREATEPROPBLOB = _IOWR(IOCTL_BASE, 0xBD, struct drm_mode_create_blob);
constexpr unsigned long IOCTL_MODE_DESTROYPROPBLOB = _IOWR(IOCTL_BASE, 0xBE, struct drm_mode_destroy_blob);
constexpr unsigned long IOCTL_VGEM_FENCE_ATTACH =
    _IOWR(IOCTL_BASE, COMMAND_BASE + 0x1, struct drm_vgem_fence_attach);
constexpr unsigned long IOCTL_VGEM_FENCE_SIGNAL =
    _IOW(IOCTL_BASE, COMMAND_BASE + 0x2, struct drm_vgem_fence_signal);

}  // namespace uapi
}  // namespace dmabuf_sync

#endif  // DMABUF_SYNC_DRM_UAPI_H_
