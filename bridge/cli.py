"""`ipsbridge` command line: one parser, sub-commands registered by the area that owns them.

    run, check        -> bridge.commands   (data plane, configuration, live system checks)
    reload, stats     -> bridge.control    (clients of a running bridge's control socket)
    replay, rules     -> bridge.offline    (offline engine on pcaps, rule-file checks)

Each `register(subparsers)` adds its sub-commands with `set_defaults(func=...)`;
`func(args) -> int` is the exit status.

Every command writes to stdout, which may be a pipe whose reader leaves early
(`ipsbridge check ... | head -1`): the command then ends quietly with 141 (128 +
SIGPIPE, what a shell shows for `cat` killed by that signal), never a
BrokenPipeError traceback -- Python's documented recipe: stdout is pointed at
/dev/null so that the interpreter's last flush at exit cannot fail again.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE

EPILOG = """\
exit status: 0 success; 1 problems found (check, rules check) or runtime failure;
2 configuration refused (bad YAML, a setup that cannot work) or bad usage.

examples:
  ipsbridge run --bridge eth0:eth1 --mode ips -S drop.rules
  ipsbridge run -c /etc/ipsbridge/ipsbridge.yaml
  ipsbridge check -c /etc/ipsbridge/ipsbridge.yaml --fix
  ipsbridge rules check /etc/suricata/rules/*.rules
  ipsbridge replay -r local.rules --eve eve.json capture.pcap
  ipsbridge reload                          # the running bridge re-reads its rules
  ipsbridge stats                           # live counters of the running bridge

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
    from bridge import commands, control
    from bridge import offline as offline_cli

    commands.register(sub)
    control.register(sub)
    offline_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)      # --help and usage errors write too
        rc = int(args.func(args) or 0)
        sys.stdout.flush()                  # inside the try: the last output may be what fails
        return rc
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return quiet_stdout()


def quiet_stdout() -> int:
    """stdout's reader is gone: point stdout at /dev/null (the interpreter flushes it once more
    at exit) and return EXIT_BROKEN_PIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
