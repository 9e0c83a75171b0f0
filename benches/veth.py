#!/usr/bin/env python3
"""Capture throughput on a veth pair: scramd side by side with tcpdump, netsniff-ng and fastnetmon.

Run as root through benches/veth.sh (which builds scramd first). Builds two network namespaces
joined by a veth pair, drives trafgen at its maximum rate for a fixed time, and measures each
capture tool under the same load, alternating tools round by round (A B C A B C ...):

- offered: frames the capturing interface received (its rx_packets counter) per second
- captured: frames the tool reports per second; drops: what the tool reports the kernel dropped
- CPU: on-CPU time of every thread of the capture process (schedstat, ns) per million frames
- RSS: the peak resident set (VmHWM) of the process and its children

Profiles: 64-byte frames and a realistic size mix (7:4:1 small/medium/full-size frames, TCP and
UDP), each with trafgen on one core and on both cores (capture competes for CPU); `v6`, the
64-byte profile's UDP flood over IPv6 (80-byte frames: IPv6 flows live in a table of their own,
with slots twice the size); and 64-byte
floods from 1, about 1,000, 100,000 and 1,000,000 distinct sources (`src1`, `src1k`, `src100k`,
`src1m`: every packet misses the caches, and the flow table fills). With trafgen on one core it
is pinned to CPU 0 and the capture tool to CPU 1 (`taskset`), so each tool has a core to itself.
`idle`: no traffic at all, the tool's CPU and wake-ups a second (what it costs a quiet server;
each wake-up of a sleeping thread is a context switch, dear in a VM).

Tools: `scramd` (built-in defaults: one worker per CPU, every detector on), `scramd-1w` (the same
with `workers = 1`: as many workers as tcpdump and netsniff-ng have threads reading packets),
`tcpdump -w /dev/null`, `netsniff-ng --out /dev/null`, and `fastnetmon` (Debian's package:
AF_PACKET mirror mode, per-host counters for the receiving host, bans, API and usage reports
off; its count is read from its Prometheus endpoint inside the namespace, and its drops are
offered minus processed, since it reports none).

Prints a table of medians, each scramd row's CPU a frame against the same round's tcpdump round
by round (with their median: the tools of a round run seconds apart, so the machine's slow
drifts cancel out of each ratio), and one machine-readable summary line (`SUMMARY {json}`); with
`--plot FILE` also a PNG of CPU per packet against distinct sources (matplotlib). Removes its
namespaces and files on exit, also on error or Ctrl-C.
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
    # fastnetmon's Prometheus endpoint listens on the receiving namespace's own loopback.
    sh(*in_ns(NS_RX, "ip", "link", "set", "lo", "up"))
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


# Distinct sources of the scaling profiles: one-byte counters of coprime periods in the source
# address's low bytes, so the address repeats only after the product of the periods.
SOURCES = {
    "src1": (),
    "src1k": (8, 125),
    "src100k": (16, 25, 251),
    "src1m": (97, 101, 103),
}


def distinct_sources(kind):
    n = 1
    for period in SOURCES[kind]:
        n *= period
    return n


def trafgen_config(kind, da, sa):
    head = f"eth(da={da}, sa={sa}), ipv4(saddr=198.18.0.1, daddr=198.18.0.2, ttl=64)"
    udp = "udp(sp=dinc(1024, 65000), dp=53)"
    if kind == "64B":
        return "{ %s, %s, fill(0x00, 18) }\n" % (head, udp)
    if kind == "v6":
        v6 = f"eth(da={da}, sa={sa}), ipv6(saddr=2001:db8::1, daddr=2001:db8::2, hl=64)"
        return "{ %s, %s, fill(0x00, 18) }\n" % (v6, udp)
    if kind in SOURCES:
        periods = SOURCES[kind]
        counters = "".join(f", saddr[{4 - len(periods) + i}]=dinc(0, {p - 1})"
                           for i, p in enumerate(periods))
        src = f"eth(da={da}, sa={sa}), ipv4(saddr=10.0.0.1, daddr=198.18.0.2, ttl=64{counters})"
        return "{ %s, udp(sp=4444, dp=53), fill(0x00, 18) }\n" % src
    small_tcp = "tcp(sp=dinc(1024, 65000), dp=443, ack)"
    data_tcp = "tcp(sp=dinc(1024, 65000), dp=443, ack, psh)"
    frames = (
        ["{ %s, %s, fill(0x00, 6) }" % (head, small_tcp)] * 4
        + ["{ %s, %s, fill(0x00, 18) }" % (head, udp)] * 3
        + ["{ %s, %s, fill(0x41, 536) }" % (head, data_tcp)] * 4
        + ["{ %s, %s, fill(0x42, 1460) }" % (head, data_tcp)]
    )
    return "\n".join(frames) + "\n"


def tree(pid):
    """pid and its descendants (scramd run is two processes: the privileged part and its
    parser, which does the capture work)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            pass
    return pids


