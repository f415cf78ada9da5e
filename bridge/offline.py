"""`ipsbridge replay` and `ipsbridge rules check`: the offline side of the engine.

Both print their report on stdout, which is often a pipe (`| head -1`, `| less` quit
early): when its reader leaves, the command stops quietly with 141 (`bridge.cli.main`
handles that for every command).  Every refusal (configuration, captures, outputs, a
--workers count that is not 1..4 per CPU) is one line per problem on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import os
import time


def _workers(text: str) -> int:
    """--workers N: a count of 1..max_threads() (4 per CPU), refused otherwise (exit 2)."""
    from conf.validate import thread_count_refusal, threads_fix

    try:
        n = int(text)
    except ValueError:
        n = text
    refusal = thread_count_refusal(n, "worker count")
    if refusal:
        raise argparse.ArgumentTypeError(f"{refusal} -- fix: {threads_fix(auto=False)}")
    return n


def register(sub) -> None:
    p = sub.add_parser(
        "replay", help="run the rule engine over pcap/pcapng files",
        description="Run the bridge's rule engine (the same Engine.inspect) over capture files. "
        "Several files or a directory are one continuous stream.",
        epilog="example: ipsbridge replay -r local.rules --eve eve.json --write-drop dropped.pcap capture.pcap",
    )
    p.add_argument("-c", "--config", metavar="FILE", help="ipsbridge/suricata YAML (vars, classification, stream)")
    p.add_argument("-r", "--rules", metavar="RULES", nargs="+", action="extend",
                   help="rule files (default: rule-files of the config)")
    p.add_argument("--eve", metavar="OUT", help="write EVE JSON events to OUT (replaced)")
    p.add_argument("--mode", choices=("ips", "tap", "ids"), default="ips",
                   help="alert.action is 'blocked' only in ips (default: ips)")
    p.add_argument("--write-pass", metavar="P.pcap",
                   help="write the frames the engine forwards, bytes and link type as read: a .pcapng name "
                   "writes pcapng (one interface per link type, so mixed inputs fit), any other name a "
                   "classic pcap, refused at the start when the inputs mix link types")
    p.add_argument("--write-drop", metavar="D.pcap",
                   help="write the frames the engine drops or rejects (in every --mode: what ips would drop); "
                   ".pcapng or classic pcap by the name, as for --write-pass")
    p.add_argument("--workers", type=_workers, default=1, metavar="N",
                   help="processes, frames spread by a symmetric flow hash: 1 to 4 per CPU (default: 1)")
    p.add_argument("--bypass", choices=("user", "off", "kernel"), default="user",
                   help="user: once the engine decides a flow (pass, drop, the bypass keyword, "
                   "stream.bypass, no rule left to match), its later frames take the bridge's user-space "
                   "fast path instead of the engine, with the same verdicts, alerts and EVE; off: every "
                   "frame is inspected; kernel (eBPF) exists only live and is refused (default: user)")
    p.add_argument("--strict", action="store_true", help="exit 2 when any rule fails to load")
    p.add_argument("pcap", nargs="*", metavar="PCAP|DIR",
                   help="capture files or directories (a trailing capture after -r is taken as one)")
    p.set_defaults(func=_replay)

    r = sub.add_parser("rules", help="rule-file tools", description="Rule-file tools.")
    rsub = r.add_subparsers(dest="rules_command", metavar="COMMAND", required=True)
    c = rsub.add_parser("check", help="load rule files and report every rule that fails",
                        description="Load rule files with the engine's parser; print each failing rule "
                        "(file:line:col: message) and a summary.  Exit 0 when every rule loads, 1 otherwise.")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("-c", "--config", metavar="FILE", help="YAML with vars and classification-file")
    c.add_argument("--strict", action="store_true", help="stop at the first failing rule")
    c.add_argument("-v", "--verbose", action="store_true", help="also list rules using unsupported features")
    c.set_defaults(func=_rules_check)


def _replay(args) -> int:
    from bridge.replay import cmd_replay

    return cmd_replay(args)


def _rules_check(args) -> int:
    from bridge.replay import config_or_refusal
    from conf.build import load_rules
    from rules import loader
    from rules.errors import RuleError

    t0 = time.monotonic()
    config, refused = config_or_refusal(args.config, "rules check")
    if refused is not None:
        return refused
    try:
        res = load_rules(config, [os.path.abspath(f) for f in args.files], strict=args.strict)
    except RuleError as e:
        print(str(e))
        print(f"stopped at the first failure (--strict); {time.monotonic() - t0:.3f} s")
        return 1
    print(loader.format_report(res, verbose=args.verbose))
    print(f"checked in {time.monotonic() - t0:.3f} s")
    return 0 if res.ok else 1
