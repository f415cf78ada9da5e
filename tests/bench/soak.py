#!/usr/bin/env python3
"""Soak test: millions of frames of mixed traffic through the lab bridge (issue 9).

    sudo python3 tests/bench/soak.py                       # a quick check: 500,000 frames
    sudo python3 tests/bench/soak.py --frames 10000000     # the full soak (about 10-15 minutes here)

Builds a lab (netns-lab/netnslab.py: client <-> bridge(eth0, eth1) <-> server), runs
`ipsbridge run` with 2 workers (`--threads 2`), `bypass: user` (every frame reaches a
ring, so every frame is in the per-interface counters) and the benchmark's rules
(netns-lab/bench-100.rules plus netns-lab/bench-drop.rules), and drives mixed traffic
until the bridge has received N frames (eth0 and eth1 together):

- two paced iperf3 TCP streams, one each way (`--bulk-mbit`);
- ping every 5 ms;
- short TCP connections (connect, 200-byte request, 2 KiB answer, close; `--conns`/s);
- UDP request/answer flows, a new source port every 8 datagrams (`--udp-pps`), and one
  datagram in 100 to port 9999, which bench-drop.rules drops (so drops are in the counters).

Flow timeouts are shortened (`flow-timeouts` below: UDP 30 s, TCP closed 10 s, ...) so
the flow table reaches its steady state within the warm-up; Suricata's defaults (UDP
established 300 s) would make the heap grow, legitimately, for five minutes.

Every `--sample` seconds it reads the live counters from the control socket
(`dump-counters`, as `ipsbridge stats --json`) and each worker's memory from
/proc/PID/status.  At the end it prints, and checks (exit 1 when one fails):

- the counters balance exactly per interface, at every sample and in the final totals:
  received == forwarded + dropped + send_errors, and received == inspected + bypassed;
- kernel drops are reported (PACKET_STATISTICS `kernel_packets`/`kernel_drops`, per
  interface): halfway the workers are stopped for `--stall` seconds (SIGSTOP), the
  rings overflow, and the drops must show; and per interface every frame the kernel
  counted is accounted for: kernel_packets == received + ignored_outgoing +
  kernel_drops + ring_holes;
- no worker restarted, no inspector error, the drop rule dropped;
- the workers' heap (RssAnon) stays flat after the warm-up (the first 20 % of the
  frames, at least 30 s): its growth from the end of the warm-up to the end stays below
  `--rss-bound-mb` (default 16 MB: the tables are at their steady state, what moves is
  allocator noise), with the trend (MB per million frames, least squares) printed.

Runs niced (`--nice`, default 10) so it yields to other work on the machine.  Needs
root, iperf3 and ping (netns-lab/install.sh).  Nothing here is timed: rates are
printed, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
for _p in (str(REPO / "netns-lab"), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench import classification_file, vars_yaml  # netns-lab/bench.py
from netnslab import SERVER4, Lab, LabError, spawn_listener

from bridge.control import ControlClient, ControlError

RULE_FILES = (REPO / "netns-lab" / "bench-100.rules", REPO / "netns-lab" / "bench-drop.rules")
DROP_PORT = 9999                      # bench-drop.rules: UDP to this port is dropped
SHORT_PORT, UDP_PORT, IPERF_PORTS = 8080, 7000, (5201, 5202)

FLOW_TIMEOUTS = """flow-timeouts:
  default: {new: 10, established: 30, emergency-new: 5, emergency-established: 10}
  tcp: {new: 10, established: 120, closed: 10, emergency-new: 5, emergency-established: 30, emergency-closed: 5}
  udp: {new: 10, established: 30, emergency-new: 5, emergency-established: 10}
  icmp: {new: 10, established: 30, emergency-new: 5, emergency-established: 10}
"""

# Short TCP connections: the server answers every request with 2 KiB and closes.
SHORT_SERVER = r"""
import asyncio, sys
async def handle(r, w):
    try:
        await r.read(512)
        w.write(b"a" * 2048)
        await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    srv = await asyncio.start_server(handle, sys.argv[1], int(sys.argv[2]), backlog=512)
    print("listening", flush=True)
    await srv.serve_forever()
