"""Live checks of the system a Config is about to run on.

    startup_problems(config)  refusals `run` makes before opening a socket:
                              interface missing, not Ethernet (ARPHRD_ETHER),
                              unequal MTU between peers, missing capabilities,
                              an eve-log file that cannot be written
    output_refusal(path)      why a file ipsbridge would write (EVE, pcap, stats
                              JSON) cannot be written, tried without changing it
    system_problems(config)   everything `check` reports: the above plus link
                              down, GRO/LRO/TSO/GSO/checksum offloads, a port
                              enslaved to a kernel bridge/bond, IP addresses on
                              an inline port, ip_forward, TPACKET_V2/V3 and
                              PACKET_FANOUT support, the kernel offload (bypass: kernel)
                              and tc filters a crashed ipsbridge left on the ports
    fix_offloads(ifname)      turns the offloads off (pyroute2 Ethtool, else `ethtool -K`)
    kernel_offload_status()   whether the eBPF kernel offload (bridge.ebpf) works here: the
                              bpf() syscall, the maps, both programs through the verifier,
                              clsact + cls_bpf (probed on the loopback of a scratch network
                              namespace, nothing on the host changes); what is missing
    fix_kernel_offload(config) removes tc filters (and the clsact qdiscs they leave empty)
                              that a crashed ipsbridge left on the configured ports

Everything reads the CURRENT network namespace (run `ip netns exec NS ipsbridge check`
to check one); pyroute2's Ethtool is created here, inside it.  Each check
returns `conf.Problem`s so `run` and `check` print them the same way.
"""
from __future__ import annotations

import errno
import functools
import ipaddress
import os
import random
import re
import shlex
import socket
import stat
import struct
import subprocess
from dataclasses import dataclass

from conf.model import Config, Interface
from conf.validate import Problem

ARPHRD_ETHER = 1
ARPHRD_NAMES = {1: "Ethernet", 772: "loopback", 768: "IPIP tunnel", 769: "IPv6-in-IPv6 tunnel",
                776: "SIT tunnel", 778: "GRE tunnel", 823: "IP6GRE tunnel", 65534: "none (tun/wireguard)",
                32: "InfiniBand", 512: "PPP"}
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
SOL_PACKET = 263
PACKET_VERSION = 10
PACKET_FANOUT = 18
TPACKET_V2, TPACKET_V3 = 1, 2
ETH_P_ALL = 0x0003

# ethtool -K group name -> feature bits (pattern) it switches.  Order is the order of the fix command.
OFFLOAD_GROUPS = (
    ("gro", re.compile(r"^rx-gro$")),
    ("lro", re.compile(r"^rx-lro$")),
    ("tso", re.compile(r"^tx-tcp[a-z0-9-]*-segmentation$")),
    ("gso", re.compile(r"^tx-generic-segmentation$")),
    ("tx", re.compile(r"^tx-checksum-")),
    ("rx", re.compile(r"^rx-checksum$")),
)


@dataclass
class Offloads:
    """Offload feature bits that are on: changeable ones by group, and fixed ones."""

    on: dict[str, list[str]]       # group -> feature names that are on and can be turned off
    fixed: dict[str, list[str]]    # group -> feature names that are on and cannot change

    def fix_command(self, ifname: str) -> str:
        groups = [g for g, _ in OFFLOAD_GROUPS if g in self.on]
        return f"ethtool -K {ifname} " + " ".join(f"{g} off" for g in groups)


# --------------------------------------------------------------------------- reading the system
def _links() -> dict[str, dict]:
    """name -> {index, type, flags, mtu, master, kind, operstate} for every link in this namespace."""
    from pyroute2 import IPRoute

    out: dict[str, dict] = {}
    with IPRoute() as ipr:
        links = ipr.get_links()
        by_index = {}
        for msg in links:
            info = msg.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            entry = {
                "index": msg["index"],
                "type": msg["ifi_type"],
                "flags": msg["flags"],
                "mtu": msg.get_attr("IFLA_MTU"),
                "master": msg.get_attr("IFLA_MASTER"),
                "kind": kind,
                "operstate": msg.get_attr("IFLA_OPERSTATE"),
                "addresses": [],
            }
            out[msg.get_attr("IFLA_IFNAME")] = entry
            by_index[msg["index"]] = entry
        for msg in ipr.get_addr():
            entry = by_index.get(msg["index"])
            if entry is None:
                continue
            addr = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
            if addr:
                entry["addresses"].append(f"{addr}/{msg['prefixlen']}")
    for entry in out.values():
        master = entry["master"]
        entry["master_name"] = None
        entry["master_kind"] = None
        if master:
            for name, other in out.items():
                if other["index"] == master:
                    entry["master_name"], entry["master_kind"] = name, other["kind"]
    return out


