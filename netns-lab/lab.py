#!/usr/bin/env python3
"""ipsbridge in a three-namespace lab: see it drop traffic, try your own config, measure it.

    client ns                bridge ns                  server ns
    veth0 198.51.100.1 --- eth0  [ipsbridge]  eth1 --- veth0 198.51.100.2
          2001:db8::1                                        2001:db8::2

Run as root from anywhere (the repository is found from this file).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(HERE), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

import netnslab  # noqa: E402
from netnslab import CLIENT4, CLIENT6, SERVER4, SERVER6, LabError  # noqa: E402

DEMO_RULES = REPO / "conf" / "example.rules"
DEMO_HOOK = "tests.lab.flowhooks:demo_policy"
MARKER = "EVIL-PAYLOAD"

EPILOG = """\
commands:
  demo      build the lab, run ipsbridge with conf/example.rules, send real traffic
            (ping, TCP, UDP, a TCP payload with a blocked marker), print what was
            sent, what arrived and what the bridge dropped or alerted on; exit 0
            when everything behaved as the rules say, 1 otherwise
  up        build the lab (optionally start ipsbridge in it), print how to enter
            the namespaces, keep it until Ctrl-C, then tear it down
  cleanup   remove lab namespaces left behind by crashed runs
  bench     the kernel bridge, Suricata 7 (if installed) and ipsbridge (bypass on
            and off) in one run on the same rules: TCP throughput, 64-byte UDP
            packet rate, HTTP short flows (nginx + wrk), RTT, CPU per packet,
            drop checks; ratios to Suricata and to the kernel bridge
            ('lab.py bench --help' for its options)

examples:
  sudo python3 netns-lab/lab.py demo
  sudo python3 netns-lab/lab.py demo --mode tap --threads 2
  sudo python3 netns-lab/lab.py up -c conf/ipsbridge.yaml
  sudo python3 netns-lab/lab.py cleanup --all
  sudo python3 netns-lab/lab.py bench --rounds 3 --rules netns-lab/bench-100.rules
  sudo python3 netns-lab/lab.py bench --rounds 3 --rules etopen --json bench.json
  sudo python3 netns-lab/lab.py bench --only tcp,http --contenders suricata,ipsbridge
"""


# ------------------------------------------------------------------ demo traffic
MARKER_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(30)
print("listening", flush=True)
c, _ = s.accept(); c.settimeout(3)
got = b""
try:
    while True:
        d = c.recv(4096)
        if not d:
            break
        got += d
except socket.timeout:
    pass
print(got.decode(errors="replace").replace("\n", "|"), flush=True)
"""

