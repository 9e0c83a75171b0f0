#!/bin/bash
# Runs inside the stock Debian 12 guest (tests/vm/boot.sh, from the input disk at /mnt/in):
# installs scram as a user would, from its Debian package, and prints what tests/vm.rs checks, one
# "SCRAM-VM key value" line each. Traffic stays inside the guest: a veth pair into a namespace.
set -u
say() { echo "SCRAM-VM $*"; }
in=/mnt/in
say kernel "$(uname -r)"
say systemd "$(systemctl --version | head -n 1)"

# What scramd watches: vh (10.99.0.1); the attacker: a namespace behind it (10.99.0.2).
ip netns add attacker
ip link add vh type veth peer name va netns attacker
ip addr add 10.99.0.1/24 dev vh
ip link set vh up
ip -n attacker addr add 10.99.0.2/24 dev va
ip -n attacker link set va up
ip -n attacker link set lo up
if dpkg -i "$in/scram.deb" > /root/install.log 2>&1; then
  say install ok
else
  say install failed
  sed 's/^/SCRAM-VM install-log /' /root/install.log | tail -n 20
fi
say package "$(dpkg-query -W -f '${Version} ${Status}' scram)"
say enabled "$(systemctl is-enabled scramd)"
# The guest has no default route, so the service the package started has nothing to watch yet:
# configure it as an operator would, then restart.
printf '[capture]\ninterfaces = ["vh"]\n\n[response]\naction = "nftables"\nban_seconds = 60\n' \
  > /etc/scram/scram.toml
systemctl restart scramd
for _ in $(seq 20); do
  [ "$(systemctl is-active scramd)" = active ] && break
  sleep 1
done
say active "$(systemctl is-active scramd)"
say security "$(systemd-analyze security scramd.service 2>/dev/null | tail -n 1)"
pid="$(systemctl show -p MainPID --value scramd)"
for t in /proc/"$pid"/task/*; do
  say thread "$(basename "$t")" "$(grep -E '^(CapEff|NoNewPrivs|Seccomp):' "$t/status" | tr -s '\t ' ' ' | tr '\n' ' ')"
done
read -r parser < /proc/"$pid"/task/"$pid"/children
for t in /proc/"$parser"/task/*; do
  say parser-thread "$(basename "$t")" "$(grep -E '^(CapEff|NoNewPrivs|Seccomp):' "$t/status" | tr -s '\t ' ' ' | tr '\n' ' ')"
done
journalctl -u scramd -b --no-pager -o cat | grep -i landlock | sed 's/^/SCRAM-VM landlock /'

if scramd self-check > /root/self-check.log 2>&1; then say self-check ok; else say self-check failed; fi
grep -E '^(ok|FAIL) ' /root/self-check.log | sed 's/^/SCRAM-VM self-check-row /'

# The link needs a moment after coming up, and emulation is slow: a few tries.
before=blocked
for _ in $(seq 5); do
  if ip netns exec attacker ping -c 1 -W 2 10.99.0.1 > /dev/null; then before=passed; break; fi
done
say ping-before "$before"
ip netns exec attacker nmap -sS -Pn -n -T4 -p 1-200 10.99.0.1 > /dev/null 2>&1
n=0
for _ in $(seq 20); do
  n="$(journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=portscan | grep -c SCRAM_DETECTOR)"
  [ "$n" -gt 0 ] && break
  sleep 1
done
say portscan-alerts "$n"
journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=portscan | head -n 1 | sed 's/^/SCRAM-VM alert /'
for _ in $(seq 20); do
  nft list set inet scram ban4 2>/dev/null | grep -q 10.99.0.2 && break
  sleep 1
done
say ban "$(nft list set inet scram ban4 2>/dev/null | grep -c 10.99.0.2)"
if ip netns exec attacker ping -c 1 -W 1 10.99.0.1 > /dev/null; then say ping-after passed; else say ping-after blocked; fi

# Two workers on a link that is down at start: the group forms when it comes up.
ip link add vd type veth peer name vd2
ip link set vd2 up
printf '[capture]\nworkers = 2\n' > /root/w2.toml
SCRAM_LOG_TARGET=stderr scramd run --iface vd --config /root/w2.toml > /dev/null 2> /root/w2.log &
w2=$!
sleep 3
ip link set vd up
sleep 2
ping -c 5 -i 0.2 -W 1 -I vd2 10.98.0.1 > /dev/null 2>&1
sleep 1
kill "$w2"
wait "$w2"
say fanout-down "$(grep -c 'cannot form a fanout group yet' /root/w2.log)"
say fanout-formed "$(grep -c 'its fanout group is formed' /root/w2.log)"
grep -E 'SIGSYS|ERROR' /root/w2.log | sed 's/^/SCRAM-VM fanout-error /'

systemctl reload scramd
sleep 2
say reload "$pid $(systemctl show -p MainPID --value scramd) $(systemctl is-active scramd)"
say done