asyncio.run(main())
"""

SHORT_CLIENT = r"""
import socket, sys, time
host, port, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
print("listening", flush=True)
t0, n, fails = time.monotonic(), 0, 0
while True:
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"GET /soak HTTP/1.0\r\n" + b"x" * 180)
        while s.recv(65536):
            pass
        s.close()
    except OSError:
        fails += 1
    n += 1
    ahead = n / rate - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
"""

UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
while True:
    d, peer = s.recvfrom(4096)
    s.sendto(b"re:" + d, peer)
"""

# UDP flows: a new socket (source port) every 8 datagrams; one datagram in 100 goes to the
# dropped port.  Answers are read without waiting for them (a lost one costs nothing).
UDP_CLIENT = r"""
import socket, sys, time
host, port, drop_port, pps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
print("listening", flush=True)
t0, n, s = time.monotonic(), 0, None
while True:
    if n % 8 == 0:
        if s is not None:
            s.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
    try:
        s.sendto(b"soak %09d" % n, (host, drop_port if n % 100 == 99 else port))
        while True:
            s.recv(4096)
    except (BlockingIOError, OSError):
        pass
    n += 1
    if n % 16 == 0:
        ahead = n / pps - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
"""


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def memory(pid: int) -> dict[str, int]:
    """VmRSS and RssAnon of a process, in bytes (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {"VmRSS": 0, "RssAnon": 0}
    out = {}
    for key in ("VmRSS", "RssAnon"):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
        out[key] = int(m.group(1)) * 1024 if m else 0
    return out


def unbalanced(interfaces: dict) -> list[str]:
    """The interfaces whose counters do not add up (bridge/stats.py's equations)."""
    bad = []
    for name, c in interfaces.items():
        out = c["forwarded"] + sum(c["dropped"].values()) + sum(c["send_errors"].values())
        if c["received"] != out or c["received"] != c["inspected"] + c["bypassed"]:
            bad.append(f"{name}: received {c['received']}, forwarded+dropped+send_errors {out}, "
                       f"inspected+bypassed {c['inspected'] + c['bypassed']}")
    return bad


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def config(lab: Lab, bypass: str, threads: int) -> Path:
    ports = "".join(f"""  - interface: {a}
    copy-mode: ips
    copy-iface: {b}
    threads: {threads}
    bypass: {bypass}
""" for a, b in (("eth0", "eth1"), ("eth1", "eth0")))
    rules = "".join(f"  - {p}\n" for p in RULE_FILES)
    return lab.write("soak.yaml", vars_yaml() + f"classification-file: {classification_file()}\n"
                     + "af-packet:\n" + ports + "rule-files:\n" + rules + FLOW_TIMEOUTS)


def start_traffic(lab: Lab, args) -> None:
    """Every generator runs until the lab is torn down (killed by PID with its group)."""
    for port in IPERF_PORTS:
        lab.spawn("server", "iperf3", "-s", "-B", SERVER4, "-p", str(port))
    spawn_listener(lab, "server", SHORT_SERVER, SERVER4, str(SHORT_PORT))
    spawn_listener(lab, "server", UDP_ECHO, SERVER4, str(UDP_PORT))
    time.sleep(0.5)                                 # iperf3 servers listening
    day = str(24 * 3600)
    lab.spawn("client", "iperf3", "-c", SERVER4, "-p", str(IPERF_PORTS[0]), "-b", f"{args.bulk_mbit}M", "-t", day)
    lab.spawn("client", "iperf3", "-c", SERVER4, "-p", str(IPERF_PORTS[1]), "-b", f"{args.bulk_mbit}M", "-t", day,
              "-R")
    lab.spawn("client", "ping", "-q", "-n", "-i", "0.005", SERVER4)
    spawn_listener(lab, "client", SHORT_CLIENT, SERVER4, str(SHORT_PORT), str(args.conns))
    spawn_listener(lab, "client", UDP_CLIENT, SERVER4, str(UDP_PORT), str(DROP_PORT), str(args.udp_pps))


def soak(args) -> int:
    failures: list[str] = []
    samples: list[dict] = []
    with Lab("soak") as lab:
        sock = str(lab.workdir / "ctl.sock")
        bridge = lab.start_bridge("-c", str(config(lab, args.bypass, args.threads)), "--stats-interval", "0",
                                  "--unix-socket", sock, ready_timeout=120)
        (ready,) = bridge.events("ready")
        pids = list(ready["pids"])
        say(f"bridge ready: workers {pids}; traffic starting")
        start_traffic(lab, args)
        client = ControlClient(sock, timeout=30)
        t0 = time.monotonic()
        frames = 0
        stalled = False
        while frames < args.frames:
            time.sleep(args.sample)
            now = time.monotonic() - t0
            try:
                ok, d = client.command("dump-counters")
            except ControlError as e:
                failures.append(f"control socket: {e}")
                break
            if not ok:
                failures.append(f"dump-counters: {d}")
                break
            ifaces = d["interfaces"]
            frames = sum(c["received"] for c in ifaces.values())
            mem = {pid: memory(pid) for pid in pids}
            samples.append({"t": round(now, 1), "frames": frames, "memory": mem,
                            "kernel_drops": sum(c["kernel_drops"] for c in ifaces.values())})
            for bad in unbalanced(ifaces):
                failures.append(f"at {now:.0f} s: {bad}")
            rate = frames / now if now else 0
            say(f"{now:7.1f} s  {frames:>10,} frames  {rate:8,.0f}/s  kernel drops "
                f"{samples[-1]['kernel_drops']:,}  RssAnon "
                + " ".join(f"{m['RssAnon'] / 2**20:.1f}" for m in mem.values()) + " MB")
            if bridge.proc.poll() is not None:
                failures.append(f"the bridge exited with {bridge.proc.returncode}")
                break
            if args.stall and not stalled and frames >= args.frames // 2:
                # the workers stop for a moment: their rings overflow and the kernel drops
                stalled = True
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
                time.sleep(args.stall)
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
                say(f"stalled the workers for {args.stall} s (kernel drops expected)")
            if args.max_seconds and now > args.max_seconds:
                failures.append(f"only {frames:,} frames after {args.max_seconds} s (--max-seconds)")
                break
        client.close()
        elapsed = time.monotonic() - t0
        for proc in lab.procs:                      # the traffic first; the bridge drains and stops
            if proc is not bridge.proc:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(1)
        totals = bridge.stop(timeout=60)
    report = summarize(args, totals, samples, elapsed, failures)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 1 if failures else 0


def summarize(args, totals: dict, samples: list[dict], elapsed: float, failures: list[str]) -> dict:
    ifaces, insp = totals["interfaces"], totals["inspector"]
    failures.extend(f"final: {bad}" for bad in unbalanced(ifaces))
    frames = sum(c["received"] for c in ifaces.values())
    print(f"soak: {frames:,} frames in {elapsed:.0f} s ({frames / elapsed:,.0f}/s), {args.threads} workers, "
          f"bypass {args.bypass}, {len(samples)} samples")
    for name, c in sorted(ifaces.items()):
        dropped = sum(c["dropped"].values())
        errors = sum(c["send_errors"].values())
        print(f"  {name}: received {c['received']:,} = forwarded {c['forwarded']:,} + dropped {dropped:,} "
              f"{dict(c['dropped'])} + send errors {errors:,} {dict(c['send_errors'])}; "
              f"inspected {c['inspected']:,} + bypassed {c['bypassed']:,}; "
              f"kernel packets {c['kernel_packets']:,}, kernel drops {c['kernel_drops']:,}, "
              f"ring holes {c['ring_holes']:,}")
    keys = ("packets", "alerts", "drops", "flow.created", "flow.expired", "flow.evicted", "flow.active",
            "stream.sessions", "stream.memuse", "defrag.active", "thresholds.active", "bypass.installed",
            "bypass.active", "bypass.scan_installed", "engine.errors", "workers.restarts")
    print("  inspector: " + ", ".join(f"{k} {insp[k]:,}" for k in keys if k in insp))
    if insp.get("workers.restarts"):
        failures.append(f"workers restarted {insp['workers.restarts']} times")
    if insp.get("engine.errors"):
        failures.append(f"engine.errors {insp['engine.errors']}")
    if any(c["inspector_errors"] for c in ifaces.values()):
        failures.append("inspector errors: " + str({n: c["inspector_errors"] for n, c in ifaces.items()}))
    if not ifaces["eth0"]["dropped"].get("rule"):
        failures.append("the drop rule (UDP to port 9999) dropped nothing")
    for name, c in ifaces.items():
        # PACKET_STATISTICS: every frame the kernel counted reached the ring or was dropped
        seen = c["received"] + c["ignored_outgoing"] + c["kernel_drops"] + c["ring_holes"]
        if c["kernel_packets"] != seen:
            failures.append(f"{name}: kernel_packets {c['kernel_packets']:,} but received + ignored_outgoing + "
                            f"kernel_drops + ring_holes {seen:,}")
    if args.stall and not sum(c["kernel_drops"] for c in ifaces.values()):
        failures.append(f"no kernel drops reported after stalling the workers for {args.stall} s")
    if frames < args.frames:
        failures.append(f"{frames:,} frames, fewer than --frames {args.frames:,}")

    memory_report = {}
    warm_frames = max(args.frames * args.warmup, 0)
    warm = [s for s in samples if s["frames"] >= warm_frames and s["t"] >= args.warmup_seconds]
    if len(warm) < 3:
        failures.append(f"only {len(warm)} samples after the warm-up: run longer (--frames) or sample more often")
    else:
        for pid in warm[0]["memory"]:
            start = warm[0]["memory"][pid]["RssAnon"]
            series = [(s["frames"] / 1e6, s["memory"][pid]["RssAnon"] / 2**20) for s in warm]
            end, peak = warm[-1]["memory"][pid]["RssAnon"], max(s["memory"][pid]["RssAnon"] for s in warm)
            first = samples[0]["memory"][pid]["RssAnon"]
            trend = slope(series)
            memory_report[pid] = {"first": first, "warm": start, "end": end, "peak": peak,
                                  "mb_per_million_frames": round(trend, 3)}
            print(f"  worker {pid}: RssAnon {first / 2**20:.1f} MB at the first sample, {start / 2**20:.1f} after "
                  f"the warm-up ({warm[0]['frames']:,} frames, {warm[0]['t']:.0f} s), {end / 2**20:.1f} at the end, "
                  f"peak {peak / 2**20:.1f}; trend after the warm-up {trend:+.2f} MB per million frames")
            if peak - start > args.rss_bound_mb * 2**20:
                failures.append(f"worker {pid}: RssAnon grew {(peak - start) / 2**20:.1f} MB after the warm-up "
                                f"(bound {args.rss_bound_mb} MB)")
    for f in failures:
        print(f"FAILED: {f}")
    print("soak: " + ("FAILED" if failures else "passed"))
    return {"frames": frames, "seconds": round(elapsed, 1), "args": vars(args), "totals": totals,
            "samples": samples, "memory": memory_report, "failures": failures}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=500_000, help="frames the bridge must receive, eth0 and eth1 "
                   "together (default 500,000: a quick check of about a minute; the soak is 10,000,000)")
    p.add_argument("--threads", type=int, default=2, help="workers per interface (default 2)")
    p.add_argument("--bypass", choices=("user", "off", "kernel"), default="user",
                   help="af-packet bypass (default user: every frame in the interface counters; with kernel "
                        "the offloaded frames are only in bypass.kernel.* and do not count towards --frames)")
    p.add_argument("--bulk-mbit", type=int, default=40, help="each iperf3 stream's rate, Mbit/s (default 40)")
    p.add_argument("--conns", type=float, default=150, help="short TCP connections per second (default 150)")
    p.add_argument("--udp-pps", type=float, default=2000, help="UDP datagrams per second (default 2000)")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--warmup", type=float, default=0.2, help="fraction of --frames that is warm-up (default 0.2)")
    p.add_argument("--warmup-seconds", type=float, default=30, help="and at least this long (default 30: the "
                   "shortened flow timeouts reach their steady state)")
    p.add_argument("--rss-bound-mb", type=float, default=16, help="heap growth allowed after the warm-up, per "
                   "worker (default 16 MB)")
    p.add_argument("--stall", type=float, default=2.0, help="halfway, stop the workers (SIGSTOP) this long so "
                   "the rings overflow and the kernel drops, which the counters must report (default 2; 0: no)")
    p.add_argument("--max-seconds", type=float, default=0, help="give up after this long (default: never)")
    p.add_argument("--nice", type=int, default=10, help="niceness of the run and everything it starts (default 10)")
    p.add_argument("--json", metavar="FILE", help="also write the samples, totals and results as JSON")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        say("soak.py: needs root (network namespaces, AF_PACKET)")
        return 2
    if args.nice:
        os.nice(args.nice)
    try:
        return soak(args)
    except LabError as e:
        say(f"soak.py: the lab failed: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
