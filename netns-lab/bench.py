#!/usr/bin/env python3
"""Benchmark: ipsbridge against the kernel bridge (and Suricata 7 AF_PACKET IPS
when /usr/bin/suricata exists), one after the other in the same lab.

For each contender: TCP throughput (iperf3, 1 stream), 64-byte-frame UDP
(a tight Python UDP sender for the same time, 18-byte payloads: sent,
delivered, loss; sender-bound near 100k pps on a small machine), RTT p50/p99 (500 pings at 2 ms),
and CPU per frame of the forwarding process(es) (utime+stime from /proc over
the frames the bridge ports received); RTT first, then TCP, then the UDP flood,
then 5 pings to see that forwarding recovered from the flood.  Prints a table and the ratios to the
kernel bridge and to Suricata.  Asserts nothing: the numbers are the result.

`--rules FILE` gives the same rule file to ipsbridge (-S) and Suricata (its
rule-files), HOME_NET any for both.  `--rounds N` measures every contender N
times, interleaved (round 1 all contenders, round 2 all, ...), and reports the
median of each number, so one noisy run on a shared machine moves nothing.

    sudo python3 netns-lab/bench.py [--seconds 5] [--rounds 3] [--rules FILE]
                                    [--only ipsbridge,kernel,suricata] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import netnslab  # noqa: E402
from netnslab import SERVER4, LabError  # noqa: E402

SURICATA = "/usr/bin/suricata"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGETS = {"tcp": 0.6, "pps": 0.6, "rtt_added_us": 150.0}


# ------------------------------------------------------------------ process CPU
def tree_pids(root: int) -> list[int]:
    """root and all its descendants (from /proc/*/stat parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])       # utime, stime (fields 14 and 15)
    return total / CLK_TCK


# ------------------------------------------------------------------ contenders
class Contender:
    name = "?"

    def __init__(self, lab: netnslab.Lab):
        self.lab = lab

    def start(self) -> None: ...
    def stop(self) -> dict: return {}

    def pids(self) -> list[int]:
        return []


class IpsBridge(Contender):
    def __init__(self, lab, threads: int, rules: Path | None = None):
        super().__init__(lab)
        self.threads = threads
        self.rules = rules
        self.name = f"ipsbridge (threads {threads})"

    def start(self):
        extra = ("-S", str(self.rules)) if self.rules else ()
        self.proc = self.lab.start_bridge("--bridge", "eth0:eth1", "--threads", str(self.threads),
                                          "--stats-interval", "0", *extra)

    def pids(self):
        return tree_pids(self.proc.pid)

    def stop(self):
        totals = self.proc.stop()
        return {k: {"kernel_drops": v["kernel_drops"], "send_errors": v["send_errors"]}
                for k, v in totals["interfaces"].items()}


class KernelBridge(Contender):
    name = "kernel bridge"

    def start(self):
        run = self.lab.run
        run("bridge", "ip", "link", "add", "br0", "type", "bridge", "stp_state", "0")
        run("bridge", "ip", "link", "set", "eth0", "master", "br0")
        run("bridge", "ip", "link", "set", "eth1", "master", "br0")
        run("bridge", "ip", "link", "set", "br0", "up")

    def stop(self):
        self.lab.run("bridge", "ip", "link", "del", "br0")
        return {}


SURICATA_YAML = """%YAML 1.1
---
# Minimal inline AF_PACKET set-up for the benchmark: eth0 <-> eth1, one
# thread each, V2 rings (no block latency), an empty rule file, no outputs.
vars:
  address-groups: {{HOME_NET: "any", EXTERNAL_NET: "any"}}
  port-groups: {{}}
default-log-dir: {workdir}
default-rule-path: {workdir}
rule-files: [empty.rules]
classification-file: {workdir}/classification.config
reference-config-file: {workdir}/reference.config
outputs: []
logging:
  default-log-level: notice
  outputs:
    - console: {{enabled: yes}}
af-packet:
  - interface: eth0
    copy-mode: ips
    copy-iface: eth1
    threads: 1
    cluster-id: 97
    cluster-type: cluster_flow
    use-mmap: yes
    tpacket-v3: no
    defrag: no
    checksum-checks: no
  - interface: eth1
    copy-mode: ips
    copy-iface: eth0
    threads: 1
    cluster-id: 96
    cluster-type: cluster_flow
    use-mmap: yes
    tpacket-v3: no
    defrag: no
    checksum-checks: no
"""


class Suricata(Contender):
    name = "suricata 7 af-packet ips"

    def __init__(self, lab, rules: Path | None = None):
        super().__init__(lab)
        self.rules = rules

    def start(self):
        wd = self.lab.workdir / "suricata"
        wd.mkdir(exist_ok=True)
        for f in ("empty.rules", "classification.config", "reference.config"):
            (wd / f).write_text("")
        if self.rules:          # the same rules as ipsbridge, under the file name the config names
            (wd / "empty.rules").write_text(self.rules.read_text())
        cfg = wd / "bench.yaml"
        cfg.write_text(SURICATA_YAML.format(workdir=wd))
        self.log = wd / "console.log"
        self.proc = self.lab.spawn("bridge", SURICATA, "-c", str(cfg), "--af-packet", "-k", "none",
                                   "--runmode", "workers", "-l", str(wd),
                                   stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"suricata exited {self.proc.returncode}:\n{self.log.read_text()}")
            text = self.log.read_text()
            if "threads are running" in text or "Engine started" in text:
                break
            time.sleep(0.2)
        else:
            raise LabError(f"suricata not running after 60 s:\n{self.log.read_text()}")
        time.sleep(0.5)

    def pids(self):
        return tree_pids(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return {}


# ------------------------------------------------------------------ measurements
def port_frames(lab) -> int:
    """Frames received by the two bridge ports so far (what a forwarder must handle)."""
    out = lab.run("bridge", "cat", "/sys/class/net/eth0/statistics/rx_packets",
                  "/sys/class/net/eth1/statistics/rx_packets").stdout.split()
    return sum(int(x) for x in out)


def iperf(lab, seconds: int, *extra: str) -> dict:
    server = lab.spawn("server", "iperf3", "-s", "-1", "-B", SERVER4, "-p", "5201")
    time.sleep(0.3)
    try:
        proc = lab.run("client", "iperf3", "-c", SERVER4, "-p", "5201", "-t", str(seconds), "-J", *extra,
                       check=False, timeout=seconds + 60)
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise LabError(f"iperf3 {' '.join(extra)}: {proc.stdout[-500:]} {proc.stderr[-500:]}") from exc


UDP_SINK = r"""
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
n = 0
select.select([s], [], [], 60)
s.setblocking(False)
while True:
    try:
        while True:
            s.recv(64); n += 1
    except BlockingIOError:
        pass
    if not select.select([s], [], [], 1.0)[0]:
        break
print(n, flush=True)
"""

UDP_BLAST = r"""
import socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, port))
payload = b"x" * 18                     # 18 + 8 + 20 + 14 = 60 bytes: a 64-byte frame on the wire
send = s.send
n = 0
t0 = time.monotonic()
end = t0 + secs
while True:
    for _ in range(256):
        try:
            send(payload); n += 1
        except OSError:
            pass
    if time.monotonic() >= end:
        break
print(n, time.monotonic() - t0, flush=True)
"""


def udp_blast(lab, seconds: int) -> tuple[int, int, float]:
    """64-byte frames client -> server as fast as one Python sender goes: (sent, delivered, seconds)."""
    sink = netnslab.spawn_listener(lab, "server", UDP_SINK, SERVER4, "5300")
    out = lab.run("client", sys.executable, "-c", UDP_BLAST, SERVER4, "5300", str(seconds),
                  timeout=seconds + 60).stdout.split()
    delivered = int(netnslab.finish(sink, timeout=90))
    return int(out[0]), delivered, float(out[1])


def measure(lab, contender: Contender, seconds: int) -> dict:
    res: dict = {"name": contender.name}
    lab.ping("client", SERVER4, count=3, interval=0.2)

    def run_with_cpu(fn):
        pids = contender.pids()
        f0, c0 = port_frames(lab), cpu_seconds(pids)
        out = fn()
        f1, c1 = port_frames(lab), cpu_seconds(contender.pids() or pids)
        frames = f1 - f0
        cpu = (c1 - c0) * 1e6 / frames if pids and frames else None
        return out, frames, cpu

    ping = lab.run("client", "ping", "-n", "-i", "0.002", "-c", "500", "-W", "1", SERVER4,
                   check=False, timeout=60)
    rtts = sorted(float(x) * 1000 for x in re.findall(r"time=([\d.]+) ms", ping.stdout))
    if len(rtts) < 100:
        raise LabError(f"ping: only {len(rtts)} replies\n{ping.stdout[-500:]}")
    res["rtt_replies"] = len(rtts)
    res["rtt_p50_us"] = statistics.median(rtts)
    res["rtt_p99_us"] = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]

    tcp, frames, cpu = run_with_cpu(lambda: iperf(lab, seconds))
    if "error" in tcp:
        raise LabError(f"iperf3 TCP: {tcp['error']}")
    res["tcp_gbps"] = tcp["end"]["sum_received"]["bits_per_second"] / 1e9
    res["tcp_retrans"] = tcp["end"]["sum_sent"].get("retransmits", 0)
    res["tcp_cpu_us_frame"] = cpu

    udp, frames, cpu = run_with_cpu(lambda: udp_blast(lab, seconds))
    sent, delivered, secs = udp
    res["udp_sent"] = sent
    res["udp_delivered"] = delivered
    res["udp_loss_pct"] = 100.0 * (sent - delivered) / sent if sent else 0.0
    res["udp_delivered_pps"] = delivered / secs
    res["udp_cpu_us_frame"] = cpu

    after = lab.ping("client", SERVER4, count=5, interval=0.2, check=False)
    m = re.search(r"(\d+) received", after.stdout)
    res["after_flood"] = f"{m[1] if m else 0}/5"
    return res


# ------------------------------------------------------------------ report
def fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def report(results: list[dict], seconds: int, rounds: int = 1) -> None:
    cols = [("contender", "name", "s"), ("TCP Gbit/s", "tcp_gbps", ".3f"), ("retrans", "tcp_retrans", "d"),
            ("UDP64 sent", "udp_sent", "d"), ("delivered", "udp_delivered", "d"),
            ("loss %", "udp_loss_pct", ".1f"), ("delivered pps", "udp_delivered_pps", ",.0f"),
            ("RTT p50 us", "rtt_p50_us", ".0f"), ("RTT p99 us", "rtt_p99_us", ".0f"),
            ("CPU us/frame TCP", "tcp_cpu_us_frame", ".2f"), ("CPU us/frame UDP64", "udp_cpu_us_frame", ".2f"),
            ("pings after flood", "after_flood", "s")]
    rows = [[fmt(r.get(k), f) if k != "name" else r[k] for _, k, f in cols] for r in results]
    header = [c for c, _, _ in cols]
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    print(f"\nbenchmark: {seconds} s per TCP and UDP run, {os.cpu_count()} CPUs, kernel {os.uname().release}"
          + (f"; medians of {rounds} rounds" if rounds > 1 else ""))
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))

    sur = next((r for r in results if r["name"].startswith("suricata")), None)
    if sur is not None:
        print("\nratios to Suricata (higher is better for ipsbridge; RTT and CPU: lower is better)")
        for r in results:
            if r is sur or r["name"] == "kernel bridge":
                continue
            parts = []
            for label, key in (("TCP", "tcp_gbps"), ("64-B pps", "udp_delivered_pps"), ("RTT p50", "rtt_p50_us"),
                               ("CPU/frame TCP", "tcp_cpu_us_frame"), ("CPU/frame UDP", "udp_cpu_us_frame")):
                a, b = r.get(key), sur.get(key)
                parts.append(f"{label} {fmt(a / b if a is not None and b else None, '.2f')}x")
            print(f"  {r['name']}: " + ", ".join(parts))
    kernel = next((r for r in results if r["name"] == "kernel bridge"), None)
    if kernel is None:
        return
    print("\nratios to the kernel bridge (issue targets: TCP >= 0.6x, 64-B pps >= 0.6x, RTT p50 added <= 150 us)")
    for r in results:
        if r is kernel:
            continue
        tcp = r["tcp_gbps"] / kernel["tcp_gbps"] if kernel["tcp_gbps"] else None
        pps = r["udp_delivered_pps"] / kernel["udp_delivered_pps"] if kernel["udp_delivered_pps"] else None
        added = r["rtt_p50_us"] - kernel["rtt_p50_us"]
        verdict = [
            f"TCP {fmt(tcp, '.2f')}x ({'meets' if tcp and tcp >= TARGETS['tcp'] else 'below'} 0.6x)",
            f"pps {fmt(pps, '.2f')}x ({'meets' if pps and pps >= TARGETS['pps'] else 'below'} 0.6x)",
            f"RTT p50 +{added:.0f} us ({'meets' if added <= TARGETS['rtt_added_us'] else 'over'} 150 us)",
        ]
        print(f"  {r['name']}: " + "; ".join(verdict))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="length of each iperf3 run (default: 5)")
    ap.add_argument("--threads", type=int, default=1, help="ipsbridge workers per interface (default: 1)")
    ap.add_argument("--only", default="ipsbridge,kernel,suricata",
                    help="comma-separated contenders (default: ipsbridge,kernel,suricata; "
                    "suricata only if /usr/bin/suricata exists)")
    ap.add_argument("--rounds", type=int, default=1, help="measure each contender N times, interleaved, "
                    "and report medians (default: 1)")
    ap.add_argument("--rules", metavar="FILE", type=Path,
                    help="rule file for ipsbridge (-S) and Suricata alike (default: no rules)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.py: needs root", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print("bench.py: --rounds must be at least 1", file=sys.stderr)
        return 2
    rules = args.rules.resolve() if args.rules else None
    if rules is not None and not rules.is_file():
        print(f"bench.py: --rules {args.rules}: no such file", file=sys.stderr)
        return 2
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    runs: dict[str, list[dict]] = {}
    with netnslab.Lab("ipsbench") as lab:
        makers = {"ipsbridge": lambda: IpsBridge(lab, args.threads, rules), "kernel": lambda: KernelBridge(lab),
                  "suricata": lambda: Suricata(lab, rules)}
        for key in list(wanted):
            if key not in makers:
                print(f"bench.py: unknown contender {key!r}", file=sys.stderr)
                return 2
            if key == "suricata" and not os.access(SURICATA, os.X_OK):
                print(f"(skipping suricata: {SURICATA} not installed; install.sh --with-suricata)")
                wanted.remove(key)
        for rnd in range(1, args.rounds + 1):
            for key in wanted:
                c = makers[key]()
                print(f"round {rnd}/{args.rounds}: measuring {c.name} ...", flush=True)
                c.start()
                try:
                    res = measure(lab, c, args.seconds)
                finally:
                    extra = c.stop()
                if extra:
                    res["bridge_counters"] = extra
                runs.setdefault(c.name, []).append(res)
    results = [median_of(rs) for rs in runs.values()]
    if rules is not None:
        print(f"rules: {rules} (the same file for ipsbridge and Suricata)")
    report(results, args.seconds, args.rounds)
    if args.json:
        Path(args.json).write_text(json.dumps({"medians": results, "rounds": runs}, indent=2))
    return 0


def median_of(rounds: list[dict]) -> dict:
    """Each number the median over the rounds (the name and texts from the first round)."""
    out = dict(rounds[0])
    for k, v in rounds[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = [r[k] for r in rounds if isinstance(r.get(k), (int, float))]
            out[k] = statistics.median(vals) if vals else None
    return out


if __name__ == "__main__":
    sys.exit(main())
