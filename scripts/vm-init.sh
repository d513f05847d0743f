#!/bin/busybox sh
# /init of the test VM's initramfs (see scripts/vm.sh): load modules, mount the host root read-only,
# run the command in a chroot (of the host root, or of an arm user space from it), report its status on the
# "status" port, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod "$m" || echo "insmod $m failed"; done
port() { for p in /sys/class/virtio-ports/*; do [ "$(cat "$p/name")" = "$1" ] && echo "/dev/${p##*/}"; done; }
OUT=$(port out); STATUS=$(port status)
RUN=$(sed -n 's/.*dmabufvm\.run=\([^ ]*\).*/\1/p' /proc/cmdline)
H=/host
# dmabufvm.cache=loose (every machine but x64 6.12): the guest caches what it reads of the host root. Emulated
# arm and the 5.10 9p client read jest's thousands of files many times slower; a run does not outlive a host change.
CACHEOPT=$(sed -n 's/.*dmabufvm\.cache=\([^ ]*\).*/\1/p' /proc/cmdline)
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000${CACHEOPT:+,cache=$CACHEOPT} hostroot $H || { dmesg | tail -20; cat /proc/filesystems | grep 9p; lsmod; echo 125 > "$STATUS"; poweroff -f; }
cp "$H$RUN/cmd.sh" /cmd.sh
CWD=$(cat "$H$RUN/cwd")
USERLAND=$(cat "$H$RUN/userland" 2>/dev/null)
SNAPS=$(cat "$H$RUN/snapdir" 2>/dev/null)  # an emulated display's snapshot directory (read before /tmp is the VM's)
# T: the root the command runs in. x64: the host root itself. arm: a tmpfs holding the arm user space's
# top directories (bound read-only from the host), busybox's applets in a tmpfs /usr/bin, and the host
# directories the command needs at their own paths (/work, the current directory's top).
T=$H
if [ -n "$USERLAND" ]; then
  T=/newroot
  # The user space comes as its own read-only export, cached in the guest (cache=loose): node's 84 MB of
  # text are read once, not page by page on every fault as through the uncached host root.
  U=/userland
  mkdir -p $U && mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose userland $U \
    || { echo "the userland 9p mount failed"; echo 125 > "$STATUS"; poweroff -f; }
  mkdir -p $T && mount -t tmpfs -o mode=755 root $T
  for e in "$U"/*; do
    n=${e##*/}
    if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$T/$n"
    elif [ -d "$e" ]; then mkdir "$T/$n" && mount --bind "$e" "$T/$n"
    else cp "$e" "$T/$n"; fi
  done
  mount -t tmpfs -o mode=755 bin $T/usr/bin && cp $T/busybox $T/usr/bin/busybox
  chroot $T /usr/bin/busybox --install -s /usr/bin
  mkdir -p $T/proc $T/sys $T/dev $T/tmp $T/run
  for b in $(cat "$H$RUN/binds"); do mkdir -p "$T$b" && mount --bind "$H$b" "$T$b"; done
fi
# The VM gets a private tmpfs /tmp; a project that lives under the host's /tmp is bound back into it.
mkdir -p /hosttmp && mount --bind $H/tmp /hosttmp
mount -t proc proc $T/proc
mount -t sysfs sys $T/sys
mount -t devtmpfs dev $T/dev
mount -t tmpfs -o mode=1777 tmp $T/tmp
case "$CWD" in /tmp/?*) mkdir -p "$T$CWD" && mount --bind "/hosttmp${CWD#/tmp}" "$T$CWD" ;; esac
# An emulated display's snapshot directory (scripts/vm-display.sh), read-write, at its host path.
if [ -n "$SNAPS" ]; then mkdir -p "$T$SNAPS" 2>/dev/null; mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 snaps "$T$SNAPS"; fi
mkdir -p $T/dev/shm $T/dev/pts
mount -t tmpfs -o mode=1777 shm $T/dev/shm 2>/dev/null
mount -t devpts pts $T/dev/pts 2>/dev/null
mount -t tmpfs run $T/run 2>/dev/null
cp /cmd.sh $T/tmp/.dmabufvm-cmd.sh
# "R" on the status port tells the host the VM booted and the command started (a boot failure is retried).
echo R > "$STATUS"
chroot $T /bin/sh /tmp/.dmabufvm-cmd.sh > "$OUT" 2>&1 < /dev/null
rc=$?
# A command killed by a signal (the OOM killer's SIGKILL, a crash): say what the kernel saw.
if [ "$rc" -ge 128 ]; then
  { echo "--- the VM's kernel log (the command exited $rc) ---"; dmesg | grep -E -A3 'Out of memory|oom-kill|Killed process|segfault|BUG:|WARNING:' | tail -40
    grep -E 'MemTotal|MemAvailable|Shmem:' /proc/meminfo; } > "$OUT" 2>&1
fi
echo "$rc" > "$STATUS"
sync
poweroff -f
