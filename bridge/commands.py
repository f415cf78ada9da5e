"""`ipsbridge run` and `ipsbridge check`.

run:   build the Config (file and/or quick flags) -> static refusals (conf.validate)
       -> live refusals (bridge.syscheck.startup_problems) -> bridge.supervisor.run.
       Any refusal: one line per problem on stderr, exit 2.
check: the same configuration plus every live check (offloads, kernel bridge
       or bond, addresses, ip_forward, link state, capabilities, AF_PACKET
       features); prints each problem with its fix.  Exit 0 nothing to report,
       1 problems found, 2 the configuration does not parse.  --fix turns
       offloads off and removes tc filters a crashed ipsbridge left.
"""
from __future__ import annotations

import argparse
import sys

import structlog

from bridge.logs import configure_logging

RUN_EPILOG = """\
quick form and config file:
  --bridge A:B and --ids IFACE add interfaces to those of -c FILE; --threads
  and --cluster-type override that key on every interface (file and quick);
  --mode applies to the --bridge pairs; -S replaces the file's rule-files;
  --bypass overrides that key on every interface;
  --eve, --stats-interval and --verdict-hook override its ipsbridge section.

examples:
  ipsbridge run --bridge eth0:eth1 -S /etc/ipsbridge/local.rules
  ipsbridge run --bridge eth0:eth1 --mode tap --threads 2 --eve /var/log/ipsbridge/eve.json
  ipsbridge run --bridge eth0:eth1 --bridge eth2:eth3 --ids eth4
  ipsbridge run --bridge eth0:eth1 -S local.rules --bypass off      # inspect every frame
  ipsbridge run -c /etc/ipsbridge/ipsbridge.yaml --stats-json /run/ipsbridge/totals.json

exit status: 0 clean stop (SIGINT/SIGTERM); 1 runtime failure; 2 configuration refused.
"""

CHECK_EPILOG = """\
checks: the configuration (same rules as 'run'), then in the current network
namespace: interfaces exist and are Ethernet, peers have the same MTU, links
are up, GRO/LRO/TSO/GSO and checksum offloads are off, no inline port is
enslaved to a kernel bridge or bond or carries an IP address, ip_forward is 0,
CAP_NET_RAW and CAP_NET_ADMIN are held, TPACKET_V2/V3 and PACKET_FANOUT work;
with bypass: kernel (the default), whether the eBPF kernel offload works here
(bpf(), its maps, both programs through the verifier, clsact + cls_bpf) and
whether a crashed ipsbridge left tc filters behind (--fix removes them).

examples:
  ipsbridge check -c /etc/ipsbridge/ipsbridge.yaml
  ipsbridge check --bridge eth0:eth1 --fix
  ip netns exec lab ipsbridge check --bridge eth0:eth1

exit status: 0 nothing to report; 1 anything reported (errors or warnings);
2 the configuration does not parse.
"""


def _threads(text: str) -> str:
    if text.strip().lower() == "auto" or (text.strip().isdigit() and int(text) > 0):
        return text.strip().lower()
    raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer or 'auto'")


def _add_config_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("-c", "--config", metavar="FILE",
                   help="YAML configuration (suricata.yaml shape: af-packet, vars, rule-files, ...)")
    g.add_argument("--bridge", metavar="A:B", action="append", default=[],
                   help="bridge interfaces A and B (repeatable); each gets a peered af-packet entry")
    g.add_argument("--ids", metavar="IFACE", action="append", default=[],
                   help="inspect IFACE without forwarding (repeatable; IDS only)")
    g.add_argument("--mode", choices=("ips", "tap"), default=None,
                   help="for --bridge: 'ips' forwards what rules do not drop, 'tap' forwards "
                   "everything and only alerts (default: ips)")
    g.add_argument("--threads", metavar="N", type=_threads, default=None,
                   help="workers per interface, or 'auto' for one per CPU (default: 1; "
                   "overrides the file's 'threads' when given)")
    from conf.model import CLUSTER_TYPES
    g.add_argument("--cluster-type", choices=CLUSTER_TYPES, default=None, metavar="TYPE",
                   help="fanout mode: " + ", ".join(CLUSTER_TYPES) +
                   " (default: cluster_flow, a symmetric flow hash)")
    g.add_argument("-S", "--rules", metavar="FILE", action="append", default=[],
                   help="rule file (repeatable); replaces the file's rule-files")
    from conf.load import BYPASS_MODES
    g.add_argument("--bypass", choices=BYPASS_MODES, default=None,
                   help="where the frames of flows the engine decided go (overrides af-packet 'bypass' on "
                   "every interface): kernel = eBPF forwards or drops them before the ring, falling back "
                   "to user with a warning; user = the worker's fast path before the engine; off = every "
                   "frame is inspected (default: the file's, else kernel)")


