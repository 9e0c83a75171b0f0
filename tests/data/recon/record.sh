#!/usr/bin/env bash
# Records the reconnaissance captures (real tools) and the benign captures the detection tests
# replay. Everything runs inside two network namespaces this script creates and deletes: an
# "attacker" (10.9.0.2, fd09::2) and a "victim" LAN host holding 30 addresses (10.9.0.10-39,
# fd09::10-27) on one veth, with TCP services on 22, 80 and 9100 and DNS on 8600. tcpdump -n runs
# in the victim's namespace; every tool and loop is bounded in time and count.
#
#   tests/data/recon/record.sh [NAME...]    # all captures, or only those named
#
# Needs root and the Debian packages nmap masscan arp-scan netdiscover thc-ipv6 hping3
# dnsmasq-base socat tcpdump python3 python3-scapy curl ethtool iputils-arping dsniff. CI replays the committed captures; it does not record.
set -euo pipefail
cd "$(dirname "$0")"
OUT="$PWD"
A=rec-atk-$$
V=rec-vic-$$
in_a() { ip netns exec "$A" "$@"; }
in_v() { ip netns exec "$V" "$@"; }

cleanup() {
  ip netns pids "$V" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns pids "$A" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$V" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$A"
ip netns add "$V"
ip link add ra netns "$A" type veth peer name rv netns "$V"
in_a ip link set lo up
in_v ip link set lo up
in_a ip addr add 10.9.0.2/24 dev ra
in_a ip addr add fd09::2/64 dev ra nodad
for i in $(seq 10 39); do in_v ip addr add "10.9.0.$i/24" dev rv; done
for i in $(seq 16 39); do in_v ip addr add "fd09::$(printf %x "$i")/64" dev rv nodad; done
in_a ip link set ra up
in_v ip link set rv up
# A default route inside the attacker's namespace only: multicast and broadcast chatter need one;
# the namespace has no other link, so nothing leaves the veth pair.
in_a ip route add default dev ra
sleep 1
VMAC=$(in_v cat /sys/class/net/rv/address)
AMAC=$(in_a cat /sys/class/net/ra/address)

# Services on the victim, alive at most 30 minutes.
in_v timeout 1800 python3 - <<'PY' &
import socket, threading
def serve(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port)); s.listen(256)
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(1); c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except Exception:
            pass
        c.close()
for p in (22, 80, 9100):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
threading.Event().wait()
PY
in_v timeout 1800 dnsmasq -k -p 8600 --no-resolv --no-hosts --address=/lab/10.9.0.10 \
  --listen-address=10.9.0.10 --bind-interfaces --pid-file= 2>/dev/null &
sleep 1

