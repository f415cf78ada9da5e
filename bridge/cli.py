"""`ipsbridge` command line: one parser, sub-commands registered by the area that owns them.

    run, check        -> bridge.commands   (data plane, configuration, live system checks)
    replay, rules     -> bridge.offline    (offline engine on pcaps, rule-file checks)

Each `register(subparsers)` adds its sub-commands with `set_defaults(func=...)`;
`func(args) -> int` is the exit status.
"""
from __future__ import annotations

import argparse
import sys

EPILOG = """\
exit status: 0 success; 1 problems found (check, rules check) or runtime failure;
2 configuration refused (bad YAML, a setup that cannot work) or bad usage.

examples:
  ipsbridge run --bridge eth0:eth1 --mode ips -S drop.rules
  ipsbridge run -c /etc/ipsbridge/ipsbridge.yaml
  ipsbridge check -c /etc/ipsbridge/ipsbridge.yaml --fix
  ipsbridge rules check /etc/suricata/rules/*.rules
  ipsbridge replay -r local.rules --eve eve.json capture.pcap

run 'ipsbridge COMMAND --help' for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipsbridge",
        description="Inline intrusion-prevention bridge: copies every Ethernet frame between "
        "two interfaces through paired AF_PACKET sockets and drops what Suricata-language rules drop.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="ipsbridge 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from bridge import commands
    from bridge import offline as offline_cli

    commands.register(sub)
    offline_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
