#!/usr/bin/env bash
# Installs scram: the binary, the systemd unit, the sysusers entry, the journal message catalog
# and an example configuration (kept if one exists); then, where systemd runs, reloads it and
# enables and starts scramd. Run as root from a checkout:
#
#   deploy/install.sh            # builds target/release/scramd first when it is missing or stale
#   SCRAMD_BIN=path deploy/install.sh   # installs that binary instead of building
#   deploy/install.sh --no-start # install only
#
# Undo with deploy/uninstall.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

start=yes
for arg in "$@"; do
  case "$arg" in
    --no-start) start=no ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $arg" >&2; exit 64 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root" >&2
  exit 77
fi

bin="${SCRAMD_BIN:-}"
if [ -z "$bin" ]; then
  bin=target/release/scramd
  if [ ! -x "$bin" ] || [ -n "$(find src Cargo.toml Cargo.lock -newer "$bin" -print -quit)" ]; then
    cargo build --release --locked
  fi
fi

# The binary and the unit's empty root directory (the unit binds /usr, the config and the journal's
# directory into it; the links make the ELF interpreter's /lib64 path resolve inside it).
install -D -m 0755 "$bin" /usr/sbin/scramd
root=/usr/lib/scram/root
install -d -m 0755 "$root" "$root/usr" "$root/etc" "$root/etc/scram" "$root/run" \
  "$root/run/systemd" "$root/run/systemd/journal" "$root/proc" "$root/dev" "$root/tmp" \
  "$root/var" "$root/var/lib" "$root/var/log"
for l in bin sbin lib lib64; do
  if [ -e "/$l" ] && [ ! -L "$root/$l" ]; then ln -s "usr/$l" "$root/$l"; fi
done

install -D -m 0644 packaging/scramd.service /usr/lib/systemd/system/scramd.service
install -D -m 0644 packaging/scram.sysusers /usr/lib/sysusers.d/scram.conf
install -D -m 0644 packaging/scram.catalog /usr/lib/systemd/catalog/scram.catalog
install -D -m 0644 README.md /usr/share/doc/scram/README.md
install -d -m 0755 /etc/scram
if [ ! -e /etc/scram/scram.toml ]; then
  install -m 0644 packaging/scram.toml /etc/scram/scram.toml
fi
# An existing configuration must still be valid for this version.
/usr/sbin/scramd check-config /etc/scram/scram.toml >/dev/null

systemd-sysusers /usr/lib/sysusers.d/scram.conf
journalctl --update-catalog || true

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$start" = yes ]; then
    systemctl enable scramd.service
    # restart, not start: an upgrade must run the new binary.
    systemctl restart scramd.service
  else
    systemctl enable scramd.service
  fi
  echo "scramd installed; follow its alerts with: journalctl -u scramd -f"
else
  echo "scramd installed; systemd is not running here, start it with: scramd run"
fi
