#!/bin/busybox sh
# /init of the test VM's initramfs (see scripts/vm.sh): load modules, mount the host root read-only,
# run the command in a chroot of it, report its status on the "status" port, power off.
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
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot $H || { dmesg | tail -20; cat /proc/filesystems | grep 9p; lsmod; echo 125 > "$STATUS"; poweroff -f; }
cp "$H$RUN/cmd.sh" /cmd.sh
CWD=$(cat "$H$RUN/cwd")
# The VM gets a private tmpfs /tmp; a project that lives under the host's /tmp is bound back into it.
mkdir -p /hosttmp && mount --bind $H/tmp /hosttmp
mount -t proc proc $H/proc
mount -t sysfs sys $H/sys
mount -t devtmpfs dev $H/dev
mount -t tmpfs -o mode=1777 tmp $H/tmp
case "$CWD" in /tmp/?*) mkdir -p "$H$CWD" && mount --bind "/hosttmp${CWD#/tmp}" "$H$CWD" ;; esac
mount -t tmpfs -o mode=1777 shm $H/dev/shm 2>/dev/null
mount -t devpts pts $H/dev/pts 2>/dev/null
mount -t tmpfs run $H/run 2>/dev/null
cp /cmd.sh $H/tmp/.dmabufvm-cmd.sh
# "R" on the status port tells the host the VM booted and the command started (a boot failure is retried).
echo R > "$STATUS"
chroot $H /bin/sh /tmp/.dmabufvm-cmd.sh > "$OUT" 2>&1 < /dev/null
echo "$?" > "$STATUS"
sync
poweroff -f
