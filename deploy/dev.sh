#!/usr/bin/env bash
# Set-up and entry points for a fresh Debian 12 machine (run as root).
#
#   deploy/dev.sh run [scramd run args...]   build, then run scramd in the foreground
#   deploy/dev.sh test                       install test dependencies, run the whole test suite
#   deploy/dev.sh deb [VERSION]              build target/debian/scram_VERSION_amd64.deb and run
#                                            lintian on it (VERSION: Cargo.toml's by default)
#   deploy/dev.sh deps                       only install the Debian packages
set -euo pipefail
cd "$(dirname "$0")/.."

# What the build and the tests need from Debian: ip/netns/veth (iproute2), setpriv (util-linux),
# capsh (libcap2-bin), systemd (the lab boots it as PID 1; systemd-analyze, sysusers), nft, ping and
# python3 (the response tests look at the table and probe it), trafgen (netsniff-ng) and tcpdump
# for benchmarks, fastnetmon (a benchmark peer) and python3-matplotlib (the scaling plot),
# arp-scan (a live host-discovery test runs the real tool), debootstrap, qemu and e2fsprogs (the
# stock Debian 12 guest of tests/vm.rs), lintian (checks the Debian package),
# systemd-journal-remote, crowdsec and crowdsec-firewall-bouncer (the fleet tests' collector,
# uploaders, CrowdSec local API, agent and bouncer, all run in systemd labs).
PACKAGES=(iproute2 util-linux libcap2-bin procps systemd nftables iputils-ping python3 tcpdump netsniff-ng fastnetmon python3-matplotlib valgrind arp-scan nmap thc-ipv6 debootstrap qemu-system-x86 qemu-utils e2fsprogs lintian systemd-journal-remote crowdsec crowdsec-firewall-bouncer)

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "dev.sh: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
      exit 1
    fi
    apt-get update -qq
    # fastnetmon, the journal uploader and collector and CrowdSec are only run by tests, in
    # namespaces: their packages must not start their services on this machine while installing.
    # CrowdSec's postinst registers with its central API unless this file exists: it stays
    # offline.
    if [ ! -e /etc/crowdsec/online_api_credentials.yaml ]; then
      mkdir -p /etc/crowdsec
      echo '# no thanks' > /etc/crowdsec/online_api_credentials.yaml
    fi
    local policy=/usr/sbin/policy-rc.d
    local had_policy=0
    [ -e "$policy" ] && had_policy=1
    if [ $had_policy -eq 0 ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy"
      chmod +x "$policy"
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    [ $had_policy -eq 1 ] || rm -f "$policy"
    [ $rc -eq 0 ] || exit $rc
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now fastnetmon.service >/dev/null 2>&1 || true
    fi
    # Nor at boot, here or in the labs booted on an overlay of this machine's / (a test starts
    # what it needs). systemctl edits the links without a running systemd.
    for unit in fastnetmon crowdsec crowdsec-firewall-bouncer; do
      systemctl disable "$unit.service" >/dev/null 2>&1 || true
    done
  fi
  # The unprivileged user scramd switches to when started as root (as the package creates it).
  if ! getent passwd scram >/dev/null && [ "$(id -u)" -eq 0 ]; then
    systemd-sysusers "$PWD/packaging/scram.sysusers"
  fi
  if ! command -v cargo >/dev/null; then
    echo "dev.sh: cargo not found: install a stable Rust toolchain (rustup) first" >&2
    exit 1
  fi
}

case "${1:-}" in
  run)
    shift
    deps
    cargo build --release --locked
    exec target/release/scramd run "$@"
    ;;
  test)
    shift
    deps
    # Privileged tests (namespaces, veth, AF_PACKET) need root; under CI=true they fail
    # rather than skip without it.
    cargo test --locked --all-targets "$@"
    ;;
  fuzz)
    # deploy/dev.sh fuzz [SECONDS]: run each fuzz target for SECONDS (default 60).
    secs="${2:-60}"
    deps
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    corpus="$(mktemp -d)"
    trap 'rm -rf "$corpus"' EXIT
    mkdir -p "$corpus/frames" "$corpus/ring_block" "$corpus/capfile" "$corpus/channel"
    cp fuzz/seeds/frames/* "$corpus/frames/"
    cp fuzz/seeds/capfile/* tests/data/community-id/pcaps/*.pcap "$corpus/capfile/"
    cp fuzz/seeds/channel/* "$corpus/channel/"
    for target in frames ring_block capfile channel; do
      if ! cargo +nightly fuzz run "$target" "$corpus/$target" -- -max_total_time="$secs" >"$corpus/$target.log" 2>&1; then
        tail -n 60 "$corpus/$target.log" >&2
        echo "fuzz target $target failed (artifact under fuzz/artifacts/$target)" >&2
        exit 1
      fi
      echo "fuzz $target: $(grep -E '^Done' "$corpus/$target.log" | tail -n 1)"
    done
    ;;
  deb)
    # The package, from the files deploy/install.sh installs (see [package.metadata.deb] in
    # Cargo.toml); cargo-deb is pinned so every machine builds the same control files.
    deps
    if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb 3.8.0" ]; then
      cargo install --locked cargo-deb --version 3.8.0
    fi
    cargo build --release --locked --bin scramd
    cargo run --quiet --locked --example man -- target/man
    gzip -9nf target/man/scramd.8 target/man/scram.toml.5
    gzip -9nc CHANGELOG.md > target/man/changelog.gz
    version="${2:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)-1}"
    # cargo-deb empties its output directory: each package moves to target/packages.
    built="$(cargo deb --no-build --locked --strip --deb-version "$version" | tail -n 1)"
    mkdir -p target/packages
    deb="target/packages/scram_${version}_amd64.deb"
    # cargo-deb writes no md5sums; dpkg --verify and debsums need them: unpack, add, repack.
    tree="$(mktemp -d)"
    dpkg-deb -R "$built" "$tree/pkg"
    (cd "$tree/pkg" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort \
      | xargs -d '\n' md5sum > DEBIAN/md5sums)
    chmod 0644 "$tree/pkg/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz --build "$tree/pkg" "$deb" >/dev/null
    rm -rf "$tree" "$built"
    lintian --fail-on error --suppress-tags-from-file packaging/debian/lintian-explained "$deb"
    echo "$deb"
    ;;
  deps)
    deps
    ;;
  *)
    echo "usage: deploy/dev.sh run [ARGS...] | test [ARGS...] | fuzz [SECONDS] | deb [VERSION] | deps" >&2
    exit 64
    ;;
esac
