#!/usr/bin/env python3
"""Generate seeded, synthetic Suricata-language rules for the engine benchmark.

    python3 tests/bench/gen_rules.py COUNT [--seed N] [--sid-base 9000000] > synthetic.rules

The mix resembles a real rule set's shape, not its content: mostly TCP and UDP
rules on common ports with one or two literals (some caseless, some relative,
some with a pcre after the literal), a few header-only rules (flags, itype,
dsize) and a few `ip any` rules.  Literals are random lowercase/digit strings,
and the header-only rules ask for flag combinations and sizes the
traffic does not have, so they almost never match the benchmark traffic: the numbers measure the cost
of *not* matching, which is what an IPS pays on nearly every packet.
"""
from __future__ import annotations

import argparse
import random
import string

TCP_PORTS = ["80", "443", "8080", "25", "21", "22", "445", "3389", "any", "any", "$HTTP_PORTS", "[80,8080,8000:8090]", "1024:"]
UDP_PORTS = ["53", "123", "161", "69", "any", "any", "5060", "[1900,5353]"]
ADDRS = ["any", "any", "$HOME_NET", "$EXTERNAL_NET", "203.0.113.0/24", "![198.51.100.0/28]"]


def literal(rng: random.Random) -> str:
    n = rng.randint(4, 12)
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def hexlit(rng: random.Random) -> str:
    return "|" + " ".join(f"{rng.randrange(256):02x}" for _ in range(rng.randint(3, 6))) + "|"


def one_rule(rng: random.Random, sid: int) -> str:
    r = rng.random()
    opts: list[str] = [f'msg:"SYNTH {sid}"']
    if r < 0.60:
        proto, ports = "tcp", TCP_PORTS
    elif r < 0.85:
        proto, ports = "udp", UDP_PORTS
    elif r < 0.93:
        proto, ports = "ip", ["any"]
    else:
        proto, ports = "icmp", ["any"]
    src, dst = rng.choice(ADDRS), rng.choice(ADDRS)
    sport, dport = "any", rng.choice(ports)
    if rng.random() < 0.15 and proto in ("tcp", "udp"):
        sport, dport = dport, "any"          # a response-side rule
    kind = rng.random()
    if proto == "icmp":
        opts.append(f"itype:{rng.choice([0, 3, 8, 11])}")
        opts.append(f'content:"{literal(rng)}"')
    elif kind < 0.02 and proto == "tcp":
        opts.append(f"flags:{rng.choice(['FPU', 'SF', 'SR', 'FPU,12'])}")   # header-only, odd combinations
    elif kind < 0.03:
        opts.append(f"dsize:>{rng.randint(1460, 1500)}")               # header-only, above the traffic's MSS
    else:
        if proto == "tcp" and rng.random() < 0.6:
            opts.append(rng.choice(["flow:established,to_server", "flow:established,to_client", "flow:to_server"]))
        lit = hexlit(rng) if rng.random() < 0.1 else literal(rng)
        opts.append(f'content:"{lit}"')
        if rng.random() < 0.25:
            opts.append("nocase")
        if rng.random() < 0.2:
            opts.append(f"depth:{rng.randint(20, 200)}")
        if rng.random() < 0.3:
            opts.append(f'content:"{literal(rng)}"')
            opts.append("distance:0")
            if rng.random() < 0.5:
                opts.append(f"within:{rng.randint(20, 100)}")
        if rng.random() < 0.1:
            opts.append(f'pcre:"/{literal(rng)}[0-9]{{2,}}/i"')
    action = "drop" if rng.random() < 0.1 else "alert"
    opts += ["classtype:misc-activity", f"sid:{sid}", "rev:1"]
    return f"{action} {proto} {src} {sport} -> {dst} {dport} ({'; '.join(opts)};)"


def generate(count: int, seed: int = 1, sid_base: int = 9_000_000) -> list[str]:
    rng = random.Random(seed)
    return [one_rule(rng, sid_base + i) for i in range(count)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("count", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sid-base", type=int, default=9_000_000)
    args = ap.parse_args(argv)
    print("\n".join(generate(args.count, args.seed, args.sid_base)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