def capabilities() -> int:
    """The effective capability mask of this process (CapEff in /proc/self/status)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def offloads(ifname: str) -> Offloads:
    """Offload feature bits that are on, read through pyroute2's Ethtool in this namespace."""
    from pyroute2.ethtool import Ethtool

    eth = Ethtool()
    try:
        features = eth.get_features(ifname).features
    finally:
        eth.close()
    on: dict[str, list[str]] = {}
    fixed: dict[str, list[str]] = {}
    for name, feature in features.items():
        if not feature.enable:
            continue
        for group, pattern in OFFLOAD_GROUPS:
            if pattern.match(name):
                (on if feature.available else fixed).setdefault(group, []).append(name)
                break
    return Offloads(on, fixed)


def fix_offloads(ifname: str) -> tuple[str, Offloads]:
    """Turn off every changeable offload that is on.  Returns (how, what is still on)."""
    before = offloads(ifname)
    if not before.on:
        return "nothing to do", before
    how = "pyroute2 Ethtool"
    try:
        from pyroute2.ethtool import Ethtool

        eth = Ethtool()
        try:
            features = eth.get_features(ifname)
            for names in before.on.values():
                for name in names:
                    features.features[name].enable = False
            eth.set_features(ifname, features)
        finally:
            eth.close()
        after = offloads(ifname)
    except Exception as exc:  # noqa: BLE001 - any failure means: try the ethtool binary
        how = f"ethtool -K (pyroute2 Ethtool failed: {exc})"
        after = before
    if after.on:
        if how == "pyroute2 Ethtool":
            how = "ethtool -K (pyroute2 Ethtool left " + ", ".join(sorted(after.on)) + " on)"
        argv = shlex.split(after.fix_command(ifname))
        try:
            subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            how += f"; running {argv[0]} failed: {exc}"
        after = offloads(ifname)
    return how, after


def _probe_af_packet(need_v3: bool) -> list[tuple[str, str, str]]:
    """Try TPACKET_V2 (and V3 if used) and PACKET_FANOUT on a throwaway socket."""
    out = []
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except OSError as exc:
        return [("af-packet socket", f"cannot open an AF_PACKET socket: {os.strerror(exc.errno)}",
                 "run as root or grant CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN)")]
    with sock:
        versions = [("TPACKET_V2", TPACKET_V2)] + ([("TPACKET_V3", TPACKET_V3)] if need_v3 else [])
        for name, version in versions:
            try:
                sock.setsockopt(SOL_PACKET, PACKET_VERSION, version)
            except OSError as exc:
                fix = "use a kernel with TPACKET_V2 (2.6.27+)" if version == TPACKET_V2 else \
                    "set 'tpacket-v3: no', or use a kernel with TPACKET_V3 (3.2+)"
                out.append((name.lower(), f"{name} not supported: {os.strerror(exc.errno)}", fix))
        # Fanout needs a running socket (it is: protocol ETH_P_ALL); a random group id in
        # a range the bridge's 99, 98, ... never uses, mode HASH.
        group = random.randint(40000, 65000)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", group))
        except OSError as exc:
            out.append(("packet-fanout", f"PACKET_FANOUT not supported: {os.strerror(exc.errno)}",
                        "use a kernel with PACKET_FANOUT (3.1+)"))
    return out


# --------------------------------------------------------------------------- kernel offload
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class OffloadStatus:
    works: bool
    detail: str          # what works, or what is missing
    fix: str = ""

    def __str__(self) -> str:
        return f"kernel offload: {'available' if self.works else 'unavailable'} ({self.detail})"