def thread_sum(pid, name, value):
    """The sum of `value(text)` over /proc/P/task/T/`name` of every thread of pid and its
    descendants."""
    total = 0
    for p in tree(pid):
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/{name}") as f:
                    total += value(f.read())
        except FileNotFoundError:
            pass
    return total


def cpu_ns(pid):
    return thread_sum(pid, "schedstat", lambda text: int(text.split()[0]))


def wakeups(pid):
    """Voluntary context switches of every thread: each is a sleep, so as many wake-ups."""
    switches = re.compile(r"^voluntary_ctxt_switches:\s+(\d+)", re.M)
    return thread_sum(pid, "status", lambda text: int(switches.search(text).group(1)))


def peak_rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


FASTNETMON_CONF = """\
logging_level = info
logging_local_syslog_logging = off
logging_remote_syslog_logging = off
disable_usage_report = on
enable_ban = off
enable_ban_ipv6 = off
process_incoming_traffic = on
process_outgoing_traffic = on
networks_list_path = {dir}/networks_list
white_list_path = {dir}/networks_whitelist
check_period = 1
enable_connection_tracking = on
ban_for_pps = on
ban_for_bandwidth = on
threshold_pps = 20000
threshold_mbps = 1000
mirror_afpacket = on
mirror_af_packet_custom_sampling_rate = 1
mirror_af_packet_fanout_mode = cpu
interfaces = {iface}
average_calculation_time = 5
speed_calculation_delay = 1
pid_path = {dir}/fastnetmon.pid
cli_stats_file_path = {dir}/fastnetmon.dat
cli_stats_ipv6_file_path = {dir}/fastnetmon_ipv6.dat
enable_api = off
monitor_local_ip_addresses = off
prometheus = on
prometheus_host = 127.0.0.1
prometheus_port = 9209
"""


