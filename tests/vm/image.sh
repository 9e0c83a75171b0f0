#!/usr/bin/env bash
# Builds, once, a stock Debian 12 disk image for the VM test and prints its directory: a raw ext4
# root file system (`root.img`) with Debian's own kernel and systemd, and that kernel and initrd
# beside it for qemu's -kernel/-initrd. Cached under $SCRAM_VM_CACHE (default
# /var/cache/scram-vm), keyed by the package list; about 2 minutes the first time.
#
# The guest mounts a second disk labelled scram-in at /mnt/in and, once multi-user.target is
# reached, runs /mnt/in/check.sh with its output on the serial console, then powers off.
set -euo pipefail
cache="${SCRAM_VM_CACHE:-/var/cache/scram-vm}"
mirror="${SCRAM_VM_MIRROR:-http://deb.debian.org/debian}"
packages="systemd systemd-sysv dbus udev kmod linux-image-amd64 initramfs-tools iproute2 nftables
nmap procps util-linux libcap2-bin ca-certificates iputils-ping"
key="$(printf 'v1 %s %s' "$mirror" "$packages" | sha256sum | cut -c1-12)"
dir="$cache/debian12-$key"
if [ -f "$dir/root.img" ] && [ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.img" ]; then
  echo "$dir"
  exit 0
fi
for tool in debootstrap mkfs.ext4; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool is missing" >&2; exit 69; }
done
mkdir -p "$cache"
work="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
# No service may start inside the chroot while packages install.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
# shellcheck disable=SC2086
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  $packages >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; exit 1; }
rm -f "$root/usr/sbin/policy-rc.d"
chroot "$root" apt-get clean

echo scram-vm > "$root/etc/hostname"
cat > "$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 rw,errors=remount-ro 0 1
LABEL=scram-in /mnt/in ext4 ro,nofail 0 0
FSTAB
mkdir -p "$root/mnt/in"
cat > "$root/etc/systemd/system/scram-vm-check.service" <<'UNIT'
[Unit]
Description=Run the scram VM test's checks from the input disk, then power off
After=multi-user.target
ConditionPathExists=/mnt/in/check.sh

[Service]
Type=oneshot
ExecStart=/bin/bash /mnt/in/check.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
ExecStopPost=/usr/bin/systemctl poweroff --no-block

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/scram-vm-check.service \
  "$root/etc/systemd/system/multi-user.target.wants/scram-vm-check.service"
# No login prompts on the console the checks write to.
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"

cp -L "$root/vmlinuz" "$work/vmlinuz"
cp -L "$root/initrd.img" "$work/initrd.img"
mkfs.ext4 -q -F -L root -d "$root" "$work/root.img" 3G >&2
rm -rf "$root"
mkdir -p "$dir"
mv "$work/vmlinuz" "$work/initrd.img" "$work/root.img" "$dir/"
echo "$dir"
