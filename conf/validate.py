"""Static refusals: setups that cannot work, found before any socket is opened.

`validate(config)` looks only at the Config (no kernel, no files other than the
rule files named in it) and returns every `Problem` it finds, so an operator
fixes them all in one go instead of one per start.  Live checks (interfaces
that exist, MTU, offloads, capabilities) live in `bridge.syscheck`.

A `Problem` prints as ONE line naming the place, the key and the fix:

    ipsbridge.yaml:14: eth0: threads: 2 here but 4 on its peer eth1 (copy-iface) -- fix: set the same 'threads' on both interfaces
"""
from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass

from conf.model import CLUSTER_TYPES, POLICY_UNSET, Config, Interface

IFNAMSIZ = 16  # kernel limit including the trailing NUL: names have at most 15 characters
# Bounds on numbers that could otherwise be accepted and then fail (or exhaust memory) at start.
THREADS_PER_CPU = 4                # workers (threads, replay --workers) per CPU at most: more only
                                   # add context switches; max_threads() is the bound on this machine
MAX_THREADS = 1024                 # ... and never more than this, whatever the CPU count
RING_FRAME_BYTES = 2048            # one ring slot at MTU 1500 (bridge.afpacket.ring_geometry)
MAX_RING_BYTES = 1 << 30           # one socket's RX ring
MAX_RING_FRAMES = MAX_RING_BYTES // RING_FRAME_BYTES   # ring-size: 2048-byte frames (MTU 1500) in 1 GiB
RING_MEMORY_SHARE = 2              # every ring together may take at most 1/2 of the physical memory
MAX_BLOCK_TIMEOUT = 60_000         # ms a V3 block may wait
MAX_STATS_INTERVAL = 86_400.0      # seconds: one stats line a day


def cpu_count() -> int:
    """CPUs of this machine, as `threads: auto` counts them."""
    return os.cpu_count() or 1


def max_threads() -> int:
    """The most workers per interface (and replay --workers) this machine takes."""
    return min(MAX_THREADS, THREADS_PER_CPU * cpu_count())


def threads_fix(auto: bool = True) -> str:
    return (f"use 1..{max_threads()} ({THREADS_PER_CPU} per CPU, this machine has {cpu_count()})"
            + (", or 'auto' for one per CPU" if auto else "") + ": more workers than CPUs only add context switches")