def _probe_tc_in_scratch_namespace(tc_fd: int) -> str | None:
    """In a forked child with a network namespace of its own: clsact on its loopback and
    the tc program attached to it.  None when that works, else why not."""
    import ctypes

    from bridge import ebpf

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # child: report one line, never return
        os.close(r)
        msg = ""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                msg = f"untested: no scratch network namespace (unshare: {os.strerror(err)})"
            else:
                from pyroute2 import IPRoute

                with IPRoute() as ipr:
                    try:
                        ipr.tc("add", "clsact", 1)
                    except Exception as exc:  # noqa: BLE001
                        msg = f"cannot add a clsact qdisc: {exc}"
                    else:
                        try:
                            ipr.tc("add-filter", "bpf", 1, ":1", fd=tc_fd, name="ipsbridge-check",
                                   parent=ebpf.TC_H_CLSACT_INGRESS, classid=1, direct_action=True)
                            if not ebpf.list_filters(ipr, 1):
                                msg = "the tc filter was accepted but is not listed"
                        except Exception as exc:  # noqa: BLE001
                            msg = f"cannot attach a bpf tc filter (cls_bpf): {exc}"
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the parent reports it
            msg = f"probe failed: {exc!r}"
        os.write(w, msg.encode()[:4000])
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    msg = b"".join(chunks).decode(errors="replace")
    return msg or None


@functools.lru_cache(maxsize=2)
def kernel_offload_status(*, tc: bool = True) -> OffloadStatus:
    """Whether bridge.ebpf's kernel offload works in this kernel and process (probed once
    per process: `check` reports a problem from it and prints it)."""
    from bridge import ebpf

    try:
        off = ebpf.KernelOffload.create(16)
    except ebpf.OffloadUnavailable as e:
        reason = str(e)
        if "needs root" in reason:
            fix = "run as root, or grant CAP_BPF and CAP_NET_ADMIN (kernel 5.8+; CAP_SYS_ADMIN before)"
        elif "bpf() syscall" in reason:
            fix = "use a kernel built with CONFIG_BPF_SYSCALL (and CONFIG_BPF_JIT)"
        elif "refused program" in reason:
            fix = "the kernel's verifier refused the program (its log is above): report it with `uname -r`"
        else:
            fix = "a kernel 5.10+ with CONFIG_BPF_SYSCALL"
        return OffloadStatus(False, reason, fix + "; until then the bridge runs with bypass: user")
    try:
        sizes = ", ".join(f"{name} {info.insns} instructions" for name, info in off.info.items())
        detail = f"bpf(), LRU hash and per-CPU maps, {sizes} accepted by the verifier"
        if tc:
            why = _probe_tc_in_scratch_namespace(off.tc_fd)
            if why is not None and why.startswith("untested"):
                return OffloadStatus(False, f"{detail}; tc {why}", "run the check as root")
            if why is not None:
                return OffloadStatus(False, f"{detail}; but {why}",
                                     "load or build the tc modules: modprobe sch_ingress cls_bpf "
                                     "(CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF); until then the bridge "
                                     "runs with bypass: user")
            detail += "; clsact + cls_bpf direct-action attach"
    finally:
        off.close()
    return OffloadStatus(True, detail)


def _kernel_offload_problems(config: Config) -> list[Problem]:
    out = []
    want = [i for i in config.af_packet if i.bypass == "kernel"]
    if want:
        status = kernel_offload_status(tc=any(i.copy_mode for i in want))
        if not status.works:
            names = ", ".join(i.interface for i in want)
            out.append(_p("system", "kernel-offload", f"{status.detail}; {names} (bypass: kernel) will run "
                          "with bypass: user", status.fix, severity="warning"))
    try:
        from bridge import ebpf

        stale = ebpf.stale_filters(i.interface for i in config.af_packet)
    except Exception as exc:  # noqa: BLE001 - netlink trouble: say so, do not fail the check
        return out + [_p("system", "offload-filters", f"cannot list tc filters: {exc}",
                         "check with 'tc filter show dev IFACE ingress'", severity="warning")]
    for name, f in stale:
        hook = "ingress" if f.parent == 0xFFFFFFF2 else "egress"
        out.append(_p(name, "offload-filters", f"tc filter {f.name} ({hook} pref {f.prio}) was left by an "
                      "ipsbridge that is gone; it steps aside by itself (stale heartbeat), but remove it",
                      f"ipsbridge check --fix (or: tc filter del dev {name} {hook} pref {f.prio})",
                      severity="warning"))
    return out


