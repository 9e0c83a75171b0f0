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

# The binary and the unit's empty root directory.
install -D -m 0755 "$bin" /usr/sbin/scramd
install -D -m 0755 packaging/make-root /usr/lib/scram/make-root
/usr/lib/scram/make-root

install -D -m 0644 packaging/scramd.service /usr/lib/systemd/system/scramd.service
install -D -m 0644 packaging/scram.sysusers /usr/lib/sysusers.d/scram.conf
install -D -m 0644 packaging/scram.tmpfiles /usr/lib/tmpfiles.d/scram.conf
install -D -m 0644 packaging/scram.catalog /usr/lib/systemd/catalog/scram.catalog
install -D -m 0644 README.md /usr/share/doc/scram/README.md
install -d -m 0755 /etc/scram
if [ ! -e /etc/scram/scram.toml ]; then
  install -m 0644 packaging/scram.toml /etc/scram/scram.toml
fi
# An existing configuration must still be valid for this version.
/usr/sbin/scramd check-config /etc/scram/scram.toml >/dev/null

systemd-sysusers /usr/lib/sysusers.d/scram.conf
# An install.sh of old made /var/log/scram a link into /var/log/private (LogsDirectory=): the
# alert files move to the directory tmpfiles makes now.
if [ -L /var/log/scram ]; then
  rm /var/log/scram
  install -d /var/log/scram
  if [ -d /var/log/private/scram ]; then
    mv /var/log/private/scram/* /var/log/scram/ 2>/dev/null || true
    rmdir /var/log/private/scram 2>/dev/null || true
  fi
fi
systemd-tmpfiles --create /usr/lib/tmpfiles.d/scram.conf
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
