// Compile-time proof that native/drm_uapi.h matches the system's DRM UAPI headers: every struct's size, every
// field's offset and size, every request number and constant. Not part of the addon (binding.gyp does not
// list it): scripts/check-drm-uapi.sh compiles it for x64, arm64 and arm against each toolchain's drm/
// headers. A mismatch is a compile error naming the struct and field.
#include <drm/drm.h>
#include <drm/drm_fourcc.h>
#include <drm/drm_mode.h>
#include <drm/vgem_drm.h>

#include <cstddef>

#include "drm_uapi.h"

namespace u = dmabuf_sync::uapi;

#define SAME_SIZE(s) static_assert(sizeof(u::s) == sizeof(::s), "sizeof(" #s ") differs from the system's")
#define SAME_FIELD(s, f)                                                                                    \
  static_assert(offsetof(u::s, f) == offsetof(::s, f), "offset of " #s "." #f " differs from the system's"); \
  static_assert(sizeof(u::s::f) == sizeof(::s::f), "size of " #s "." #f " differs from the system's")
#define SAME_VALUE(ours, theirs) static_assert(u::ours == (theirs), #ours " differs from the system's " #theirs)

SAME_SIZE(drm_version);
SAME_FIELD(drm_version, version_major);
SAME_FIELD(drm_version, version_minor);
SAME_FIELD(drm_version, version_patchlevel);
SAME_FIELD(drm_version, name_len);
SAME_FIELD(drm_version, name);
SAME_FIELD(drm_version, date_len);
SAME_FIELD(drm_version, date);
SAME_FIELD(drm_version, desc_len);
SAME_FIELD(drm_version, desc);

SAME_SIZE(drm_gem_close);
SAME_FIELD(drm_gem_close, handle);
SAME_FIELD(drm_gem_close, pad);

SAME_SIZE(drm_set_client_cap);
SAME_FIELD(drm_set_client_cap, capability);
SAME_FIELD(drm_set_client_cap, value);

SAME_SIZE(drm_prime_handle);
SAME_FIELD(drm_prime_handle, handle);
SAME_FIELD(drm_prime_handle, flags);
SAME_FIELD(drm_prime_handle, fd);

SAME_SIZE(drm_mode_modeinfo);
SAME_FIELD(drm_mode_modeinfo, clock);
SAME_FIELD(drm_mode_modeinfo, hdisplay);
SAME_FIELD(drm_mode_modeinfo, hsync_start);
SAME_FIELD(drm_mode_modeinfo, hsync_end);
SAME_FIELD(drm_mode_modeinfo, htotal);
SAME_FIELD(drm_mode_modeinfo, hskew);
SAME_FIELD(drm_mode_modeinfo, vdisplay);
SAME_FIELD(drm_mode_modeinfo, vsync_start);
SAME_FIELD(drm_mode_modeinfo, vsync_end);
SAME_FIELD(drm_mode_modeinfo, vtotal);
SAME_FIELD(drm_mode_modeinfo, vscan);
SAME_FIELD(drm_mode_modeinfo, vrefresh);
SAME_FIELD(drm_mode_modeinfo, flags);
SAME_FIELD(drm_mode_modeinfo, type);
SAME_FIELD(drm_mode_modeinfo, name);

SAME_SIZE(drm_mode_card_res);
SAME_FIELD(drm_mode_card_res, fb_id_ptr);
SAME_FIELD(drm_mode_card_res, crtc_id_ptr);
SAME_FIELD(drm_mode_card_res, connector_id_ptr);
SAME_FIELD(drm_mode_card_res, encoder_id_ptr);
SAME_FIELD(drm_mode_card_res, count_fbs);
SAME_FIELD(drm_mode_card_res, count_crtcs);
SAME_FIELD(drm_mode_card_res, count_connectors);
SAME_FIELD(drm_mode_card_res, count_encoders);
SAME_FIELD(drm_mode_card_res, min_width);
SAME_FIELD(drm_mode_card_res, max_width);
SAME_FIELD(drm_mode_card_res, min_height);
SAME_FIELD(drm_mode_card_res, max_height);

SAME_SIZE(drm_mode_get_plane);
SAME_FIELD(drm_mode_get_plane, plane_id);
SAME_FIELD(drm_mode_get_plane, crtc_id);
SAME_FIELD(drm_mode_get_plane, fb_id);
SAME_FIELD(drm_mode_get_plane, possible_crtcs);
SAME_FIELD(drm_mode_get_plane, gamma_size);
SAME_FIELD(drm_mode_get_plane, count_format_types);
SAME_FIELD(drm_mode_get_plane, format_type_ptr);

SAME_SIZE(drm_mode_get_plane_res);
SAME_FIELD(drm_mode_get_plane_res, plane_id_ptr);
SAME_FIELD(drm_mode_get_plane_res, count_planes);

SAME_SIZE(drm_mode_get_encoder);
SAME_FIELD(drm_mode_get_encoder, encoder_id);
SAME_FIELD(drm_mode_get_encoder, encoder_type);
SAME_FIELD(drm_mode_get_encoder, crtc_id);
SAME_FIELD(drm_mode_get_encoder, possible_crtcs);
SAME_FIELD(drm_mode_get_encoder, possible_clones);

SAME_SIZE(drm_mode_get_connector);
SAME_FIELD(drm_mode_get_connector, encoders_ptr);
SAME_FIELD(drm_mode_get_connector, modes_ptr);
SAME_FIELD(drm_mode_get_connector, props_ptr);
SAME_FIELD(drm_mode_get_connector, prop_values_ptr);
SAME_FIELD(drm_mode_get_connector, count_modes);
SAME_FIELD(drm_mode_get_connector, count_props);
SAME_FIELD(drm_mode_get_connector, count_encoders);
SAME_FIELD(drm_mode_get_connector, encoder_id);
SAME_FIELD(drm_mode_get_connector, connector_id);
SAME_FIELD(drm_mode_get_connector, connector_type);
SAME_FIELD(drm_mode_get_connector, connector_type_id);
SAME_FIELD(drm_mode_get_connector, connection);
SAME_FIELD(drm_mode_get_connector, mm_width);
SAME_FIELD(drm_mode_get_connector, mm_height);
SAME_FIELD(drm_mode_get_connector, subpixel);
SAME_FIELD(drm_mode_get_connector, pad);

SAME_SIZE(drm_mode_get_property);
SAME_FIELD(drm_mode_get_property, values_ptr);
SAME_FIELD(drm_mode_get_property, enum_blob_ptr);
SAME_FIELD(drm_mode_get_property, prop_id);
SAME_FIELD(drm_mode_get_property, flags);
SAME_FIELD(drm_mode_get_property, name);
SAME_FIELD(drm_mode_get_property, count_values);
SAME_FIELD(drm_mode_get_property, count_enum_blobs);

SAME_SIZE(drm_mode_obj_get_properties);
SAME_FIELD(drm_mode_obj_get_properties, props_ptr);
SAME_FIELD(drm_mode_obj_get_properties, prop_values_ptr);
SAME_FIELD(drm_mode_obj_get_properties, count_props);
SAME_FIELD(drm_mode_obj_get_properties, obj_id);
SAME_FIELD(drm_mode_obj_get_properties, obj_type);

SAME_SIZE(drm_mode_fb_cmd2);
SAME_FIELD(drm_mode_fb_cmd2, fb_id);
SAME_FIELD(drm_mode_fb_cmd2, width);
SAME_FIELD(drm_mode_fb_cmd2, height);
SAME_FIELD(drm_mode_fb_cmd2, pixel_format);
SAME_FIELD(drm_mode_fb_cmd2, flags);
SAME_FIELD(drm_mode_fb_cmd2, handles);
SAME_FIELD(drm_mode_fb_cmd2, pitches);
SAME_FIELD(drm_mode_fb_cmd2, offsets);
SAME_FIELD(drm_mode_fb_cmd2, modifier);

SAME_SIZE(drm_mode_create_dumb);
SAME_FIELD(drm_mode_create_dumb, height);
SAME_FIELD(drm_mode_create_dumb, width);
SAME_FIELD(drm_mode_create_dumb, bpp);
SAME_FIELD(drm_mode_create_dumb, flags);
SAME_FIELD(drm_mode_create_dumb, handle);
SAME_FIELD(drm_mode_create_dumb, pitch);
SAME_FIELD(drm_mode_create_dumb, size);

SAME_SIZE(drm_mode_destroy_dumb);
SAME_FIELD(drm_mode_destroy_dumb, handle);

SAME_SIZE(drm_mode_atomic);
SAME_FIELD(drm_mode_atomic, flags);
SAME_FIELD(drm_mode_atomic, count_objs);
SAME_FIELD(drm_mode_atomic, objs_ptr);
SAME_FIELD(drm_mode_atomic, count_props_ptr);
SAME_FIELD(drm_mode_atomic, props_ptr);
SAME_FIELD(drm_mode_atomic, prop_values_ptr);
SAME_FIELD(drm_mode_atomic, reserved);
SAME_FIELD(drm_mode_atomic, user_data);

SAME_SIZE(drm_mode_create_blob);
SAME_FIELD(drm_mode_create_blob, data);
SAME_FIELD(drm_mode_create_blob, length);
SAME_FIELD(drm_mode_create_blob, blob_id);

SAME_SIZE(drm_mode_destroy_blob);
SAME_FIELD(drm_mode_destroy_blob, blob_id);

SAME_SIZE(drm_vgem_fence_attach);
SAME_FIELD(drm_vgem_fence_attach, handle);
SAME_FIELD(drm_vgem_fence_attach, flags);
SAME_FIELD(drm_vgem_fence_attach, out_fence);
SAME_FIELD(drm_vgem_fence_attach, pad);

SAME_SIZE(drm_vgem_fence_signal);
SAME_FIELD(drm_vgem_fence_signal, fence);
SAME_FIELD(drm_vgem_fence_signal, flags);

SAME_VALUE(CLIENT_CAP_UNIVERSAL_PLANES, DRM_CLIENT_CAP_UNIVERSAL_PLANES);
SAME_VALUE(CLIENT_CAP_ATOMIC, DRM_CLIENT_CAP_ATOMIC);
SAME_VALUE(CLOEXEC, DRM_CLOEXEC);
SAME_VALUE(RDWR, DRM_RDWR);
SAME_VALUE(DISPLAY_MODE_LEN, DRM_DISPLAY_MODE_LEN);
SAME_VALUE(PROP_NAME_LEN, DRM_PROP_NAME_LEN);
SAME_VALUE(MODE_OBJECT_CRTC, DRM_MODE_OBJECT_CRTC);
SAME_VALUE(MODE_OBJECT_CONNECTOR, DRM_MODE_OBJECT_CONNECTOR);
SAME_VALUE(MODE_OBJECT_PLANE, DRM_MODE_OBJECT_PLANE);
SAME_VALUE(MODE_PAGE_FLIP_EVENT, DRM_MODE_PAGE_FLIP_EVENT);
SAME_VALUE(MODE_ATOMIC_TEST_ONLY, DRM_MODE_ATOMIC_TEST_ONLY);
SAME_VALUE(MODE_ATOMIC_NONBLOCK, DRM_MODE_ATOMIC_NONBLOCK);
SAME_VALUE(MODE_ATOMIC_ALLOW_MODESET, DRM_MODE_ATOMIC_ALLOW_MODESET);
SAME_VALUE(FORMAT_XRGB8888, DRM_FORMAT_XRGB8888);
SAME_VALUE(VGEM_FENCE_FLAG_WRITE, VGEM_FENCE_WRITE);
SAME_VALUE(IOCTL_BASE, DRM_IOCTL_BASE);
SAME_VALUE(COMMAND_BASE, DRM_COMMAND_BASE);

SAME_VALUE(IOCTL_VERSION, DRM_IOCTL_VERSION);
SAME_VALUE(IOCTL_GEM_CLOSE, DRM_IOCTL_GEM_CLOSE);
SAME_VALUE(IOCTL_SET_CLIENT_CAP, DRM_IOCTL_SET_CLIENT_CAP);
SAME_VALUE(IOCTL_PRIME_HANDLE_TO_FD, DRM_IOCTL_PRIME_HANDLE_TO_FD);
SAME_VALUE(IOCTL_PRIME_FD_TO_HANDLE, DRM_IOCTL_PRIME_FD_TO_HANDLE);
SAME_VALUE(IOCTL_MODE_GETRESOURCES, DRM_IOCTL_MODE_GETRESOURCES);
SAME_VALUE(IOCTL_MODE_GETENCODER, DRM_IOCTL_MODE_GETENCODER);
SAME_VALUE(IOCTL_MODE_GETCONNECTOR, DRM_IOCTL_MODE_GETCONNECTOR);
SAME_VALUE(IOCTL_MODE_GETPROPERTY, DRM_IOCTL_MODE_GETPROPERTY);
SAME_VALUE(IOCTL_MODE_RMFB, DRM_IOCTL_MODE_RMFB);
SAME_VALUE(IOCTL_MODE_CREATE_DUMB, DRM_IOCTL_MODE_CREATE_DUMB);
SAME_VALUE(IOCTL_MODE_DESTROY_DUMB, DRM_IOCTL_MODE_DESTROY_DUMB);
SAME_VALUE(IOCTL_MODE_GETPLANERESOURCES, DRM_IOCTL_MODE_GETPLANERESOURCES);
SAME_VALUE(IOCTL_MODE_GETPLANE, DRM_IOCTL_MODE_GETPLANE);
SAME_VALUE(IOCTL_MODE_ADDFB2, DRM_IOCTL_MODE_ADDFB2);
SAME_VALUE(IOCTL_MODE_OBJ_GETPROPERTIES, DRM_IOCTL_MODE_OBJ_GETPROPERTIES);
SAME_VALUE(IOCTL_MODE_ATOMIC, DRM_IOCTL_MODE_ATOMIC);
SAME_VALUE(IOCTL_MODE_CREATEPROPBLOB, DRM_IOCTL_MODE_CREATEPROPBLOB);
SAME_VALUE(IOCTL_MODE_DESTROYPROPBLOB, DRM_IOCTL_MODE_DESTROYPROPBLOB);
SAME_VALUE(IOCTL_VGEM_FENCE_ATTACH, DRM_IOCTL_VGEM_FENCE_ATTACH);
SAME_VALUE(IOCTL_VGEM_FENCE_SIGNAL, DRM_IOCTL_VGEM_FENCE_SIGNAL);