# record NAME SECONDS COMMAND...: tcpdump in the victim while COMMAND runs in the attacker.
record() {
  local name=$1 secs=$2
  shift 2
  if [ ${#WANT[@]} -gt 0 ] && [[ ! " ${WANT[*]} " =~ " $name " ]]; then return; fi
  in_v timeout $((secs + 10)) tcpdump -n -i rv -U -c "${COUNT:-30000}" ${SNAP:+-s "$SNAP"} \
    -w "$OUT/$name.pcap" 2>/dev/null &
  local dump=$!
  sleep 1
  in_a timeout "$secs" "$@" >/dev/null 2>&1 || true
  sleep 2
  kill -INT "$dump" 2>/dev/null || true
  wait "$dump" 2>/dev/null || true
  echo "$name: $(tcpdump -n -r "$OUT/$name.pcap" 2>/dev/null | wc -l) packets"
}
WANT=("$@")
T=10.9.0.10

# --- reconnaissance ---
record nmap-syn 30 nmap -n -Pn -sS -p1-100 $T
record nmap-connect 30 nmap -n -Pn -sT -p1-100 $T
record nmap-ack 30 nmap -n -Pn -sA -p1-100 $T
record nmap-window 30 nmap -n -Pn -sW -p1-100 $T
record nmap-maimon 30 nmap -n -Pn -sM -p1-100 $T
record nmap-fin 30 nmap -n -Pn -sF -p1-100 $T
record nmap-null 30 nmap -n -Pn -sN -p1-100 $T
record nmap-xmas 30 nmap -n -Pn -sX -p1-100 $T
record nmap-udp 60 nmap -n -Pn -sU --max-retries 0 -p1-40 $T
record nmap-ipproto 60 nmap -n -Pn -sO --max-retries 0 -p1-60 $T
record nmap-sctp-init 30 nmap -n -Pn -sY -p1-100 $T
record nmap-sctp-cookie 30 nmap -n -Pn -sZ -p1-100 $T
record masscan 20 masscan $T -p1-200 --rate 500 --wait 2 --adapter-ip 10.9.0.2 \
  --adapter-mac "$AMAC" --router-mac "$VMAC" -e ra
record nmap-fragments 30 nmap -n -Pn -sS -f -p1-60 $T
record nmap-decoy 40 nmap -n -Pn -sS -D 10.9.0.101,10.9.0.102,ME,10.9.0.103 -p1-60 $T
record nmap-slow 150 nmap -n -Pn -sS --scan-delay 4s -p1-30 $T
record nmap-ping-sweep-lan 30 nmap -n -sn 10.9.0.0/24
record arp-scan 30 arp-scan -I ra --localnet
record netdiscover 40 netdiscover -i ra -r 10.9.0.0/24 -P
record nmap6-ping-sweep 40 nmap -6 -n -sn $(for i in $(seq 16 63); do printf "fd09::%x " "$i"; done)
record alive6 30 atk6-alive6 ra
# Distributed: five forged sources, eight ports each, none above a per-source threshold (scapy).
record distributed 30 env VMAC="$VMAC" /usr/bin/python3 -c '
import os, random
from scapy.all import Ether, IP, TCP, sendp
frames = []
for s in range(5):
    for p in range(s * 8 + 1, s * 8 + 9):
        frames.append(Ether(dst=os.environ["VMAC"]) / IP(src="10.9.0.%d" % (51 + s), dst="10.9.0.10")
                      / TCP(sport=random.randrange(1024, 65535), dport=p, flags="S"))
random.shuffle(frames)
sendp(frames, iface="ra", inter=0.01, verbose=False)'

# --- floods ---
# A SYN flood from random (forged) sources, 30,000 packets: one flood alert, never a storm.
COUNT=30100 record flood-syn-spoofed 30 hping3 -S --rand-source -p 80 -c 30000 -i u40 $T
# ACK and RST floods at 20,000 packets a second.
record flood-ack 20 hping3 -A -p 80 -c 6000 -i u50 $T
record flood-rst 20 hping3 -R -p 80 -c 6000 -i u50 $T
# A fragment flood: hping3 -f cuts each 120-byte UDP datagram into 8-byte fragments (the test
# judges it against a lower rate than the default).
SNAP=64 record flood-frag 20 hping3 -2 -f -d 120 -p 9 -c 800 -i u200 $T
# DNS reflection: answer-sized datagrams from port 53 of many reflectors to a port nobody asked on.
SNAP=96 record reflection-dns 20 hping3 -2 -s 53 -k -p 33333 -d 480 --rand-source -c 4000 -i u100 $T

# --- services ---
# The connection pattern of password guessing: 200 connections to the victim's ssh port in 20 s,
# each exchanging a few bytes. (hydra against a real sshd here managed 9 connections a minute:
# OpenSSH delays failed logins; the pattern is the same, only slower.)
record brute-ssh 40 python3 -c '
import socket, time
for i in range(200):
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect(("10.9.0.10", 22)); s.sendall(b"SSH-2.0-guess\r\n"); s.recv(100)
    except Exception:
        pass
    s.close(); time.sleep(0.1)'

# Teardrop (scapy): ten UDP datagrams of two fragments each, the second starting inside the
# first (offset 24 of 36 bytes).
record teardrop 20 env VMAC="$VMAC" /usr/bin/python3 -c '
import os
from scapy.all import Ether, IP, sendp
frames = []
for i in range(10):
    head = IP(src="10.9.0.2", dst="10.9.0.10", id=4200 + i, flags="MF", frag=0, proto=17) / (b"X" * 36)
    tail = IP(src="10.9.0.2", dst="10.9.0.10", id=4200 + i, frag=3, proto=17) / (b"Y" * 20)
    frames += [Ether(dst=os.environ["VMAC"]) / head, Ether(dst=os.environ["VMAC"]) / tail]
sendp(frames, iface="ra", inter=0.05, verbose=False)'

# --- the link layer ---
# Gratuitous ARP (arping -U, then -A) claiming the victim's 10.9.0.11 for the attacker's MAC,
# after the attacker resolved it from the victim itself.
record arp-gratuitous 15 sh -c '
ping -c 1 -W 1 10.9.0.11 >/dev/null
ip addr add 10.9.0.11/32 dev ra noprefixroute
arping -q -U -c 2 -I ra -s 10.9.0.11 10.9.0.11
arping -q -A -c 2 -I ra -s 10.9.0.11 10.9.0.11
ip addr del 10.9.0.11/32 dev ra'
# dsniff arpspoof without a target: tells the whole link that 10.9.0.12 is at the attacker's MAC.
record arpspoof 15 sh -c '
ping -c 1 -W 1 10.9.0.12 >/dev/null
timeout 5 arpspoof -i ra 10.9.0.12'

# A router advertisement from the link's router (the victim, sent with scapy), then thc-ipv6
# fake_router6 announcing itself as a router from the attacker.
record rogue-ra 15 sh -c '
ip netns exec '"$V"' /usr/bin/python3 -c "
from scapy.all import Ether, IPv6, ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, sendp, get_if_hwaddr
import subprocess
ll = subprocess.run([\"ip\", \"-6\", \"-o\", \"addr\", \"show\", \"dev\", \"rv\", \"scope\", \"link\"],
                    capture_output=True, text=True).stdout.split()[3].split(\"/\")[0]
sendp(Ether(src=get_if_hwaddr(\"rv\"), dst=\"33:33:00:00:00:01\") / IPv6(src=ll, dst=\"ff02::1\")
      / ICMPv6ND_RA() / ICMPv6NDOptPrefixInfo(prefix=\"fd09::\", prefixlen=64), iface=\"rv\", verbose=False)
"
sleep 1
timeout 4 atk6-fake_router6 ra fd66::/64'
# thc-ipv6 flood_router26: router advertisements from random sources, as fast as it can.
SNAP=96 COUNT=4000 record ra-flood 8 timeout 2 atk6-flood_router26 ra
# The victim's address fd09::10 resolved by the attacker (the victim answers), then claimed by the
# attacker's MAC with thc-ipv6 fake_advertise6.
record nd-spoof 15 sh -c '
ping -6 -c 2 -i 0.2 fd09::10
timeout 3 atk6-fake_advertise6 ra fd09::10'

# --- benign ---
# A busy resolver (the victim) asking ten upstream servers 3,000 questions a second for 2 s:
# thousands of answers from port 53, every one asked for.
record benign-resolver 30 sh -c '
for i in $(seq 50 59); do ip addr add 10.9.0.$i/24 dev ra 2>/dev/null; done
for i in $(seq 50 59); do
  timeout 20 dnsmasq -k -p 53 --no-resolv --no-hosts --address=/lab/10.9.0.10 \
    --listen-address=10.9.0.$i --bind-interfaces --pid-file= 2>/dev/null &
done
sleep 1
ip netns exec '"$V"' python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False)
q = lambda i: i.to_bytes(2, \"big\") + b\"\\1\\0\\0\\1\\0\\0\\0\\0\\0\\0\\3www\\3lab\\0\\0\\1\\0\\1\"
socks = []
for i in range(6000):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.setblocking(False)
    c.sendto(q(i), (\"10.9.0.%d\" % (50 + i % 10), 53)); socks.append(c)
    if i % 30 == 29: time.sleep(0.01)
    if len(socks) > 200:
        for c in socks[:100]:
            try: c.recv(512)
            except Exception: pass
            c.close()
        del socks[:100]
"
kill $(jobs -p) 2>/dev/null; wait'
# A busy NTP server (the victim, port 123): ten clients asking 2,000 times a second for 2 s,
# some from port 123 (ntpd), most from ephemeral ports.
record benign-ntp 30 sh -c '
for i in $(seq 50 59); do ip addr add 10.9.0.$i/24 dev ra 2>/dev/null; done
ip netns exec '"$V"' timeout 15 python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((\"10.9.0.10\", 123))
while True:
    q, peer = s.recvfrom(100); s.sendto(b\"\\x24\" + bytes(47), peer)
" &
sleep 1
python3 -c "
import socket, time
socks = []
for i in range(10):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False)
    s.bind((\"10.9.0.%d\" % (50 + i), 123 if i < 3 else 0)); socks.append(s)
q = b\"\\x23\" + bytes(47)
for n in range(4000):
    s = socks[n % 10]; s.sendto(q, (\"10.9.0.10\", 123))
    try: s.recv(100)
    except Exception: pass
    if n % 20 == 19: time.sleep(0.01)
"
wait'
# A large download: 8 MB over HTTP at full MTU-sized segments (offloads off, as a NIC without
# GRO delivers them), headers only kept.
SNAP=96 record benign-download 30 sh -c '
ethtool -K ra tso off gso off gro off >/dev/null 2>&1
ip netns exec '"$V"' ethtool -K rv tso off gso off gro off >/dev/null 2>&1
timeout 20 python3 -c "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((\"10.9.0.2\", 8080)); s.listen(1)
c, _ = s.accept(); c.recv(1000)
c.sendall(b\"HTTP/1.0 200 OK\\r\\n\\r\\n\" + bytes(8000000)); c.close()
" &
sleep 1
ip netns exec '"$V"' curl -s -o /dev/null http://10.9.0.2:8080/big
wait
ethtool -K ra tso on gso on gro on >/dev/null 2>&1
ip netns exec '"$V"' ethtool -K rv tso on gso on gro on >/dev/null 2>&1'

# A poller scraping 30 hosts on one port every 2 s.
record benign-poller 30 sh -c 'for r in 1 2 3 4 5 6 7 8; do
  for i in $(seq 10 39); do curl -s -m 1 -o /dev/null http://10.9.0.$i:9100/metrics & done; wait; sleep 2; done'
# A DNS server on a high port answering many queries from one client's ephemeral ports.
record benign-dns-high-port 30 python3 -c '
import random, socket, struct, time
for i in range(300):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
    q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0) + b"\x03www\x03lab\x00\x00\x01\x00\x01"
    s.sendto(q, ("10.9.0.10", 8600))
    try: s.recv(512)
    except Exception: pass
    s.close(); time.sleep(0.02)'
# A browser opening 30 parallel connections to one server.
record benign-browser 20 sh -c 'for r in 1 2 3; do
  curl -s -m 2 --parallel --parallel-max 30 $(for i in $(seq 1 30); do echo "-o /dev/null http://10.9.0.10/asset$i"; done); sleep 1; done'
# The outside address of a NAT gateway: forty users behind one address browsing the LAN's web
# servers and asking its DNS server for 20 s, with the failures such a crowd makes: a few
# connections to a closed port (443) on different hosts, an app polling a dead database port,
# two attempts at a host that is gone.
record benign-nat 40 python3 -c '
import random, socket, threading, time
def tcp(host, port):
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect((host, port)); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); s.recv(100)
    except Exception:
        pass
    s.close()
def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
    q = random.randrange(65536).to_bytes(2, "big") + b"\1\0\0\1\0\0\0\0\0\0\3www\3lab\0\0\1\0\1"
    s.sendto(q, ("10.9.0.10", 8600))
    try: s.recv(512)
    except Exception: pass
    s.close()
def user(u):
    for _ in range(4):
        time.sleep(random.uniform(0, 5))
        dns()
        tcp("10.9.0.%d" % random.randrange(10, 40), random.choice((80, 9100)))
threads = [threading.Thread(target=user, args=(u,)) for u in range(40)]
for t in threads: t.start()
for h in (11, 17, 23, 31): tcp("10.9.0.%d" % h, 443)
for _ in range(3): tcp("10.9.0.12", 5432); time.sleep(2)
for _ in range(2): tcp("10.9.0.99", 80)
for t in threads: t.join()'
# A web and mail server's ordinary day (the victim, 10.9.0.10): ten clients (10.9.0.50-59)
# fetching pages and opening ssh sessions, while the server delivers mail to thirteen remote
# MXs (10.9.0.60-72), three of which refuse.
record benign-server 40 sh -c '
for i in $(seq 50 72); do ip addr add 10.9.0.$i/24 dev ra 2>/dev/null; done
python3 -c "
import socket, threading
def mx(addr):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 25)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b\"220 mx ESMTP\\r\\n\"); c.close()
for i in range(60, 70):
    threading.Thread(target=mx, args=(\"10.9.0.%d\" % i,), daemon=True).start()
threading.Event().wait()
" &
sleep 1
ip netns exec '"$V"' python3 -c "
import socket, time
for r in range(2):
    for i in range(60, 73):
        s = socket.socket(); s.settimeout(1); s.bind((\"10.9.0.10\", 0))
        try:
            s.connect((\"10.9.0.%d\" % i, 25)); s.recv(100)
        except Exception:
            pass
        s.close(); time.sleep(0.3)
" &
python3 -c "
import random, socket, time
for n in range(200):
    s = socket.socket(); s.settimeout(1)
    s.bind((\"10.9.0.%d\" % random.randrange(50, 60), 0))
    try:
        s.connect((\"10.9.0.10\", random.choice((80, 80, 80, 22))))
        s.sendall(b\"GET / HTTP/1.0\\r\\n\\r\\n\"); s.recv(100)
    except Exception:
        pass
    s.close(); time.sleep(0.1)
"
wait'
# Link-local chatter: mDNS, LLMNR, SSDP, a DHCP discover, router solicitations.
record benign-chatter 20 python3 -c '
import socket, time
for r in range(5):
    for addr, port, data in ((("224.0.0.251", 5353, b"\0\0\0\0\0\1\0\0\0\0\0\0\5local\0\0\xff\0\1")),
                             (("224.0.0.252", 5355, b"\0\1\0\0\0\1\0\0\0\0\0\0\4host\0\0\1\0\1")),
                             (("239.255.255.250", 1900, b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n"))):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(data, (addr, port)); s.close()
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    try:
        b.bind(("0.0.0.0", 68)); b.sendto(b"\1\1\6\0" + bytes(236) + b"\x63\x82\x53\x63\x35\x01\x01\xff", ("255.255.255.255", 67))
    except OSError: pass
    b.close(); time.sleep(1)'
# A router resolving its neighbours: the victim pings 30 live addresses of the attacker side.
for i in $(seq 40 69); do in_a ip addr add "10.9.0.$i/24" dev ra; done
if [ ${#WANT[@]} -eq 0 ] || [[ " ${WANT[*]} " =~ " benign-neighbours " ]]; then
  in_v timeout 30 tcpdump -n -i rv -U -c 30000 -w "$OUT/benign-neighbours.pcap" 2>/dev/null &
  dump=$!
  sleep 1
  pings=()
  for i in $(seq 40 69); do in_v ping -c 1 -W 1 "10.9.0.$i" >/dev/null 2>&1 & pings+=($!); done
  wait "${pings[@]}" 2>/dev/null || true
  sleep 2
  kill -INT "$dump" 2>/dev/null || true
  echo "benign-neighbours: $(tcpdump -n -r "$OUT/benign-neighbours.pcap" 2>/dev/null | wc -l) packets"
fi