def fix_kernel_offload(config: Config) -> list[str]:
    """`check --fix`: remove the tc filters a gone ipsbridge left on the configured ports
    (and the clsact qdiscs they leave empty).  One line per thing done."""
    from bridge import ebpf

    return ebpf.remove_stale_filters(i.interface for i in config.af_packet)


# --------------------------------------------------------------------------- checks
def _p(where, key, message, fix, severity="error") -> Problem:
    return Problem(where, key, message, fix, None, 0, severity)


def _capability_problems() -> list[Problem]:
    eff = capabilities()
    missing = [name for bit, name in ((CAP_NET_RAW, "CAP_NET_RAW"), (CAP_NET_ADMIN, "CAP_NET_ADMIN"))
               if not eff & (1 << bit)]
    if not missing:
        return []
    return [_p("system", "capabilities", f"missing {' and '.join(missing)} (CapEff {eff:#x})",
               "run as root, or give the service AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN "
               "(see conf/ipsbridge.service)")]


def _interface_problems(config: Config, links: dict[str, dict]) -> list[Problem]:
    out = []
    for iface in config.af_packet:
        name = iface.interface
        link = links.get(name)
        if link is None:
            out.append(_p(name, "interface", "no such network interface in this namespace",
                          "create it or correct the name (see 'ip -br link')"))
            continue
        if link["type"] != ARPHRD_ETHER:
            kind = ARPHRD_NAMES.get(link["type"], f"link type {link['type']}")
            out.append(_p(name, "interface", f"not an Ethernet device ({kind}, ARPHRD {link['type']})",
                          "bridge Ethernet interfaces only (physical NICs, veth, VLAN or macvlan devices)"))
    seen = set()
    for iface in config.af_packet:
        peer = config.peer_of(iface) if iface.copy_mode else None
        if peer is None or (peer.interface, iface.interface) in seen:
            continue
        seen.add((iface.interface, peer.interface))
        a, b = links.get(iface.interface), links.get(peer.interface)
        if a and b and a["mtu"] != b["mtu"]:
            big, small = (iface.interface, peer.interface) if a["mtu"] > b["mtu"] else (peer.interface, iface.interface)
            out.append(_p(iface.interface, "mtu",
                          f"{a['mtu']} here but {b['mtu']} on its peer {peer.interface}: frames larger than "
                          f"{min(a['mtu'], b['mtu'])} bytes cannot be forwarded to {small}",
                          f"ip link set {big} mtu {min(a['mtu'], b['mtu'])} (or raise {small}'s MTU)"))
    return out


