"""A three-namespace lab for ipsbridge: client <-> bridge(eth0, eth1) <-> server.

    client ns                 bridge ns                    server ns
    veth0 198.51.100.1/24 --- eth0   [ipsbridge]   eth1 --- veth0 198.51.100.2/24
          2001:db8::1/64                                          2001:db8::2/64

Namespaces, links, addresses and MTUs are made through netlink (pyroute2);
processes started in the lab are tracked and killed by PID at teardown.
Names carry the owner's PID (`<prefix>-<pid>-<rand>-c`), so two runs never
collide and `cleanup_stale()` can remove what a crashed run left behind.  The
kernel offload's tc filters (bridge.ebpf) on the bridge ports are removed before
a bridge namespace goes (`remove_offload_filters`).

Used by the demo and benchmark (netns-lab/lab.py) and by tests/lab (fixture
`lab` in tests/lab/conftest.py).  Documentation addresses only.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pyroute2 import NetNS, netns

REPO = Path(__file__).resolve().parent.parent

CLIENT4, SERVER4, PREFIX4 = "198.51.100.1", "198.51.100.2", 24
CLIENT6, SERVER6, PREFIX6 = "2001:db8::1", "2001:db8::2", 64

_NAME_RE = re.compile(r"^(?P<prefix>[a-z0-9]+)-(?P<pid>\d+)-(?P<rand>[0-9a-f]+)-(?P<role>[a-z0-9]+)$")


class LabError(RuntimeError):
    """The lab could not be built or a step in it failed (never a skip)."""


def _run(argv: list[str], *, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


class BridgeProc:
    """`ipsbridge run` inside the bridge namespace, with its stderr log collected."""

    def __init__(self, lab: "Lab", args: list[str], *, stats_json: str, ready_timeout: float = 20.0):
        self.lab = lab
        self.args = args
        self.stats_json = stats_json
        self.lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._ready = threading.Event()
        self.proc = lab.spawn(
            "bridge",
            sys.executable, "-m", "bridge", "run", *args, "--stats-json", stats_json,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
        )
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.lines, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout_lines, False), daemon=True),
        ]
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + ready_timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                state = f"exited with {self.proc.returncode}" if self.proc.poll() is not None else "not ready in time"
                self.kill()           # first: the pumps reach EOF only once it is gone
                self._join_pumps()
                raise LabError(f"ipsbridge run {' '.join(args)}: {state}\n--- log ---\n" + self.log())

    def _pump(self, stream, sink: list[str], watch_ready: bool) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))
            if watch_ready and '"ready"' in line:
                try:
                    if json.loads(line).get("event") == "ready":
                        self._ready.set()
                except ValueError:
                    pass

    def _join_pumps(self, timeout: float = 15.0) -> None:
        # The log lines after the exit (the "totals" event) are read by these
        # threads; on a loaded machine 2 s per thread was not always enough to
        # reach EOF.  They end as soon as the pipes close, so the bound is only
        # an upper limit for a child that keeps stderr open.
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause_workers(self) -> list[int]:
        """SIGSTOP every worker (PIDs from the "ready" event): their rings fill
        and the kernel drops, however fast or slow this machine is.  Always
        follow with resume_workers()."""
        (ready,) = self.events("ready")
        pids = list(ready["pids"])
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    def resume_workers(self, pids: list[int]) -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def events(self, name: str) -> list[dict]:
        out = []
        for line in list(self.lines):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("event") == name:
                out.append(obj)
        return out

    def log(self) -> str:
        return "\n".join(self.lines + self.stdout_lines)

    def stop(self, timeout: float = 20.0) -> dict:
        """SIGTERM, wait, and return the final totals (the --stats-json file)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise LabError("ipsbridge did not stop within %.0fs of SIGTERM\n%s" % (timeout, self.log()))
        self._join_pumps()
        if self.proc.returncode != 0:
            raise LabError(f"ipsbridge exited with {self.proc.returncode}\n{self.log()}")
        try:
            with open(self.stats_json) as fh:
                return json.load(fh)
        except (OSError, ValueError) as exc:
            raise LabError(f"no final totals in {self.stats_json}: {exc}\n{self.log()}") from exc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Lab:
    """Build with `with Lab() as lab:` (or up()/down()); always torn down."""

    ROLES = ("client", "bridge", "server")

    def __init__(self, prefix: str = "ipsb", *, mtu: int = 1500, client_mtu: int | None = None,
                 server_mtu: int | None = None, offloads: bool = False, ipv6: bool = True):
        if not re.fullmatch(r"[a-z0-9]{1,8}", prefix):
            raise ValueError("prefix: 1-8 lowercase letters/digits")
        self.prefix = prefix
        self.tag = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self.ns = {role: f"{self.tag}-{role[0]}" for role in self.ROLES}
        self.client, self.bridge, self.server = (self.ns[r] for r in self.ROLES)
        self.client_mtu = client_mtu or mtu
        self.server_mtu = server_mtu or mtu
        self.offloads = offloads
        self.ipv6 = ipv6
        self.procs: list[subprocess.Popen] = []
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self._made: list[str] = []

    # -- build / teardown -------------------------------------------------
    def up(self) -> "Lab":
        try:
            for name in self.ns.values():
                netns.create(name)
                self._made.append(name)
            self._veth("client", "veth0", "bridge", "eth0", self.client_mtu)
            self._veth("server", "veth0", "bridge", "eth1", self.server_mtu)
            self._addr("client", "veth0", CLIENT4, PREFIX4)
            self._addr("server", "veth0", SERVER4, PREFIX4)
            if self.ipv6:
                for role in ("client", "server"):  # no DAD delay, no router solicitations noise
                    self.sysctl(role, "net.ipv6.conf.veth0.accept_dad", "0")
                self._addr("client", "veth0", CLIENT6, PREFIX6)
                self._addr("server", "veth0", SERVER6, PREFIX6)
            for role in self.ROLES:
                self.run(role, "ip", "link", "set", "lo", "up")
            if not self.offloads:
                # veth fills no checksum for locally generated frames (CHECKSUM_PARTIAL);
                # the bridge fixes those, but keep the lab's senders honest and the
                # bridged ports free of GRO/TSO as a deployment would be.
                for role, ifname in (("client", "veth0"), ("server", "veth0"), ("bridge", "eth0"), ("bridge", "eth1")):
                    self.set_offloads(role, ifname, on=False)
        except Exception:
            self.down()
            raise
        return self

    def _veth(self, role_a: str, name_a: str, role_b: str, name_b: str, mtu: int) -> None:
        with NetNS(self.ns[role_a]) as ipr:
            ipr.link("add", ifname=name_a, kind="veth", peer={"ifname": name_b, "net_ns_fd": self.ns[role_b]})
            idx = ipr.link_lookup(ifname=name_a)[0]
            ipr.link("set", index=idx, mtu=mtu, state="up")
        with NetNS(self.ns[role_b]) as ipr:
            idx = ipr.link_lookup(ifname=name_b)[0]
            ipr.link("set", index=idx, mtu=mtu, state="up")

    def _addr(self, role: str, ifname: str, address: str, prefixlen: int) -> None:
        with NetNS(self.ns[role]) as ipr:
            idx = ipr.link_lookup(ifname=ifname)[0]
            ipr.addr("add", index=idx, address=address, prefixlen=prefixlen)

    def down(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()
        if self.bridge in self._made:
            remove_offload_filters(self.bridge, all_owners=True)
        for name in self._made:
            _kill_ns_pids(name)
            try:
                netns.remove(name)
            except OSError:
                pass
        self._made.clear()

    def __enter__(self) -> "Lab":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    # -- running things ---------------------------------------------------
    def run(self, role: str, *argv: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        return _run(["ip", "netns", "exec", self.ns[role], *argv], check=check, timeout=timeout, **kw)

    def spawn(self, role: str, *argv: str, **popen_kw) -> subprocess.Popen:
        """Start a process in a namespace; it is killed (by PID, with its group) at teardown."""
        popen_kw.setdefault("stdout", subprocess.DEVNULL)
        popen_kw.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns[role], *argv], start_new_session=True, **popen_kw)
        self.procs.append(proc)
        return proc

    def python(self, role: str, code: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Run a Python snippet in a namespace (with the repo on sys.path)."""
        return self.run(role, sys.executable, "-c", code, *args, timeout=timeout, check=check,
                        env={**os.environ, "PYTHONPATH": str(REPO)})

    def start_bridge(self, *args: str, ready_timeout: float = 20.0) -> BridgeProc:
        """`ipsbridge run ARGS` in the bridge namespace, e.g. start_bridge("--bridge", "eth0:eth1")."""
        stats = self.workdir / f"totals-{len(self.procs)}.json"
        return BridgeProc(self, list(args), stats_json=str(stats), ready_timeout=ready_timeout)

    def write(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(text)
        return path

    # -- knobs ----------------------------------------------------------------
    def sysctl(self, role: str, key: str, value: str) -> None:
        self.run(role, "sysctl", "-q", "-w", f"{key}={value}")

    def set_link(self, role: str, ifname: str, *, up: bool) -> None:
        with NetNS(self.ns[role]) as ipr:
            idx = ipr.link_lookup(ifname=ifname)[0]
            ipr.link("set", index=idx, state="up" if up else "down")

    def set_mtu(self, role: str, ifname: str, mtu: int) -> None:
        with NetNS(self.ns[role]) as ipr:
            idx = ipr.link_lookup(ifname=ifname)[0]
            ipr.link("set", index=idx, mtu=mtu)

    def set_offloads(self, role: str, ifname: str, *, on: bool) -> None:
        """GRO/GSO/TSO and checksum offloads, through ethtool in the namespace."""
        state = "on" if on else "off"
        self.run(role, "ethtool", "-K", ifname, "rx", state, "tx", state, "tso", state,
                 "gso", state, "gro", state, check=False)

    def add_vlan(self, vid: int, *, proto: str = "802.1Q", parent: str = "veth0",
                 addr4: tuple[str, str] | None = None, addr6: tuple[str, str] | None = None) -> str:
        """A VLAN sub-interface `parent.vid` on the client and the server (802.1Q or 802.1ad),
        optionally addressed (client address, server address).  Returns its name."""
        name = f"{parent}.{vid}" if len(f"{parent}.{vid}") <= 15 else f"v{vid}"
        for role, idx in (("client", 0), ("server", 1)):
            self.run(role, "ip", "link", "add", "link", parent, "name", name, "type", "vlan",
                     "protocol", proto, "id", str(vid))
            self.run(role, "ip", "link", "set", name, "up")
            if not self.offloads:
                self.set_offloads(role, name, on=False)
            if addr4:
                self.run(role, "ip", "addr", "add", f"{addr4[idx]}/24", "dev", name)
            if addr6:
                self.sysctl(role, f"net.ipv6.conf.{name.replace('.', '/')}.accept_dad", "0")
                self.run(role, "ip", "addr", "add", f"{addr6[idx]}/64", "dev", name)
        return name

    def add_vlan_tap(self, name: str, tags: list[tuple[int, int]], *,
                     addr4: tuple[str, str] | None = None, addr6: tuple[str, str] | None = None,
                     prefix4: int = 28, mtu: int = 1500, parent: str = "veth0") -> str:
        """A VLAN end point `name` on the client and the server: a tap device whose
        frames cross `parent` with the tag stack `tags` ([(tpid, vid), ...], outer
        first, e.g. [(0x88a8, 200), (0x8100, 300)]).  Works without the 8021q module;
        the taggers are lab processes (killed at teardown).  Returns `name`."""
        spec = ",".join(f"{tpid:04x}:{vid}" for tpid, vid in tags)
        for role, idx in (("client", 0), ("server", 1)):
            spawn_listener(self, role, VLAN_SHIM, name, parent, spec)
            self.run(role, "ip", "link", "set", name, "mtu", str(mtu), "up")
            if addr4:
                self.run(role, "ip", "addr", "add", f"{addr4[idx]}/{prefix4}", "dev", name)
            if addr6:
                self.sysctl(role, f"net.ipv6.conf.{name}.accept_dad", "0")
                self.run(role, "ip", "addr", "add", f"{addr6[idx]}/64", "dev", name)
        return name

    @staticmethod
    def has_8021q() -> bool:
        """Whether this kernel can make VLAN sub-interfaces (`ip link add ... type vlan`)."""
        return Path("/proc/net/vlan").exists()

    def ping(self, role: str, dest: str, *, count: int = 3, size: int | None = None,
             interval: float = 0.2, timeout: float = 30, check: bool = True, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "2", *extra]
        if size is not None:
            argv += ["-s", str(size)]
        return self.run(role, *argv, dest, check=check, timeout=timeout)


def _kill_ns_pids(name: str) -> None:
    proc = _run(["ip", "netns", "pids", name], check=False)
    for pid in proc.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


BRIDGE_PORTS = ("eth0", "eth1")


def remove_offload_filters(ns: str, *, all_owners: bool = False) -> list[str]:
    """Remove ipsbridge's tc filters (and the clsact qdiscs they leave empty) from the
    bridge ports of namespace `ns`: those whose bridge process is gone, or all of them.
    Returns what was removed; never raises (a namespace on its way out is fine)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bridge.ebpf import remove_stale_filters

    try:
        with NetNS(ns) as ipr:
            return remove_stale_filters(BRIDGE_PORTS, all_owners=all_owners, ipr=ipr)
    except Exception as exc:  # noqa: BLE001 - cleanup goes on
        return [f"{ns}: could not clean tc filters: {exc}"]


def cleanup_stale(prefix: str | None = None, *, all_owners: bool = False) -> list[str]:
    """Remove lab namespaces whose owning process is gone (or all of them).

    Kills what still runs inside them first, then removes the kernel offload's tc
    filters from a bridge namespace (labs that are still up belong to their owner: a
    bridge started there again removes its predecessor's stale filters itself).
    Returns the namespace names removed."""
    removed = []
    for name in netns.listnetns():
        m = _NAME_RE.match(name)
        if not m or (prefix and m["prefix"] != prefix):
            continue
        if not all_owners and Path(f"/proc/{m['pid']}").exists():
            continue
        _kill_ns_pids(name)
        if m["role"] == "b":
            remove_offload_filters(name, all_owners=True)
        try:
            netns.remove(name)
            removed.append(name)
        except OSError:
            pass
    return removed


# -- traffic helpers ------------------------------------------------------------
# Added for netns-lab/lab.py (demo, bench) and tests/lab: small Python programs
# run inside the namespaces with real sockets.  Listeners print "listening" once
# bound, so callers never race the first packet.

TCP_SINK = r"""
import hashlib, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(1); s.settimeout(120)
print("listening", flush=True)
c, _ = s.accept(); c.settimeout(120)
h = hashlib.sha256(); n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d); n += len(d)
c.sendall(b"k")
c.close()
print(n, h.hexdigest(), flush=True)
"""

TCP_SOURCE = r"""
import hashlib, os, socket, sys, time
host, port, size, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
data = os.urandom(size)
s = socket.create_connection((host, port), timeout=120)
print("connected", flush=True)
if rate <= 0:
    s.sendall(data)
else:                                   # paced: 64 KiB chunks at `rate` bytes/s
    t0, off, chunk = time.monotonic(), 0, 65536
    while off < size:
        s.sendall(data[off:off + chunk]); off += chunk
        ahead = off / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"""

UDP_COUNT = r"""
import select, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
data = socket.socket(fam, socket.SOCK_DGRAM)
data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
data.bind((host, port))
done = socket.socket(fam, socket.SOCK_DGRAM)
done.bind((host, port + 1))          # the sender's end marker
print("listening", flush=True)
seen, total, finished = set(), 0, False
while True:
    r, _, _ = select.select([data, done], [], [], 0.5 if finished else 60)
    if not r:
        break
    if done in r:
        done.recv(64); finished = True
    if data in r:
        seen.add(data.recv(4096)); total += 1
print(len(seen), total, flush=True)
"""

UDP_SEND = r"""
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b"dgram-%06d" % i, (host, port))
    if i % 50 == 49:
        time.sleep(0.005)
for _ in range(3):
    s.sendto(b"end", (host, port + 1))
"""


def spawn_listener(lab: Lab, role: str, code: str, *args: str, ready: str = "listening") -> subprocess.Popen:
    """Start a Python snippet in a namespace and wait until it prints READY."""
    proc = lab.spawn(role, sys.executable, "-c", code, *args, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    # the READY line only, a byte at a time from the pipe: a buffered readline could also take
    # what the helper printed after it (a short transfer's result), which `finish` (it reads the
    # pipe itself) would then never see
    fd = proc.stdout.fileno()
    raw = b""
    while not raw.endswith(b"\n"):
        b = os.read(fd, 1)
        if not b:
            break
        raw += b
    line = raw.decode(errors="replace")
    if line.strip() != ready:
        proc.kill()
        raise LabError(f"{role} helper did not start: {line!r} {proc.stderr.read()}")
    return proc


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    """Wait for a helper; its stdout (stripped).  Non-zero exit raises LabError."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise LabError(f"helper still running after {timeout:.0f}s: {out!r} {err!r}")
    if proc.returncode != 0:
        raise LabError(f"helper exit {proc.returncode}: {err}")
    return out.strip()


class TcpTransfer:
    """A client -> server TCP transfer of `size` random bytes, running in the
    background; `result()` returns (sent "N sha256", received "N sha256")."""

    def __init__(self, lab: Lab, host: str, size: int, *, port: int = 5001, rate: float = 0,
                 src: str = "client", dst: str = "server"):
        self.sink = spawn_listener(lab, dst, TCP_SINK, host, str(port))
        self.source = spawn_listener(lab, src, TCP_SOURCE, host, str(port), str(size), str(rate),
                                     ready="connected")

    def result(self, timeout: float = 120) -> tuple[str, str]:
        sent = finish(self.source, timeout)
        return sent, finish(self.sink, timeout)


def tcp_transfer(lab: Lab, host: str, size: int, **kw) -> tuple[str, str]:
    return TcpTransfer(lab, host, size, **kw).result()


def udp_burst(lab: Lab, host: str, port: int, n: int) -> tuple[int, int]:
    """Send n datagrams client -> host:port; returns (distinct arrived, total arrived)."""
    recv = spawn_listener(lab, "server", UDP_COUNT, host, str(port))
    lab.python("client", UDP_SEND, host, str(port), str(n))
    distinct, total = map(int, finish(recv).split())
    return distinct, total


# -- VLAN end points without the kernel's 8021q module -------------------------
# Some kernels (this lab's among them) are built without CONFIG_VLAN_8021Q and
# without bridge VLAN filtering, so `ip link add ... type vlan` fails.  A tap
# device plus a small user-space tagger gives the namespace a real IP stack on a
# VLAN all the same: frames from the tap get the tag stack pushed and go out of
# the parent with a packet socket; tagged frames arriving on the parent (the
# kernel reports the stripped outer tag in PACKET_AUXDATA) that match the stack
# exactly are untagged and handed to the tap.

VLAN_SHIM = r"""
import errno, fcntl, os, select, socket, struct, sys
TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
SOL_PACKET, PACKET_AUXDATA, VLAN_VALID, TPID_VALID = 263, 8, 0x10, 0x40
name, parent = sys.argv[1], sys.argv[2]
tags = [(int(t, 16), int(v)) for t, v in (x.split(":") for x in sys.argv[3].split(","))]
hdr = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags)
tap = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
s.bind((parent, 3))
print("listening", flush=True)
while True:
    r, _, _ = select.select([tap, s], [], [])
    if tap in r:
        f = os.read(tap, 65536)
        try:
            s.send(f[:12] + hdr + f[12:])
        except OSError as e:
            print("send", errno.errorcode.get(e.errno, e.errno), file=sys.stderr, flush=True)
    if s in r:
        data, anc, _flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(20))
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        for level, kind, cdata in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _l, _s, _m, _n, tci, tpid = struct.unpack("=IIIHHHH", cdata[:20])
                if status & VLAN_VALID:
                    tpid = tpid if status & TPID_VALID else 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        off = 12
        for tpid, vid in tags:
            if len(data) < off + 4:
                break
            t, tci = struct.unpack_from("!HH", data, off)
            if t != tpid or tci & 0x0FFF != vid:
                break
            off += 4
        else:
            os.write(tap, data[:12] + data[off:])
"""


