#!/usr/bin/env bash
# Removes what deploy/install.sh installed. Keeps /etc/scram (the configuration) and
# /var/lib/scram unless --purge is given. Run as root.
set -euo pipefail

purge=no
for arg in "$@"; do
  case "$arg" in
    --purge) purge=yes ;;
    -h|--help) sed -n '2,3p' "$0"; exit 0 ;;
    *) echo "uninstall.sh: unknown argument $arg" >&2; exit 64 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: run as root" >&2
  exit 77
fi

if [ -d /run/systemd/system ]; then
  systemctl disable --now scramd.service 2>/dev/null || true
fi
rm -f /usr/sbin/scramd /usr/lib/systemd/system/scramd.service /usr/lib/sysusers.d/scram.conf \
  /usr/lib/systemd/catalog/scram.catalog /usr/lib/tmpfiles.d/scram.conf
rm -rf /usr/lib/scram /usr/share/doc/scram
journalctl --update-catalog || true
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
if [ "$purge" = yes ]; then
  rm -rf /etc/scram /var/lib/scram /var/lib/private/scram /var/log/scram /var/log/private/scram
  echo "scramd removed with its configuration and state"
else
  echo "scramd removed; kept /etc/scram (remove with --purge)"
fi
# The scram user stays, as with every sysusers.d user: files it owned may remain.
