#!/usr/bin/env python3
"""Capture throughput on a veth pair: scramd side by side with tcpdump and netsniff-ng.

Run as root through benches/veth.sh (which builds scramd first). Builds two network namespaces
joined by a veth pair, drives trafgen at its maximum rate for a fixed time, and measures each
capture tool under the same load, alternating tools round by round (A B C A B C ...):

- offered: frames the capturing interface received (its rx_packets counter) per second
- captured: frames the tool reports per second; drops: what the tool reports the kernel dropped
- CPU: on-CPU time of every thread of the capture process (schedstat, ns) per million frames
- RSS: the process's peak resident set (VmHWM)

Profiles: 64-byte frames and a realistic size mix (7:4:1 small/medium/full-size frames, TCP and
UDP), each with trafgen on one core and on both cores (capture competes for CPU). Prints a table
of medians and one machine-readable summary line (`SUMMARY {json}`); removes its namespaces and
files on exit, also on error or Ctrl-C.
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

NS_TX = "scram-bench-tx"
NS_RX = "scram-bench-rx"
TX, RX = "vtx", "vrx"


def sh(*args, check=True, capture=True):
    r = subprocess.run(args, capture_output=capture, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout if capture else ""


def in_ns(ns, *args):
    return ["ip", "netns", "exec", ns, *args]


def setup():
    cleanup()
    sh("ip", "netns", "add", NS_TX)
    sh("ip", "netns", "add", NS_RX)
    sh("ip", "link", "add", TX, "netns", NS_TX, "type", "veth", "peer", "name", RX, "netns", NS_RX)
    for ns, dev in ((NS_TX, TX), (NS_RX, RX)):
        sh(*in_ns(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"))
        sh(*in_ns(ns, "ip", "link", "set", dev, "up"))
    # No addresses: the receiving stack drops the frames quietly instead of answering them, so
    # every tool sees exactly the offered frames and nothing it sent itself.


def cleanup():
    for ns in (NS_TX, NS_RX):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def mac(ns, dev):
    return sh(*in_ns(ns, "cat", f"/sys/class/net/{dev}/address")).strip()


def rx_packets():
    return int(sh(*in_ns(NS_RX, "cat", f"/sys/class/net/{RX}/statistics/rx_packets")))


def trafgen_config(kind, da, sa):
    head = f"eth(da={da}, sa={sa}), ipv4(saddr=198.18.0.1, daddr=198.18.0.2, ttl=64)"
    udp = "udp(sp=dinc(1024, 65000), dp=53)"
    if kind == "64B":
        return "{ %s, %s, fill(0x00, 18) }\n" % (head, udp)
    small_tcp = "tcp(sp=dinc(1024, 65000), dp=443, ack)"
    data_tcp = "tcp(sp=dinc(1024, 65000), dp=443, ack, psh)"
    frames = (
        ["{ %s, %s, fill(0x00, 6) }" % (head, small_tcp)] * 4
        + ["{ %s, %s, fill(0x00, 18) }" % (head, udp)] * 3
        + ["{ %s, %s, fill(0x41, 536) }" % (head, data_tcp)] * 4
        + ["{ %s, %s, fill(0x42, 1460) }" % (head, data_tcp)]
    )
    return "\n".join(frames) + "\n"


def cpu_ns(pid):
    total = 0
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
    except FileNotFoundError:
        pass
    return total


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Tool:
    """One capture tool: how to start it, when it is ready, and what it reports at exit."""

    def __init__(self, name, scramd, workdir, config=None):
        self.name, self.scramd, self.workdir, self.config = name, scramd, workdir, config

    def start(self):
        self.log = open(os.path.join(self.workdir, f"{self.name}.log"), "w+")
        if self.name == "scramd":
            cmd = [self.scramd, "run", "--iface", RX]
            if self.config:
                cmd += ["--config", self.config]
            env = dict(os.environ, SCRAM_LOG_TARGET="stderr")
        elif self.name == "tcpdump":
            cmd = ["tcpdump", "-i", RX, "-n", "-w", "/dev/null"]
            env = None
        else:
            cmd = ["netsniff-ng", "--in", RX, "--out", "/dev/null", "--silent", "--no-sock-mem"]
            env = None
        # netsniff-ng reports on stdout, the others on stderr; scramd's alerts (stdout) are
        # discarded.
        out = subprocess.DEVNULL if self.name == "scramd" else self.log
        self.proc = subprocess.Popen(in_ns(NS_RX, *cmd), stdout=out, stderr=self.log, env=env)
        ready = {"scramd": "capturing on", "tcpdump": "listening on",
                 "netsniff-ng": "Running"}[self.name]
        deadline = time.time() + 15
        while time.time() < deadline:
            self.log.seek(0)
            if ready in self.log.read():
                time.sleep(0.3)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.log.seek(0)
        raise RuntimeError(f"{self.name} did not start: {self.log.read()}")

    def stop(self):
        sig = signal.SIGTERM if self.name == "scramd" else signal.SIGINT
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        if self.name == "scramd":
            m = re.search(r"final counters %s: (\d+) frames.*?(\d+) kernel drops" % RX, text)
        elif self.name == "tcpdump":
            c = re.search(r"(\d+) packets captured", text)
            d = re.search(r"(\d+) packets dropped by kernel", text)
            m = (c.group(1), d.group(1)) if c and d else None
            return (int(m[0]), int(m[1])) if m else (0, 0)
        else:
            c = re.search(r"(\d+)\s+packets passed filter", text)
            d = re.search(r"(\d+)\s+packets failed filter \(out of space\)", text)
            return (int(c.group(1)) if c else 0, int(d.group(1)) if d else 0)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


STARTED = []


def measure(tool, conf, cpus, seconds):
    tool.start()
    STARTED.append(tool.proc)
    pid = tool.proc.pid
    before_rx, before_cpu = rx_packets(), cpu_ns(pid)
    gen = subprocess.run(
        in_ns(NS_TX, "timeout", "-s", "INT", str(seconds), "trafgen", "--dev", TX, "--conf", conf,
              "--cpus", str(cpus), "--no-sock-mem", "--notouch-irq", "-S", "4MiB"),
        capture_output=True, text=True)
    if gen.returncode not in (0, 124, 130):
        raise RuntimeError(f"trafgen: {gen.stderr.strip()}")
    time.sleep(0.2)
    offered = rx_packets() - before_rx
    cpu = cpu_ns(pid) - before_cpu
    rss = peak_rss_kib(pid)
    captured, drops = tool.stop()
    return {"offered": offered, "captured": captured, "drops": drops, "cpu_ns": cpu,
            "rss_kib": rss, "seconds": seconds}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scramd", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--tools", default="scramd,tcpdump,netsniff-ng")
    p.add_argument("--profiles", default="64B,mix")
    p.add_argument("--cpus", default="1,2", help="trafgen cores per profile")
    p.add_argument("--scramd-config", help="a scram.toml for scramd (default: built-in defaults)")
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("veth bench: run as root (namespaces, veth, AF_PACKET)")
    tools = a.tools.split(",")
    results = {}
    workdir = tempfile.mkdtemp(prefix="scram-bench-")
    try:
        setup()
        da, sa = mac(NS_RX, RX), mac(NS_TX, TX)
        for kind in a.profiles.split(","):
            conf = os.path.join(workdir, f"{kind}.cfg")
            with open(conf, "w") as f:
                f.write(trafgen_config(kind, da, sa))
            for cpus in [int(c) for c in a.cpus.split(",")]:
                for r in range(a.rounds):
                    for name in tools:
                        m = measure(Tool(name, a.scramd, workdir, a.scramd_config), conf, cpus,
                                    a.seconds)
                        results.setdefault((kind, cpus, name), []).append(m)
                        print(f"  round {r + 1}/{a.rounds} {kind} trafgen x{cpus} {name}: "
                              f"{m['offered']} offered, {m['captured']} captured, "
                              f"{m['drops']} drops, {m['cpu_ns'] / 1e9:.3f} s CPU",
                              file=sys.stderr)
    finally:
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        cleanup()
        for f in os.listdir(workdir):
            os.unlink(os.path.join(workdir, f))
        os.rmdir(workdir)

    rows, summary = [], []
    for (kind, cpus, name), ms in results.items():
        med = lambda k: statistics.median(m[k] for m in ms)
        per_m = statistics.median(m["cpu_ns"] / max(m["captured"], 1) * 1e6 / 1e9 for m in ms)
        row = {"profile": kind, "trafgen_cpus": cpus, "tool": name, "rounds": len(ms),
               "offered_pps": round(med("offered") / a.seconds),
               "captured_pps": round(med("captured") / a.seconds),
               "kernel_drops": int(med("drops")),
               "cpu_s_per_mpkt": round(per_m, 4),
               "peak_rss_mib": round(med("rss_kib") / 1024, 1)}
        rows.append(row)
    for row in rows:
        peers = {r["tool"]: r for r in rows
                 if r["profile"] == row["profile"] and r["trafgen_cpus"] == row["trafgen_cpus"]}
        if row["tool"] == "scramd":
            for peer in ("tcpdump", "netsniff-ng"):
                if peer in peers and peers[peer]["cpu_s_per_mpkt"] > 0:
                    row[f"cpu_vs_{peer}"] = round(
                        row["cpu_s_per_mpkt"] / peers[peer]["cpu_s_per_mpkt"], 2)
        summary.append(row)

    hdr = ("profile", "trafgen", "tool", "offered pps", "captured pps", "drops",
           "CPU s/Mpkt", "peak RSS MiB", "CPU vs tcpdump", "CPU vs netsniff-ng")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for r in rows:
        print(f"| {r['profile']} | {r['trafgen_cpus']} core(s) | {r['tool']} | "
              f"{r['offered_pps']:,} | {r['captured_pps']:,} | {r['kernel_drops']:,} | "
              f"{r['cpu_s_per_mpkt']} | {r['peak_rss_mib']} | "
              f"{r.get('cpu_vs_tcpdump', '')} | {r.get('cpu_vs_netsniff-ng', '')} |")
    print("SUMMARY " + json.dumps({
        "date": datetime.date.today().isoformat(), "kernel": platform.release(),
        "cpus": os.cpu_count(), "seconds": a.seconds, "rounds": a.rounds, "results": summary}))


if __name__ == "__main__":
    main()
