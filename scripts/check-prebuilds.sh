#!/usr/bin/env bash
# prepack: the package must carry the three prebuilds (npm run prebuild), each an ELF shared object for its
# architecture, so that boards install without a compiler. Fails naming what is missing or wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
for want in "x64 62" "arm64 183" "arm 40"; do
  arch=${want% *}; machine=${want#* }
  f=$(ls prebuilds/linux-"$arch"/*.node 2>/dev/null | head -1 || true)
  if [ -z "$f" ]; then echo "prepack: prebuilds/linux-$arch/*.node is missing" >&2; bad=1; continue; fi
  # ELF e_machine (bytes 18-19, little-endian): 62 x86-64, 183 AArch64, 40 ARM.
  got=$(od -An -tu2 -j18 -N2 "$f" | tr -d ' ')
  if [ "$(head -c4 "$f" | od -An -c | tr -d ' ')" != '177ELF' ] || [ "$got" != "$machine" ]; then
    echo "prepack: $f is not a linux-$arch ELF object (e_machine $got, want $machine)" >&2; bad=1
  fi
done
if [ "$bad" -ne 0 ]; then echo "prepack: run 'npm run prebuild' first (it builds all three)" >&2; exit 1; fi
echo "prepack: prebuilds for linux-x64, linux-arm64, linux-arm present" >&2
