#!/bin/sh
# Prints the directory that holds the DRM UAPI headers (drm.h, vgem_drm.h) for the addon's vgem shim, or
# nothing. vgem is only needed by tests; without the headers the addon builds with vgem calls throwing ENOSYS.
# The headers of the compiler that builds the addon come first: a cross compiler ($CXX, e.g.
# aarch64-linux-gnu-g++) has its own in /usr/<triple>/include/drm. The kernel's include/uapi/drm copy fetched
# with the test VM's kernel is arch-neutral (drm.h takes <asm/ioctl.h> from the compiler), so it is the last
# resort for any target.
triple=$(${CXX:-c++} -dumpmachine 2>/dev/null || true)
for d in ${triple:+"/usr/$triple/include/drm"} /usr/include/drm ${triple:+"/usr/include/$triple/drm"} \
  "${DMABUF_SYNC_CACHE:-$HOME/.cache/dmabuf-sync}/uapi/drm"; do
  if [ -f "$d/vgem_drm.h" ] && [ -f "$d/drm.h" ]; then echo "$d"; exit 0; fi
done
