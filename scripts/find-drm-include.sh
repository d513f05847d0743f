#!/bin/sh
# Prints the directory that holds the DRM UAPI headers (drm.h, vgem_drm.h) for the addon's vgem shim, or
# nothing. vgem is only needed by tests; without the headers the addon builds with vgem calls throwing ENOSYS.
for d in /usr/include/drm "${DMABUF_SYNC_CACHE:-$HOME/.cache/dmabuf-sync}/uapi/drm"; do
  if [ -f "$d/vgem_drm.h" ] && [ -f "$d/drm.h" ]; then echo "$d"; exit 0; fi
done
