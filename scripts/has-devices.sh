#!/bin/sh
# Exits 0 when this host has the real devices the tests, demo and bench use: /dev/udmabuf and a vgem DRM card
# (and, with --heap, /dev/dma_heap/system). Otherwise those scripts run in the test VM (scripts/vm.sh).
[ -e /dev/udmabuf ] || exit 1
if [ "${1:-}" = --heap ]; then [ -e /dev/dma_heap/system ] || exit 1; fi
# vgem's device is a bare platform device named "vgem" (it has no driver link to look at).
for d in /sys/class/drm/card*/device; do
  [ "$(basename "$(readlink -f "$d")" 2>/dev/null)" = vgem ] && exit 0
done
exit 1