def register(subparsers) -> None:
    run = subparsers.add_parser(
        "run", help="run the bridge",
        description="Bridge interfaces through paired AF_PACKET sockets and inspect every frame "
        "with the configured rules.  Refuses to start (exit 2) on a setup that cannot work.",
        epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_options(run)
    out = run.add_argument_group("output")
    out.add_argument("--eve", metavar="FILE", help="write alerts and drops as EVE JSON lines to FILE")
    out.add_argument("--stats-interval", metavar="SEC", type=float, default=None,
                     help="seconds between stats log lines, 0 for none (default: 8)")
    out.add_argument("--stats-json", metavar="FILE",
                     help="write the final counters as JSON to FILE at shutdown")
    out.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                     help="structlog level on stderr (default: info)")
    run.add_argument("--fail-open", action="store_true", default=None,
                     help="if inspection stops (workers dead or hung, the process killed), the kernel forwards "
                     "between the ports within about a second (eBPF on tc ingress); also after exit, until the "
                     "next start (default: the file's ipsbridge.fail-open, else off)")
    out.add_argument("--unix-socket", metavar="PATH", default=None,
                     help="control socket (Suricata's unix-command protocol: suricatasc, 'ipsbridge reload', "
                     "'ipsbridge stats'); overrides unix-command.filename and enables it (default: "
                     "/run/ipsbridge/ipsbridge.socket when free)")
    run.add_argument("--verdict-hook", metavar="MODULE:FACTORY",
                     help="advanced/testing: build each worker's inspector with MODULE.FACTORY(config) "
                     "instead of the rule engine")
    run.set_defaults(func=cmd_run)

    check = subparsers.add_parser(
        "check", help="check the configuration and this host for an inline bridge",
        description="Validate the configuration and the live system (interfaces, offloads, kernel "
        "bridges, addresses, ip_forward, capabilities) and print each problem with its fix.",
        epilog=CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_options(check)
    check.add_argument("--fix", action="store_true",
                       help="turn offending offloads off (pyroute2 Ethtool, else 'ethtool -K') and remove "
                       "the tc filters a crashed ipsbridge left, then re-check")
    check.set_defaults(func=cmd_check)


def _print(problems, prefix: str = "") -> None:
    for p in problems:
        tag = prefix or ("warning: " if p.severity == "warning" else "error: ")
        print(f"{tag}{p}", file=sys.stderr)


def _build(args):
    import conf

    try:
        config = conf.from_args(args)
    except conf.ConfigError as exc:
        return None, exc.problems
    if getattr(args, "bypass", None):
        for iface in config.af_packet:
            iface.bypass = args.bypass
    if getattr(args, "fail_open", None):
        config.fail_open = True
    if getattr(args, "unix_socket", None):
        config.unix_command = "yes"
        config.unix_command_path = args.unix_socket
    return config, None


def cmd_run(args) -> int:
    configure_logging(args.log_level)
    config, problems = _build(args)
    if problems:
        _print(problems)
        return 2
    import conf
    from bridge import syscheck

    problems = conf.validate(config)
    problems += syscheck.startup_problems(config)
    refusal = syscheck.output_refusal(args.stats_json) if args.stats_json else None
    if refusal:                 # written at shutdown: found out now, not after the bridge has run
        problems.append(conf.Problem("--stats-json", "", refusal, syscheck.OUTPUT_FIX))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        _print(errors, "refused: ")
        return 2
    log = structlog.get_logger("ipsbridge")
    for p in problems:  # warnings only: errors returned above
        log.warning("config_problem", where=p.where, key=p.key, message=p.message, fix=p.fix,
                    file=p.file, line=p.line)
    from bridge import supervisor

    def reconfigure():
        """A rule reload: the configuration built again from the same file and flags."""
        new, problems = _build(args)
        if problems:
            return None, problems
        return new, [p for p in conf.validate(new) if p.severity == "error"]

    return supervisor.run(config, stats_json=args.stats_json, reconfigure=reconfigure)


MAX_RULE_ERRORS = 20


def _rule_problems(config) -> list:
    """Load the configured rules as the workers will; each broken rule is a problem."""
    if not config.rule_files:
        return []
    from conf import Problem
    from conf.build import load_rules

    result = load_rules(config)
    fix = "correct or comment out the rule; 'ipsbridge rules check FILE' explains each one"
    broken = [e for e in result.errors if not getattr(e, "unsupported", None)]
    out = [Problem("rules", "", str(e), fix) for e in broken[:MAX_RULE_ERRORS]]
    if len(broken) > MAX_RULE_ERRORS:
        out.append(Problem("rules", "", f"... and {len(broken) - MAX_RULE_ERRORS} more rule errors", fix))
    unsupported = [e for e in result.errors if getattr(e, "unsupported", None)]
    if 0 < len(unsupported) <= MAX_RULE_ERRORS:
        out += [Problem("rules", "", f"{e} (not loaded)", "check the spelling; if it is valid Suricata, "
                        "ipsbridge does not support it yet", severity="warning") for e in unsupported]
    elif unsupported:
        top = ", ".join(f"{k} ({n})" for k, n in result.unsupported.most_common(5))
        out.append(Problem("rules", "", f"{len(unsupported)} rules use features ipsbridge does not "
                           f"support and are not loaded: {top}",
                           "expected for large rule sets; 'ipsbridge rules check' lists them",
                           severity="warning"))
    return out


def cmd_check(args) -> int:
    configure_logging("warning")
    config, problems = _build(args)
    if problems:
        _print(problems)
        return 2
    import conf
    from bridge import syscheck

    static = conf.validate(config)
    if not any(p.where in ("rule-files", "classification-file") for p in static):
        static += _rule_problems(config)
    live = syscheck.system_problems(config)
    if args.fix:
        for iface in config.af_packet:
            if any(p.where == iface.interface and p.key == "offloads" and p.severity == "error" for p in live):
                how, left = syscheck.fix_offloads(iface.interface)
                status = "fixed" if not left.on else "still on: " + ", ".join(sorted(left.on))
                print(f"fix: {iface.interface}: offloads turned off via {how} ({status})")
        for line in syscheck.fix_kernel_offload(config):
            print(f"fix: {line}")
        live = syscheck.system_problems(config)
    problems = static + live
    kernel = [i for i in config.af_packet if i.bypass == "kernel"]
    status = None
    if kernel or config.fail_open:
        status = syscheck.kernel_offload_status(tc=any(i.copy_mode for i in config.af_packet))
    if kernel:
        print(f"kernel offload: {'works' if status.works else 'unavailable'}: {status.detail}")
    inline = [f"{i.interface}->{i.copy_iface}" for i in config.af_packet if i.copy_mode]
    if not config.fail_open:
        print("fail-open: off (a stopped bridge forwards nothing; ipsbridge.fail-open: yes or --fail-open arms it)")
    elif status.works and inline:
        print(f"fail-open: armed at start: the kernel forwards {', '.join(inline)} whenever inspection stops "
              f"(heartbeat older than 1 s) and after the bridge exits, until the next start or check --fix")
    else:
        from conf import Problem

        why = status.detail if not status.works else "no inline (ips/tap) interface"
        problems.append(Problem("ipsbridge", "fail-open", f"cannot be armed: {why}",
                                "fix what the kernel offload lacks, or set ipsbridge.fail-open: no"))
    for p in problems:
        print(("warning: " if p.severity == "warning" else "error: ") + str(p))
    names = ", ".join(i.interface for i in config.af_packet) or "no interfaces"
    if problems:
        errors = sum(p.severity == "error" for p in problems)
        print(f"check: {errors} error(s), {len(problems) - errors} warning(s) for {names}")
        return 1
    print(f"check: OK ({names})")
    return 0