def fastnetmon_processed():
    """Packets fastnetmon processed, from its Prometheus endpoint (loopback of the namespace)."""
    text = sh(*in_ns(NS_RX, "python3", "-c",
                     "import urllib.request; print(urllib.request.urlopen("
                     "'http://127.0.0.1:9209/metrics', timeout=5).read().decode())"))
    m = re.search(r"^fastnetmon_total_simple_packets_processed (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def pinned(cpus, cmd):
    """With trafgen alone on CPU 0, the capture tool gets CPU 1 to itself."""
    return ["taskset", "-c", "1", *cmd] if cpus == 1 and os.cpu_count() > 1 else cmd


class Tool:
    """One capture tool: how to start it, when it is ready, and what it reports at exit."""

    def __init__(self, name, scramd, workdir, config=None, cpus=1):
        self.name, self.scramd, self.workdir, self.config = name, scramd, workdir, config
        self.cpus = cpus

    def start(self):
        self.log = open(os.path.join(self.workdir, f"{self.name}.log"), "w+")
        if self.name.startswith("scramd"):
            cmd = [self.scramd, "run", "--iface", RX]
            config = self.config
            if self.name == "scramd-1w":
                config = os.path.join(self.workdir, "scram-1w.toml")
                with open(config, "w") as f:
                    if self.config:
                        with open(self.config) as base:
                            f.write(base.read())
                    f.write("\n[capture]\nworkers = 1\n")
            if config:
                cmd += ["--config", config]
            env = dict(os.environ, SCRAM_LOG_TARGET="stderr")
        elif self.name == "fastnetmon":
            conf = os.path.join(self.workdir, "fastnetmon.conf")
            with open(conf, "w") as f:
                f.write(FASTNETMON_CONF.format(dir=self.workdir, iface=RX))
            with open(os.path.join(self.workdir, "networks_list"), "w") as f:
                f.write("198.18.0.2/32\n2001:db8::2/128\n")
            open(os.path.join(self.workdir, "networks_whitelist"), "w").close()
            cmd = ["fastnetmon", "--configuration_file", conf, "--log_to_console",
                   "--disable_pid_logic"]
            env = None
        elif self.name == "tcpdump":
            cmd = ["tcpdump", "-i", RX, "-n", "-w", "/dev/null"]
            env = None
        else:
            cmd = ["netsniff-ng", "--in", RX, "--out", "/dev/null", "--silent", "--no-sock-mem"]
            env = None
        # netsniff-ng reports on stdout, the others on stderr; scramd's alerts (stdout) are
        # discarded.
        out = subprocess.DEVNULL if self.name.startswith("scramd") else self.log
        self.proc = subprocess.Popen(in_ns(NS_RX, *pinned(self.cpus, cmd)), stdout=out,
                                     stderr=self.log, env=env)
        ready = {"scramd": "capturing on", "scramd-1w": "capturing on",
                 "tcpdump": "listening on", "netsniff-ng": "Running",
                 "fastnetmon": "Start AF_PACKET worker process"}[self.name]
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

    def stop(self, offered):
        processed = fastnetmon_processed() if self.name == "fastnetmon" else 0
        sig = signal.SIGTERM if self.name.startswith(("scramd", "fastnetmon")) else signal.SIGINT
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        if self.name == "fastnetmon":
            return (processed, max(offered - processed, 0))
        if self.name.startswith("scramd"):
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
    trafgen = ["trafgen", "--dev", TX, "--conf", conf, "--cpus", str(cpus), "--no-sock-mem",
               "--notouch-irq", "-S", "4MiB"]
    if cpus == 1:
        trafgen = ["taskset", "-c", "0", *trafgen]
    gen = subprocess.run(
        in_ns(NS_TX, "timeout", "-s", "INT", str(seconds), *trafgen),
        capture_output=True, text=True)
    if gen.returncode not in (0, 124, 130):
        raise RuntimeError(f"trafgen: {gen.stderr.strip()}")
    time.sleep(0.2)
    offered = rx_packets() - before_rx
    cpu = cpu_ns(pid) - before_cpu
    rss = peak_rss_kib(pid)
    captured, drops = tool.stop(offered)
    return {"offered": offered, "captured": captured, "drops": drops, "cpu_ns": cpu,
            "rss_kib": rss, "seconds": seconds}


def measure_idle(tool, seconds):
    """The tool on a link with no traffic: its CPU and wake-ups over `seconds`."""
    tool.start()
    STARTED.append(tool.proc)
    pid = tool.proc.pid
    before_rx, before_cpu, before_wake = rx_packets(), cpu_ns(pid), wakeups(pid)
    time.sleep(seconds)
    offered = rx_packets() - before_rx
    cpu, woke = cpu_ns(pid) - before_cpu, wakeups(pid) - before_wake
    rss = peak_rss_kib(pid)
    captured, drops = tool.stop(offered)
    return {"offered": offered, "captured": captured, "drops": drops, "cpu_ns": cpu,
            "wakeups": woke, "rss_kib": rss, "seconds": seconds}


def per_packet(m):
    """CPU seconds per million captured frames of one measurement."""
    return m["cpu_ns"] / max(m["captured"], 1) * 1e6 / 1e9


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scramd", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--tools", default="scramd,scramd-1w,tcpdump,netsniff-ng,fastnetmon")
    p.add_argument("--profiles", default="64B,mix")
    p.add_argument("--cpus", default="1,2", help="trafgen cores per profile")
    p.add_argument("--scramd-config", help="a scram.toml for scramd (default: built-in defaults)")
    p.add_argument("--plot", help="write a PNG of CPU per packet against distinct sources")
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
            if kind != "idle":
                with open(conf, "w") as f:
                    f.write(trafgen_config(kind, da, sa))
            for cpus in [int(c) for c in a.cpus.split(",")]:
                for r in range(a.rounds):
                    for name in tools:
                        tool = Tool(name, a.scramd, workdir, a.scramd_config, cpus)
                        m = (measure_idle(tool, a.seconds) if kind == "idle"
                             else measure(tool, conf, cpus, a.seconds))
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
        per_m = statistics.median(per_packet(m) for m in ms)
        row = {"profile": kind, "trafgen_cpus": cpus, "tool": name, "rounds": len(ms),
               "offered_pps": round(med("offered") / a.seconds),
               "captured_pps": round(med("captured") / a.seconds),
               "kernel_drops": int(med("drops")),
               "cpu_s_per_mpkt": round(per_m, 4),
               "peak_rss_mib": round(med("rss_kib") / 1024, 1)}
        if kind in SOURCES:
            row["distinct_sources"] = distinct_sources(kind)
        if kind == "idle":
            row["idle_cpu_ms_per_s"] = round(med("cpu_ns") / a.seconds / 1e6, 3)
            row["wakeups_per_s"] = round(med("wakeups") / a.seconds, 1)
            del row["cpu_s_per_mpkt"]
        rows.append(row)
    peers_of = ("tcpdump", "netsniff-ng", "fastnetmon")
    for row in rows:
        peers = {r["tool"]: r for r in rows
                 if r["profile"] == row["profile"] and r["trafgen_cpus"] == row["trafgen_cpus"]}
        if row["tool"].startswith("scramd") and row["profile"] != "idle":
            for peer in peers_of:
                if peer in peers and peers[peer]["cpu_s_per_mpkt"] > 0:
                    row[f"cpu_vs_{peer}"] = round(
                        row["cpu_s_per_mpkt"] / peers[peer]["cpu_s_per_mpkt"], 2)
            # Round by round against the same round's tcpdump: the tools of a round ran
            # seconds apart, so a slow drift of the machine cancels out of each ratio, and
            # their median is steadier than the ratio of two medians.
            mine = results[(row["profile"], row["trafgen_cpus"], row["tool"])]
            theirs = results.get((row["profile"], row["trafgen_cpus"], "tcpdump"), [])
            by_round = [round(per_packet(m) / per_packet(t), 2)
                        for m, t in zip(mine, theirs) if per_packet(t) > 0]
            if by_round:
                row["cpu_vs_tcpdump_by_round"] = by_round
                row["cpu_vs_tcpdump_round_median"] = round(statistics.median(by_round), 2)
        summary.append(row)

    hdr = ("profile", "trafgen", "tool", "offered pps", "captured pps", "drops",
           "CPU s/Mpkt", "peak RSS MiB") + tuple(f"CPU vs {p}" for p in peers_of)
    busy = [r for r in rows if r["profile"] != "idle"]
    if busy:
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
    for r in busy:
        ratios = " | ".join(str(r.get(f"cpu_vs_{p}", "")) for p in peers_of)
        print(f"| {r['profile']} | {r['trafgen_cpus']} core(s) | {r['tool']} | "
              f"{r['offered_pps']:,} | {r['captured_pps']:,} | {r['kernel_drops']:,} | "
              f"{r['cpu_s_per_mpkt']} | {r['peak_rss_mib']} | {ratios} |")
    idle = [r for r in rows if r["profile"] == "idle"]
    if idle:
        if busy:
            print()
        # Idle, `--cpus N` is the CPUs the tool may run on (scramd: as many workers).
        print("| profile | CPUs | tool | CPU ms/s | wake-ups/s | peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        for r in idle:
            print(f"| idle | {r['trafgen_cpus']} | {r['tool']} | {r['idle_cpu_ms_per_s']} | "
                  f"{r['wakeups_per_s']} | {r['peak_rss_mib']} |")
    by_round = [r for r in busy if "cpu_vs_tcpdump_by_round" in r]
    if by_round:
        print()
        print("Round by round, CPU a frame against the same round's tcpdump:")
        for r in by_round:
            rounds = ", ".join(str(x) for x in r["cpu_vs_tcpdump_by_round"])
            print(f"- {r['profile']}, trafgen x{r['trafgen_cpus']}, {r['tool']}: {rounds} "
                  f"(median {r['cpu_vs_tcpdump_round_median']})")
    if a.plot:
        plot(rows, a.plot)
    print("SUMMARY " + json.dumps({
        "date": datetime.date.today().isoformat(), "kernel": platform.release(),
        "cpus": os.cpu_count(), "seconds": a.seconds, "rounds": a.rounds, "results": summary}))


def plot(rows, path):
    """CPU per packet (and peak RSS) against distinct sources, one line per tool."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scaling = [r for r in rows if "distinct_sources" in r and r["trafgen_cpus"] == 1]
    if not scaling:
        sys.exit("--plot: no src* profile was measured with trafgen on one core")
    fig, (cpu, rss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for tool in sorted({r["tool"] for r in scaling}):
        pts = sorted((r["distinct_sources"], r["cpu_s_per_mpkt"] * 1000, r["peak_rss_mib"])
                     for r in scaling if r["tool"] == tool)
        xs = [p[0] for p in pts]
        cpu.plot(xs, [p[1] for p in pts], marker="o", label=tool)
        rss.plot(xs, [p[2] for p in pts], marker="o", label=tool)
    for ax, label in ((cpu, "CPU ns per packet (median)"), (rss, "peak RSS, MiB")):
        ax.set_xscale("log")
        ax.set_xlabel("distinct sources in a 64-byte UDP flood")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(bottom=0)
    cpu.legend()
    fig.suptitle(f"veth, trafgen on CPU 0, tool on CPU 1 ({platform.release()}, "
                 f"{datetime.date.today().isoformat()})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
