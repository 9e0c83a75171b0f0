#!/usr/bin/env bash
# Boots the cached Debian 12 image (tests/vm/image.sh) once under qemu with the directory IN as
# its input disk (IN/check.sh runs there, see image.sh) and prints the serial console: the
# checks' output. The image itself never changes (a throw-away overlay takes the writes); the
# guest has no network device. Full emulation (no usable KVM here): about 40 s to boot.
#
#   tests/vm/boot.sh IN [TIMEOUT_SECONDS]
set -euo pipefail
in="$1"
timeout="${2:-900}"
image="$("$(dirname "$0")/image.sh")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkfs.ext4 -q -F -L scram-in -d "$in" "$work/in.img" 512M >&2
qemu-img create -q -f qcow2 -b "$image/root.img" -F raw "$work/root.qcow2"
# KVM is used when it works; these machines' nested KVM does not, so emulation is the default.
accel="${SCRAM_VM_ACCEL:-tcg}"
timeout --foreground -s KILL "$timeout" qemu-system-x86_64 -machine q35,accel="$accel" -cpu max \
  -m 2048 -smp 2 -no-reboot -display none -monitor none -nic none \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 panic=-1" \
  -drive file="$work/root.qcow2",if=virtio,format=qcow2 \
  -drive file="$work/in.img",if=virtio,format=raw,readonly=on \
  -serial file:"$work/serial.log" || echo "boot.sh: qemu ended with $?" >&2
cat "$work/serial.log"