def output_refusal(path: str) -> str | None:
    """"cannot write PATH: REASON" when a file ipsbridge would write cannot be written, else
    None.  Tried as the writers open it (O_WRONLY | O_CREAT | O_APPEND), so an existing file is
    left as it is, and a file the try creates is removed again; a FIFO is not opened (that
    would wait for its reader)."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        return f"cannot write {path}: {os.strerror(errno.EISDIR)}"
    if st is not None and stat.S_ISFIFO(st.st_mode):
        return None
    existed = os.path.lexists(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    except OSError as e:
        return f"cannot write {path}: {e.strerror}"
    os.close(fd)
    if not existed:
        try:
            os.unlink(path)
        except OSError:
            pass
    return None


OUTPUT_FIX = "give a file in an existing directory ipsbridge may write to"


def output_problems(config: Config) -> list[Problem]:
    """The configured eve-log (ipsbridge.eve-log, outputs' eve-log filename or --eve) cannot be
    written: refused by `run` before any socket is opened, reported by `check`."""
    if not config.eve_log:
        return []
    refusal = output_refusal(config.eve_log)
    if refusal is None:
        return []
    line = config.lines.get("eve-log", 0)
    file = config.source if line and config.source != "<command line>" else None
    return [Problem("ipsbridge", "eve-log", refusal, "point eve-log (or --eve) at a file in an existing directory "
                    "ipsbridge may write to, e.g. /var/log/ipsbridge/eve.json", file, line)]


def startup_problems(config: Config) -> list[Problem]:
    """Live refusals for `run`: missing or non-Ethernet interfaces, unequal peer MTU, capabilities,
    an eve-log that cannot be written."""
    return _capability_problems() + _interface_problems(config, _links()) + output_problems(config)


def _is_link_local(addr: str) -> bool:
    try:
        return ipaddress.ip_interface(addr).ip.is_link_local
    except ValueError:
        return False


def system_problems(config: Config) -> list[Problem]:
    """Everything `check` reports, in interface order then system-wide."""
    links = _links()
    out = _interface_problems(config, links)
    for iface in config.af_packet:
        link = links.get(iface.interface)
        if link is None or link["type"] != ARPHRD_ETHER:
            continue
        out += _link_problems(iface, link)
    out += _capability_problems()
    out += output_problems(config)
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as fh:
            forwarding = fh.read().strip() == "1"
    except OSError:
        forwarding = False
    if forwarding and any(i.copy_mode for i in config.af_packet):
        out.append(_p("system", "ip_forward", "is 1: the kernel routes packets itself, so traffic may "
                      "reach the other side without passing through the IPS",
                      "sysctl -w net.ipv4.ip_forward=0 (unless this host must also route other traffic)",
                      severity="warning"))
    need_v3 = any(i.tpacket_v3 for i in config.af_packet)
    for key, message, fix in _probe_af_packet(need_v3):
        out.append(_p("system", key, message, fix))
    out += _kernel_offload_problems(config)
    out += _prefilter_problems()
    return out


def _prefilter_problems() -> list[Problem]:
    """A warning when the prefilter cannot call libhs itself (rules.prefilter.BACKEND):
    the bridge works, every scan costs more."""
    from rules import prefilter

    if prefilter.BACKEND == "libhs":
        return []
    return [_p("system", "hyperscan", f"the prefilter uses {prefilter.backend_note()}",
               "apt-get install libhyperscan5 (netns-lab/install.sh installs it)", severity="warning")]


def _link_problems(iface: Interface, link: dict) -> list[Problem]:
    name = iface.interface
    inline = iface.copy_mode in ("ips", "tap")
    out = []
    if not link["flags"] & IFF_UP:
        out.append(_p(name, "link", "is down (administratively)", f"ip link set {name} up"))
    elif not link["flags"] & IFF_LOWER_UP:
        out.append(_p(name, "link", f"is up but has no carrier (operstate {link['operstate']})",
                      "check the cable / the peer end of the link", severity="warning"))
    try:
        state = offloads(name)
    except Exception as exc:  # noqa: BLE001 - a driver without ethtool support
        out.append(_p(name, "offloads", f"cannot read offload features: {exc}",
                      f"check with 'ethtool -k {name}'", severity="warning"))
    else:
        if state.on:
            detail = ", ".join(f"{g} ({', '.join(state.on[g])})" for g, _ in OFFLOAD_GROUPS if g in state.on)
            out.append(_p(name, "offloads", f"on: {detail}; merged or unchecksummed frames "
                          "break inspection and forwarding", state.fix_command(name)))
        if state.fixed:
            names = ", ".join(n for g in state.fixed.values() for n in g)
            out.append(_p(name, "offloads", f"fixed on by the driver: {names}",
                          "cannot be changed on this device; use another NIC or driver",
                          severity="warning"))
    if inline and link["master"]:
        kind = link["master_kind"] or "master"
        out.append(_p(name, "master", f"enslaved to {kind} {link['master_name']}: the kernel forwards "
                      "the same traffic, around the IPS",
                      f"ip link set {name} nomaster"))
    if inline:
        addrs = [a for a in link["addresses"] if not _is_link_local(a)]
        if addrs:
            out.append(_p(name, "address", f"has IP address{'es' if len(addrs) > 1 else ''} "
                          f"{', '.join(addrs)}: the host itself talks on a bridged port",
                          "; ".join(f"ip addr del {a} dev {name}" for a in addrs)))
    return out