MARKER_CLIENT = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"hello\n"); time.sleep(0.3)
s.sendall(b"here comes EVIL-PAYLOAD\n"); time.sleep(0.3)
s.sendall(b"bye\n"); time.sleep(0.5)
s.close()
"""


@dataclass
class Step:
    name: str
    sent: str
    arrived: str
    expected: str
    ok: bool


def _ping_counts(proc) -> tuple[int, int]:
    m = re.search(r"(\d+) packets transmitted, (\d+) received", proc.stdout)
    return (int(m[1]), int(m[2])) if m else (0, 0)


def run_demo_traffic(lab: netnslab.Lab, mode: str, rules: bool = False) -> list[Step]:
    ips = mode == "ips"
    steps: list[Step] = []

    for name, dest in (("ping IPv4", SERVER4), ("ping IPv6", SERVER6)):
        tx, rx = _ping_counts(lab.ping("client", dest, count=5, check=False))
        # conf/example.rules alerts on ICMPv4 echo (itype:8); ICMPv6 echo is type 128
        alerted = rules and dest == SERVER4
        steps.append(Step(name, f"{tx} echo requests", f"{rx} replies", "all, alerted" if alerted else "all", tx == rx == 5))

    size = 4 * 1024 * 1024
    sent, received = netnslab.tcp_transfer(lab, SERVER4, size, port=5001)
    same = sent == received and sent.split()[0] == str(size)
    steps.append(Step("TCP 4 MiB", f"{size} bytes", f"{received.split()[0]} bytes, sha256 "
                      + ("equal" if same else "DIFFERENT"), "all, same sha256", same))

    n = 200
    distinct, _ = netnslab.udp_burst(lab, SERVER4, 7000, n)
    steps.append(Step("UDP to port 7000", f"{n} datagrams", f"{distinct}", "all", distinct == n))
    distinct, _ = netnslab.udp_burst(lab, SERVER4, 9999, n)
    want = 0 if ips else n
    steps.append(Step("UDP to port 9999", f"{n} datagrams", f"{distinct}",
                      "none (dropped)" if ips else "all (tap: would drop)", distinct == want))

    server = netnslab.spawn_listener(lab, "server", MARKER_SERVER, SERVER4, "5005")
    lab.python("client", MARKER_CLIENT, SERVER4, "5005", check=False)
    got = netnslab.finish(server, timeout=30)
    hello, marker = "hello" in got, MARKER in got
    ok = hello and (marker != ips)
    arrived = ("hello" if hello else "nothing") + (f" + {MARKER}" if marker else f", no {MARKER}")
    steps.append(Step(f"TCP with {MARKER}", "hello, marker, bye", arrived,
                      f"hello, no {MARKER}" if ips else f"hello + {MARKER} (tap)", ok))
    return steps


def read_eve(path: Path) -> dict[str, int]:
    """Alert counts by 'sid:action' from an EVE file ({} when there is none)."""
    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    for line in path.read_text().splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event_type") == "alert":
            a = ev.get("alert", {})
            key = f"{a.get('signature_id')} {a.get('action')} {a.get('signature', '')}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print(line)
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def rule_engine_available() -> bool:
    return importlib.util.find_spec("rules.engine") is not None


def cmd_demo(args) -> int:
    netnslab.cleanup_stale("ipsbdemo")
    use_rules = args.rules is not None or (not args.hook and rule_engine_available())
    with netnslab.Lab("ipsbdemo") as lab:
        eve = lab.workdir / "eve.json"
        bridge_args = ["--bridge", "eth0:eth1", "--mode", args.mode, "--threads", str(args.threads),
                       "--stats-interval", "0"]
        if use_rules:
            rules = Path(args.rules or DEMO_RULES).resolve()
            bridge_args += ["-S", str(rules), "--eve", str(eve)]
            policy = f"rules {rules}"
        else:
            bridge_args += ["--verdict-hook", DEMO_HOOK]
            policy = f"verdict hook {DEMO_HOOK} (rule engine not available: same policy as conf/example.rules)"
        print(f"lab: client {lab.client}, bridge {lab.bridge}, server {lab.server}")
        print(f"ipsbridge run {' '.join(bridge_args)}")
        print(f"policy: {policy}\n")
        bridge = lab.start_bridge(*bridge_args)
        try:
            steps = run_demo_traffic(lab, args.mode, use_rules)
        except LabError as exc:
            print(f"demo traffic failed: {exc}", file=sys.stderr)
            bridge.kill()
            return 1
        time.sleep(0.3)                       # let the last frames reach the EVE file
        alive = bridge.proc.poll() is None
        totals = bridge.stop()

        print_table([[s.name, s.sent, s.arrived, s.expected, "ok" if s.ok else "FAILED"] for s in steps],
                    ["traffic", "sent", "arrived at server", "expected", "result"])
        print()
        rows = []
        for name in ("eth0", "eth1"):
            c = totals["interfaces"][name]
            rows.append([name, c["received"], c["forwarded"],
                         ", ".join(f"{k}={v}" for k, v in c["dropped"].items()) or "0",
                         ", ".join(f"{k}={v}" for k, v in c["would_drop"].items()) or "0",
                         ", ".join(f"{k}={v}" for k, v in c["send_errors"].items()) or "0"])
        print("bridge counters (frames)")
        print_table(rows, ["port", "received", "forwarded", "dropped", "would drop (tap)", "send errors"])
        insp = {k: v for k, v in totals.get("inspector", {}).items() if v}
        if insp:
            print("inspector: " + ", ".join(f"{k}={v}" for k, v in sorted(insp.items())))
        alerts = read_eve(eve)
        if use_rules:
            print()
            if alerts:
                print_table([[k.split(" ", 2)[0], k.split(" ", 2)[1], k.split(" ", 2)[2], v]
                             for k, v in sorted(alerts.items())], ["sid", "action", "msg", "alerts"])
            else:
                print(f"EVE: no alerts in {eve}")

        checks = [s.ok for s in steps] + [alive]
        eth0 = totals["interfaces"]["eth0"]
        dropped = sum(eth0["dropped"].values())
        would = sum(eth0["would_drop"].values())
        if args.mode == "ips":
            checks.append(dropped >= 200)            # the UDP 9999 burst at least, counted
        else:
            checks.append(dropped == 0 and would >= 200)
        if use_rules:
            sids = {k.split(" ", 1)[0] for k in alerts}
            checks.append({"1000001", "1000002", "1000004"} <= sids)
        ok = all(checks)
        print()
        print("demo: " + ("everything behaved as the policy says" if ok else "SOMETHING DID NOT BEHAVE AS EXPECTED"))
        if args.keep:
            keep_until_interrupt(lab, start_hint=False)
    return 0 if ok else 1


# ------------------------------------------------------------------ up / cleanup
def keep_until_interrupt(lab: netnslab.Lab, *, start_hint: bool = True) -> None:
    print(f"""