def thread_count_refusal(value, what: str = "thread count") -> str | None:
    """Why `value` is not a worker count on this machine, or None when it is one (every count
    option and key -- threads, --threads, replay --workers -- is judged here)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= max_threads():
        return None
    return f"{shown(value)} is not a {what} (1..{max_threads()})"


def physical_memory() -> int:
    """Bytes of RAM (0 when unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def ring_bytes(iface: Interface) -> int:
    """One socket's RX ring at MTU 1500, as bridge.afpacket.ring_geometry sizes it: ring-size
    slots of RING_FRAME_BYTES; a V3 ring (IDS only) is whole blocks, at least two."""
    frames = iface.ring_size * RING_FRAME_BYTES
    if iface.tpacket_v3 and iface.copy_mode is None and iface.block_size > 0:
        return max(2, -(-frames // iface.block_size)) * iface.block_size
    return frames


def shown(value, limit: int = 60) -> str:
    """`value` as a message shows it: its repr, cut to `limit` characters (a YAML alias can make
    a value of millions of items; reprlib never walks more than a few of them)."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    text = r.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration or the system, with its fix."""

    where: str                 # interface name, or section ("stream", "vars", "system", ...)
    key: str                   # the YAML key (Suricata spelling) or check name; "" when none
    message: str
    fix: str
    file: str | None = None    # YAML file, when the problem comes from one
    line: int = 0              # 1-based line in that file, 0 when unknown
    severity: str = "error"    # "error" refuses to start; "warning" is reported by `check`

    def __str__(self) -> str:
        prefix = ""
        if self.file:
            prefix = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        key = f"{self.key}: " if self.key else ""
        return f"{prefix}{self.where}: {key}{self.message} -- fix: {self.fix}"


class ConfigError(Exception):
    """The configuration does not parse or has wrong keys/types; `.problems` lists each."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(word: str, choices) -> str:
    """' (did you mean 'x'?)' or '' -- appended to messages about unknown names."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _problem(config: Config, iface: Interface | None, where: str, key: str, message: str,
             fix: str, severity: str = "error") -> Problem:
    file = None if config.source == "<command line>" else config.source
    line = iface.line if iface is not None else 0
    if iface is not None and not line:
        file = None  # an interface made by --bridge/--ids on top of -c FILE: not from the file
    return Problem(where, key, message, fix, file, line, severity)


def validate(config: Config) -> list[Problem]:
    """Every static reason the configuration cannot run as written (empty list: fine)."""
    out: list[Problem] = []
    p = lambda *a, **k: out.append(_problem(config, *a, **k))  # noqa: E731

    if not config.af_packet:
        p(None, "af-packet", "", "no interface configured",
          "give --bridge IFACE:IFACE or --ids IFACE, or add an 'af-packet:' entry with 'interface:'")

    by_name: dict[str, Interface] = {}
    for it in config.af_packet:
        if it.interface in by_name:
            p(it, it.interface, "interface", "listed twice in af-packet",
              "keep a single af-packet entry per interface")
        by_name.setdefault(it.interface, it)
        name = it.interface
        if not name or len(name) >= IFNAMSIZ or "/" in name or any(c.isspace() for c in name) \
                or name in (".", ".."):
            p(it, name or "<empty>", "interface",
              f"'{name}' is not a valid Linux interface name (at most {IFNAMSIZ - 1} characters, "
              "no '/' or spaces)", "use the name shown by 'ip link'")
        refusal = thread_count_refusal(it.threads)
        if refusal:
            p(it, name, "threads", refusal, "set 'threads': " + threads_fix())
        if it.cluster_type not in CLUSTER_TYPES:
            p(it, name, "cluster-type", f"unknown value '{it.cluster_type}'"
              + did_you_mean(it.cluster_type, CLUSTER_TYPES),
              "use one of " + ", ".join(CLUSTER_TYPES))
        if it.cluster_id is not None and not (0 <= it.cluster_id <= 0xFFFF):
            p(it, name, "cluster-id", f"{it.cluster_id} is outside 0..65535",
              "pick a fanout group id between 0 and 65535")
        if it.copy_mode not in ("ips", "tap", None):
            p(it, name, "copy-mode", f"unknown value '{it.copy_mode}'"
              + did_you_mean(it.copy_mode, ("ips", "tap", "none")),
              "use 'ips' (drop what rules drop), 'tap' (forward everything, alert only) or leave it out (IDS)")
        for key in ("ring_size", "block_size", "block_timeout"):
            value = getattr(it, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                dashed = key.replace("_", "-")
                p(it, name, dashed, f"{shown(value)} must be a positive integer",
                  f"set '{dashed}' to a positive integer or remove it for the default")
        if isinstance(it.ring_size, int) and it.ring_size > MAX_RING_FRAMES:
            p(it, name, "ring-size", f"{it.ring_size} frames would not fit in {MAX_RING_BYTES >> 30} GiB per "
              "socket", f"set 'ring-size' to at most {MAX_RING_FRAMES} (the default 2048 is usually enough)")
        if isinstance(it.block_size, int) and it.block_size > MAX_RING_BYTES:
            p(it, name, "block-size", f"{it.block_size} bytes is larger than a whole ring may be "
              f"({MAX_RING_BYTES} bytes)", "use a few pages, e.g. 32768 (the default)")
        if isinstance(it.block_timeout, int) and it.block_timeout > MAX_BLOCK_TIMEOUT:
            p(it, name, "block-timeout", f"{it.block_timeout} ms is above {MAX_BLOCK_TIMEOUT}",
              f"use 1..{MAX_BLOCK_TIMEOUT} ms (default 10): a block held longer only delays its frames")
        if not isinstance(it.buffer_size, int) or not 0 <= it.buffer_size < 2 ** 31:
            p(it, name, "buffer-size", f"{shown(it.buffer_size)} is not 0..{2 ** 31 - 1} bytes",
              "set 'buffer-size' to 0 (kernel default) or a byte count below 2 GiB (SO_RCVBUF is an int)")
        if it.tpacket_v3 and isinstance(it.block_size, int) and it.block_size % os.sysconf("SC_PAGE_SIZE"):
            p(it, name, "block-size", f"{it.block_size} is not a multiple of the page size "
              f"({os.sysconf('SC_PAGE_SIZE')})", "use a multiple of the page size, e.g. 32768")

    out += ring_memory_problems(config)

    seen_ids: dict[int, Interface] = {}
    for it in config.af_packet:
        if it.cluster_id is None:
            continue
        other = seen_ids.get(it.cluster_id)
        if other is not None and other.interface != it.interface:
            p(it, it.interface, "cluster-id",
              f"{it.cluster_id} is also used by {other.interface} (a fanout group belongs to one interface)",
              "give every interface its own 'cluster-id'")
        seen_ids.setdefault(it.cluster_id, it)

    position = {id(it): i for i, it in enumerate(config.af_packet)}
    for it in config.af_packet:
        name = it.interface
        inline = it.copy_mode in ("ips", "tap")
        if it.copy_mode and not it.copy_iface:
            p(it, name, "copy-mode", f"'{it.copy_mode}' set but no copy-iface",
              "add 'copy-iface: PEER' naming the interface frames are forwarded to, or remove 'copy-mode'")
        if it.copy_iface and not it.copy_mode:
            p(it, name, "copy-iface", f"'{it.copy_iface}' set but no copy-mode, so nothing is forwarded",
              "add 'copy-mode: ips' (or 'tap') or remove 'copy-iface'")
        if it.copy_iface and it.copy_mode:  # without copy-mode, the one problem above says it all
            peer = by_name.get(it.copy_iface)
            if it.copy_iface == name:
                p(it, name, "copy-iface", "points at the interface itself",
                  "name the other port of the bridge in 'copy-iface'")
            elif peer is None:
                p(it, name, "copy-iface", f"peer '{it.copy_iface}' has no af-packet entry",
                  f"add an af-packet entry for {it.copy_iface} with 'copy-iface: {name}' "
                  f"and the same copy-mode")
            else:
                if peer.copy_iface != name:
                    back = f"'{peer.copy_iface}'" if peer.copy_iface else "nothing"
                    p(it, name, "copy-iface", f"peer {peer.interface} points back at {back}, not {name}",
                      f"set 'copy-iface: {name}' on {peer.interface}")
                first = position[id(it)] < position[id(peer)]  # report a pair mismatch once
                if peer.threads != it.threads and first:
                    p(it, name, "threads",
                      f"{it.threads} here but {peer.threads} on its peer {peer.interface} (copy-iface); "
                      "worker i must own both directions of its flows",
                      "set the same 'threads' on both interfaces")
                if peer.copy_mode != it.copy_mode and peer.copy_mode and it.copy_mode and first:
                    p(it, name, "copy-mode", f"'{it.copy_mode}' here but '{peer.copy_mode}' on its peer "
                      f"{peer.interface}", "set the same 'copy-mode' on both interfaces")
                if peer.cluster_type != it.cluster_type and first:
                    p(it, name, "cluster-type", f"'{it.cluster_type}' here but '{peer.cluster_type}' on "
                      f"its peer {peer.interface}; the two directions of a flow would land on "
                      "different workers", "set the same 'cluster-type' on both interfaces")
        if inline and not it.use_mmap:
            p(it, name, "use-mmap", f"off, but copy-mode '{it.copy_mode}' forwards through the mmap ring",
              "set 'use-mmap: yes' (the default) on inline interfaces")
        if inline and it.tpacket_v3:
            # The loader forces V2 with a warning; only a Config built in code reaches here.
            p(it, name, "tpacket-v3", "on an inline interface: frames wait up to block-timeout ms "
              "before they are forwarded", "set 'tpacket-v3: no' (V2) on ips/tap interfaces")
        if inline and it.defrag:
            # The loader turns defrag off on inline interfaces; only a Config built in code reaches here.
            p(it, name, "defrag", "on an inline interface: reassembled datagrams larger than the MTU "
              "cannot be forwarded, so fragmented traffic would be lost",
              "set 'defrag: no' on ips/tap interfaces")
        if inline and it.rollover:
            p(it, name, "rollover", "on an inline interface: frames of one flow may reach a worker "
              "that does not own the flow", "set 'rollover: no' on ips/tap interfaces "
              "(raise ring-size or threads instead)", severity="warning")
        if inline and it.cluster_type in ("cluster_round_robin", "cluster_random", "cluster_rollover"):
            p(it, name, "cluster-type", f"'{it.cluster_type}' on an inline interface spreads the packets "
              "of one flow over several workers: flow state (TCP, flowbits, thresholds) is split",
              "use 'cluster_flow' (default) on ips/tap interfaces", severity="warning")
        if inline and it.disable_promisc:
            p(it, name, "disable-promisc", "on an inline interface: only frames addressed to this "
              "port's own MAC would be read, everything else would be silently lost",
              "set 'disable-promisc: no' (the default) on ips/tap interfaces")
        if inline and it.bpf_filter:
            p(it, name, "bpf-filter", "set on an inline interface: frames it does not match are "
              "never read, so they are never forwarded (silent blackhole)",
              "remove 'bpf-filter' from ips/tap interfaces; use 'pass' rules to skip inspection")

    si = config.stats_interval
    if isinstance(si, bool) or not isinstance(si, (int, float)) or not (
            math.isfinite(si) and 0 <= si <= MAX_STATS_INTERVAL):
        p(None, "ipsbridge", "stats-interval", f"{shown(si)} is not 0..{MAX_STATS_INTERVAL:g} seconds",
          "set 'stats-interval' to seconds between stats lines, or 0 to turn them off")
    from conf.build import mode_of

    out += policy_problems(config, mode_of(config))
    if config.verdict_hook is not None and ":" not in config.verdict_hook:
        p(None, "ipsbridge", "verdict-hook", f"'{config.verdict_hook}' is not 'module:factory'",
          "write it as 'package.module:function'")

    for rel in config.rule_files:
        path = rule_path(config, rel)
        if not os.path.isfile(path):
            p(None, "rule-files", rel, f"file not found: {path}",
              "fix the name, or set 'default-rule-path' to the directory holding it")
    if config.classification_file and not os.path.isfile(config.classification_file):
        p(None, "classification-file", "", f"file not found: {config.classification_file}",
          "point 'classification-file' at a classification.config, or remove it for the built-in one")
    return out


def ring_memory_problems(config: Config) -> list[Problem]:
    """The RX rings of every worker together (threads x one ring per interface) against the
    machine's memory: ring memory is the kernel's and is never swapped out, so at most
    1/RING_MEMORY_SHARE of the RAM.  Reported once, on the interface with the largest share."""
    sized = [it for it in config.af_packet if isinstance(it.threads, int) and isinstance(it.ring_size, int)
             and isinstance(it.block_size, int) and 1 <= it.threads <= MAX_THREADS
             and 1 <= it.ring_size <= MAX_RING_FRAMES]
    ram = physical_memory()
    if not sized or not ram:
        return []
    share = {id(it): it.threads * ring_bytes(it) for it in sized}
    total, allowed = sum(share.values()), ram // RING_MEMORY_SHARE
    if total <= allowed:
        return []
    big = max(sized, key=lambda it: share[id(it)])
    mib = 1 << 20
    return [_problem(config, big, big.interface, "ring-size",
                     f"the rings would take {total // mib} MiB in all ({big.interface}: {big.threads} threads x "
                     f"{ring_bytes(big) // mib} MiB), more than 1/{RING_MEMORY_SHARE} of this machine's "
                     f"{ram // mib} MiB of memory",
                     f"lower 'ring-size' (default 2048 frames, 4 MiB per socket) or 'threads' so that the rings "
                     f"stay below {allowed // mib} MiB")]


# ------------------------------------------------------------------ exception policies
_PACKET_ONLY = ("drop-packet", "pass-packet")


def master_policy(master: str, mode: str) -> str:
    """The master `exception-policy` as Suricata applies it in `mode`: outside IPS mode its
    drop-packet and drop-flow mean ignore (nothing is dropped there)."""
    if mode != "ips" and master in ("drop-packet", "drop-flow"):
        return "ignore"
    return master


def policy_problems(config: Config, mode: str | None = None) -> list[Problem]:
    """The exception-policy combinations Suricata 7 refuses to start with (its
    ExceptionPolicyMidstreamParse); with `mode` None only those that do not depend on the
    engine mode (the loader checks these; `validate` and `conf.build.engine_settings` the rest).

      - stream.midstream-policy drop-packet / pass-packet: a midstream exception is about a
        whole flow;
      - with stream.midstream: yes, anything but pass-flow, ignore (and auto): a session picked
        up midstream is tracked, there is nothing to drop;
      - drop-flow outside ips mode;
      - midstream-policy left out while the master is a packet-only policy (in ips mode for
        drop-packet; pass-packet in any mode): the master is its default, see above.
    """
    file = None if config.source == "<command line>" else config.source
    out: list[Problem] = []
    written = config.stream.midstream_policy
    line = config.lines.get("stream.midstream-policy", 0)
    if written in _PACKET_ONLY:
        out.append(Problem("stream", "midstream-policy",
                           f"'{written}' acts on one packet, but a midstream exception is about the whole "
                           "flow (Suricata refuses it too)",
                           "use drop-flow, pass-flow, reject, bypass, ignore or auto", file, line))
    elif config.stream.midstream and written not in (POLICY_UNSET, "auto", "ignore", "pass-flow"):
        out.append(Problem("stream", "midstream-policy",
                           f"'{written}' with stream.midstream: yes: sessions picked up midstream are "
                           "tracked, so only pass-flow or ignore apply (Suricata refuses the others)",
                           "set stream.midstream-policy to ignore or pass-flow, or stream.midstream: no",
                           file, line))
    elif mode is not None and mode != "ips" and written == "drop-flow":
        out.append(Problem("stream", "midstream-policy",
                           f"'drop-flow' in {mode} mode: nothing is dropped outside ips mode (Suricata "
                           "refuses it in IDS mode)", "use ignore or auto outside ips mode", file, line))
    elif written == POLICY_UNSET:
        master = config.exception_policy
        effective = master_policy(master, mode) if mode is not None else master
        if effective == "pass-packet" or effective == "drop-packet" and mode is not None:
            out.append(Problem("exception-policy", "",
                               f"'{master}' is also the default of stream.midstream-policy, which cannot act "
                               "on a single packet (Suricata refuses to start with it)",
                               "set stream.midstream-policy explicitly (drop-flow, pass-flow, reject, bypass "
                               "or ignore), or use a flow-wide exception-policy", file,
                               config.lines.get("exception-policy", 0)))
    return out


def rule_path(config: Config, name: str) -> str:
    """Where a `rule-files` entry is read from: absolute as-is, else under default-rule-path."""
    return name if os.path.isabs(name) else os.path.join(config.default_rule_path, name)
