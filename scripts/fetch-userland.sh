#!/usr/bin/env bash
# Assembles the user space an arm test VM runs the command in (DMABUF_VM_ARCH=arm64 or arm) and prints its
# directory, <cache>/userland-<arch>/: Debian's busybox-static, libc6, libstdc++6, libgcc-s1, libatomic1 for
# that architecture (apt, from this machine's mirror), Node.js from the node-linux-<arch> npm package, and
# the per-platform resolver binding jest needs (@unrs/resolver-binding-*, the lockfile's version) under
# usr/lib/node_modules (the VM sets NODE_PATH to it). Busybox's applet links are made in the VM (vm-init.sh).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/vm-config.sh"
case "$VM_ARCH" in
  arm64) binding=@unrs/resolver-binding-linux-arm64-gnu ;;
  arm) binding=@unrs/resolver-binding-linux-arm-gnueabihf ;;
  *) echo "fetch-userland: only for DMABUF_VM_ARCH=arm64 or arm" >&2; exit 2 ;;
esac
ROOT="$CACHE/userland-$VM_ARCH"
# The lockfile pins the binding's version; a new one (or a new recipe) assembles again.
bver=$(node -p "(require('$HERE/../package-lock.json').packages['node_modules/$binding'] || {}).version || ''")
nodedir=$(bash "$HERE/fetch-node.sh" "$VM_ARCH" | sed -n 's/^dir=//p')
stamp="$(sha256sum "$0" | cut -c1-12) $bver $nodedir"
if [ -f "$ROOT/ready" ] && [ "$(cat "$ROOT/ready")" = "$stamp" ]; then echo "$ROOT"; exit 0; fi

# Trixie first; bookworm (glibc 2.36, what the prebuilds need) when the mirror's trixie index for this
# architecture does not download (it happens: "File has unexpected size").
for suite in trixie bookworm; do
  private_apt "$suite" "$UARCH" && break
  echo "fetch-userland: the $suite $UARCH package index did not download; trying the next suite" >&2
  [ "$suite" = bookworm ] && exit 1
done
DEBS="$CACHE/debs-$UARCH"
rm -rf "$DEBS" && mkdir -p "$DEBS"
(cd "$DEBS" && quiet apt-get "${APTOPTS[@]}" download busybox-static libc6 libstdc++6 libgcc-s1 libatomic1)
rm -rf "$ROOT" && mkdir -p "$ROOT"
for d in "$DEBS"/*.deb; do dpkg-deb -x "$d" "$ROOT"; done
rm -rf "$DEBS" "$ROOT/usr/share/doc" "$ROOT/usr/share/man" "$ROOT/usr/share/locale"
# busybox is copied by the VM into a tmpfs /usr/bin with its applet links; /bin and /sbin lead there.
mv "$ROOT/usr/bin/busybox" "$ROOT/busybox" 2>/dev/null || mv "$ROOT/bin/busybox" "$ROOT/busybox"
for l in bin sbin; do rmdir "$ROOT/$l" 2>/dev/null || true; done
# Trixie's packages are /usr-merged: the loader's path (/lib/ld-linux-*.so.*) goes through these links.
for l in lib bin sbin; do [ -e "$ROOT/$l" ] || ln -s "usr/$l" "$ROOT/$l"; done
mkdir -p "$ROOT/usr/bin" "$ROOT/usr/sbin" "$ROOT/usr/local/bin" "$ROOT/etc"
# node: a hard link to the cached binary when the cache is one file system (it is ~100 MB).
ln "$nodedir/bin/node" "$ROOT/usr/local/bin/node" 2>/dev/null || cp "$nodedir/bin/node" "$ROOT/usr/local/bin/node"
echo "root:x:0:0:root:/tmp:/bin/sh" > "$ROOT/etc/passwd"
echo "root:x:0:" > "$ROOT/etc/group"
if [ -n "$bver" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$binding@$bver" >/dev/null 2>&1) || { echo "fetch-userland: npm pack $binding@$bver failed" >&2; exit 1; }
  mkdir -p "$ROOT/usr/lib/node_modules/$binding"
  tar xzf "$tmp"/*.tgz -C "$ROOT/usr/lib/node_modules/$binding" --strip-components=1
  rm -rf "$tmp"
fi
echo "$stamp" > "$ROOT/ready"
echo "$ROOT"