lab is up (Ctrl-C tears it down):
  client  {lab.client:<28} veth0 {CLIENT4}/24 {CLIENT6}/64
  bridge  {lab.bridge:<28} eth0 (client side), eth1 (server side), no addresses
  server  {lab.server:<28} veth0 {SERVER4}/24 {SERVER6}/64

enter a namespace:   ip netns exec {lab.client} bash
try it:              ip netns exec {lab.client} ping {SERVER4}""")
    if start_hint:
        print(f"run the bridge:      cd {REPO} && ip netns exec {lab.bridge} python3 -m bridge run "
              "--bridge eth0:eth1 [-c FILE] [-S RULES]")
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("\ntearing the lab down")


def cmd_up(args) -> int:
    with netnslab.Lab(args.prefix) as lab:
        bridge = None
        if args.config or args.rules or args.start:
            bargs = ["--threads", str(args.threads)]
            if args.config:
                bargs += ["-c", str(Path(args.config).resolve())]
            if not args.config or args.start:
                bargs += ["--bridge", "eth0:eth1"]
            for r in args.rules:
                bargs += ["-S", str(Path(r).resolve())]
            bridge = lab.start_bridge(*bargs)
            print(f"ipsbridge running in {lab.bridge} (pid {bridge.pid}): ipsbridge run {' '.join(bargs)}")
        keep_until_interrupt(lab, start_hint=bridge is None)
        if bridge is not None:
            try:
                totals = bridge.stop()
                print(json.dumps(totals["interfaces"], indent=2))
            except LabError as exc:
                print(exc, file=sys.stderr)
    return 0


def cmd_cleanup(args) -> int:
    removed = netnslab.cleanup_stale(args.prefix, all_owners=args.all)
    for name in removed:
        print(f"removed {name}")
    if not removed:
        print("nothing to remove" + ("" if args.all else " (namespaces of running labs are kept; --all removes them)"))
    return 0


def cmd_bench(args) -> int:
    import bench

    return bench.main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lab.py", description=__doc__.split("\n\n")[0],
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="show ipsbridge dropping and passing real traffic",
                       description="Build the lab, run ipsbridge with the example rules, send traffic, "
                       "print the outcome, tear down.  Exit 0 if everything behaved as expected.")
    d.add_argument("--mode", choices=("ips", "tap"), default="ips",
                   help="ips drops what the rules drop; tap forwards everything and only counts (default: ips)")
    d.add_argument("--threads", type=int, default=1, help="workers per interface (default: 1)")
    d.add_argument("--keep", action="store_true", help="keep the lab up after the demo until Ctrl-C")
    d.add_argument("-S", "--rules", metavar="FILE", default=None,
                   help=f"rule file (default: {DEMO_RULES.relative_to(REPO)}; the expectations assume it)")
    d.add_argument("--hook", action="store_true",
                   help=f"use the verdict hook {DEMO_HOOK} instead of the rule engine")
    d.set_defaults(func=cmd_demo)

    u = sub.add_parser("up", help="build the lab and keep it until Ctrl-C",
                       description="Build the lab, print the namespace names and how to enter them; with "
                       "-c/-S/--start also run ipsbridge in the bridge namespace.  Ctrl-C tears it all down.")
    u.add_argument("--threads", type=int, default=1, help="workers per interface when starting ipsbridge")
    u.add_argument("-c", "--config", metavar="FILE", help="start ipsbridge with this YAML configuration")
    u.add_argument("-S", "--rules", metavar="FILE", action="append", default=[],
                   help="start ipsbridge with this rule file (repeatable)")
    u.add_argument("--start", action="store_true", help="start ipsbridge --bridge eth0:eth1")
    u.add_argument("--prefix", default="ipsblab", help="namespace name prefix (default: ipsblab)")
    u.set_defaults(func=cmd_up)

    c = sub.add_parser("cleanup", help="remove namespaces left behind by crashed lab runs",
                       description="Remove lab namespaces whose owning process is gone (with --all: "
                       "every lab namespace, also those of running labs), killing what runs in them.")
    c.add_argument("--all", action="store_true", help="also remove namespaces of labs still running")
    c.add_argument("--prefix", default=None, help="only namespaces with this prefix (default: any lab's)")
    c.set_defaults(func=cmd_cleanup)

    b = sub.add_parser("bench", help="benchmark against the kernel bridge and Suricata", add_help=False,
                       description="Arguments are passed to netns-lab/bench.py (see 'lab.py bench --help').")
    b.add_argument("bench_args", nargs=argparse.REMAINDER)
    b.set_defaults(func=cmd_bench)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:                 # everything after 'bench' belongs to bench.py
        import bench

        return bench.main(argv[1:])
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0:
        print("lab.py: needs root (network namespaces, AF_PACKET)", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except LabError as exc:
        print(f"lab.py {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
