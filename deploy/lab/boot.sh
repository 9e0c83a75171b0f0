#!/bin/sh
# Boots systemd as PID 1 of fresh namespaces, on an overlay of the host's / whose writable layer
# is a tmpfs: whatever the lab writes vanishes with it, and the host's /, /tmp, /run and journal
# are never touched.
#
# Run by tests/lab/mod.rs (the test harness around it) as:
#   unshare --cgroup --pid --fork --mount --uts --ipc --net deploy/lab/boot.sh NAME
# after moving itself into a cgroup of its own, so the lab's cgroup namespace starts there.
set -eu
name="$1"

# Refuse to run anywhere but in the fresh namespaces: on the host this would remount / and
# pivot the host's root. /proc is still the host's here, so /proc/1 is the host's init.
if [ "$$" -ne 1 ] || [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]; then
  echo "boot.sh: run only as PID 1 of new pid and mount namespaces (see the header)" >&2
  exit 1
fi

mount --make-rprivate /
# A scratch tmpfs for the overlay's writable layer and work directory.
mount -t tmpfs -o mode=0755 scram-lab /mnt
mkdir /mnt/upper /mnt/work /mnt/root
mount -t overlay scram-lab -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work /mnt/root
r=/mnt/root
# API file systems, fresh for the new namespaces (sysfs shows the lab's network namespace; cgroup2
# is rooted at the lab's cgroup).
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/tmp"
# Other file systems the tests need, read-only (the source tree and the built binaries).
for extra in ${SCRAM_LAB_BINDS:-}; do
  mkdir -p "$r$extra"
  mount --rbind -o ro "$extra" "$r$extra"
done
# A container image's /usr/sbin/policy-rc.d (Docker's exits 101) forbids maintainer scripts to
# start or restart services. A booted server has none, and the lab is one: removed from the
# overlay (the host's file stays).
rm -f "$r/usr/sbin/policy-rc.d"
echo "$name" > "$r/etc/hostname"
hostname "$name"

cd "$r"
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot
exec env container=scram-lab /lib/systemd/systemd --system --unit=multi-user.target
