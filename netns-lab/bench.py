#!/usr/bin/env python3
"""Benchmark: the kernel bridge, Suricata 7 AF_PACKET IPS and ipsbridge in one
run, in the same lab, on the same rules and the same stream settings.

Contenders (`--contenders`, default all; Suricata only where /usr/bin/suricata
exists): `kernel` (a Linux bridge between the two ports), `suricata`
(af-packet copy-mode ips, workers run mode), `ipsbridge` (its default
`bypass: kernel`: decided flows leave the Python path) and `ipsbridge-off`
(`bypass: off`: every frame goes through the engine, the per-packet cost).

Loads (`--only`, default all, in this order for each contender):
  rtt   500 pings at 2 ms: RTT p50/p99 (ipsbridge decides a ping flow no rule
        applies to and offloads it like any decided flow; the bypass-off row
        shows the inspected path)
  tcp   iperf3, one stream: Gbit/s, retransmissions
  http  nginx in the server namespace, `wrk -t1 -c16 -H 'Connection: close'`
        for a 16 KiB and a 256 KiB object: requests/s, Gbit/s, errors; every
        request a new TCP flow, so no bypass helps its first bytes; neither the
        client nor the server namespace keeps TIME_WAIT sockets
        (tcp_max_tw_buckets 0), so a load never meets the ports of the one
        before it; the per-load TCP counters of both ends (retransmissions,
        timeouts, resets, accept-queue overflows) go to the progress lines
        and the JSON
  udp   64-byte frames from one Python sender: sent, delivered, loss
  drop  (with rules) a UDP burst to port 9999 and a TCP flow carrying
        BENCH-DROP-MARKER (netns-lab/bench-drop.rules, added to every rule
        set): nothing of the first may arrive, the second only up to the marker
and 5 pings after the flood to see that forwarding recovered.  CPU per frame
of each load is the forwarding process tree's utime+stime (/proc) over the
frames the two bridge ports sent on (forwarded): a frame the kernel dropped
from a full ring never reached the engine and cost its process nothing.  In
the UDP flood nothing is dropped by rule and, with `bypass: off`, every
datagram is inspected, so that row's "CPU us per UDP packet" is the cost per
inspected packet.

Rules (`--rules`): FILE; `etopen` or `etopen:N` (the ET Open rules of
../shared/corpus/rules/et-open that ipsbridge's loader accepts, the first N in
file order of the sorted files); or a number N (N seeded synthetic rules,
tests/bench/gen_rules.py).  One file is written and given to both engines,
with HOME_NET the lab's ranges and EXTERNAL_NET any, so rules of either
direction apply to the lab's traffic.  Both engines get the same `stream:`
section: `stream.bypass: yes` (Suricata's own setting: once either direction
reaches stream.reassembly.depth the flow is bypassed) unless
`--no-stream-bypass`.  Both get the same number of packet workers:
`--threads N` (default 1) is Suricata's `threads` on each interface, 2N
threads in all, each reading one interface and writing to the other; an
ipsbridge worker serves both interfaces of its flows, so ipsbridge's pair
gets `threads: 2N`.

`--rounds N` measures every contender N times, interleaved (round 1 all
contenders, round 2 all, ...), and reports the median of each number.
Prints markdown tables (values, ratios to Suricata and to the kernel bridge,
the issue-8 targets, details) with the command line; `--json FILE` writes
everything as JSON (`--json -`: JSON on stdout, tables on stderr).  Progress
lines go to stderr.  Asserts nothing: the numbers are the result.

    sudo python3 netns-lab/lab.py bench [--seconds 5] [--rounds 3] [--rules etopen|etopen:N|N|FILE]
                                        [--only rtt,tcp,http,udp,drop] [--contenders kernel,suricata,...]
                                        [--no-stream-bypass] [--threads N] [--json FILE]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(HERE), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import netnslab  # noqa: E402
from netnslab import SERVER4, LabError  # noqa: E402

SURICATA = "/usr/bin/suricata"
NGINX = "nginx"
WRK = "wrk"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ET_DIR = REPO.parent / "shared" / "corpus" / "rules" / "et-open"
DROP_RULES = HERE / "bench-drop.rules"
# The lab's addresses are documentation ranges (netnslab.CLIENT4/SERVER4, CLIENT6/SERVER6):
# both ends are HOME_NET and EXTERNAL_NET is any, so a rule written either way round
# ($EXTERNAL_NET -> $HOME_NET or $HOME_NET -> $EXTERNAL_NET) applies to both directions.
HOME_NET = "[198.51.100.0/24,2001:db8::/32]"
EXTERNAL_NET = "any"

TESTS = ("rtt", "tcp", "http", "udp", "drop")
CONTENDERS = ("kernel", "suricata", "ipsbridge", "ipsbridge-off")
HTTP_OBJECTS = (("http16k", 16 * 1024), ("http256k", 256 * 1024))


def http_object(name: str, size: int) -> bytes:
    """The bytes nginx serves as `name`: `size` random bytes from a seed of the name, the
    same in every run and on every machine."""
    return random.Random(f"ipsbridge-bench-{name}").randbytes(size)
HTTP_PORT = 80                       # $HTTP_PORTS: the ET rules written for web traffic apply
DROP_UDP_PORT = 9999                 # bench-drop.rules
DROP_MARKER = "BENCH-DROP-MARKER"    # bench-drop.rules
DROP_BURST = 100

# Issue 8's targets for ipsbridge (default row; CPU from the bypass-off row), as
# (label, key, "ge"/"le", reference, factor): reference "suricata" or "kernel".
TARGETS = (
    ("TCP >= 1.5x Suricata", "tcp_gbps", "ge", "suricata", 1.5),
    ("TCP >= 0.8x kernel bridge", "tcp_gbps", "ge", "kernel", 0.8),
    ("HTTP 16 KiB req/s >= 1.0x Suricata", "http16k_rps", "ge", "suricata", 1.0),
    ("HTTP 256 KiB req/s >= 1.2x Suricata", "http256k_rps", "ge", "suricata", 1.2),
    ("64-B UDP delivered pps >= 1.0x Suricata", "udp_delivered_pps", "ge", "suricata", 1.0),
    ("RTT p50 <= Suricata's", "rtt_p50_us", "le", "suricata", 1.0),
    ("CPU per inspected packet (bypass off) <= 1.5x Suricata's", "udp_cpu_us_frame", "le", "suricata", 1.5),
)


def say(msg: str) -> None:
    """A progress line (stderr, so `--json -` keeps stdout clean)."""
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ process CPU
def tree_pids(root: int) -> list[int]:
    """root and all its descendants (from /proc/*/stat parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])       # utime, stime (fields 14 and 15)
    return total / CLK_TCK


def alive(pid: int) -> bool:
    """Whether `pid` is a process that still runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ------------------------------------------------------------------ rules and settings
@dataclass(frozen=True)
class RuleSet:
    label: str              # what the header says: "netns-lab/bench-100.rules", "etopen (7541)"
    path: Path | None       # the one file both engines load (None: no rules)
    rules: int              # rules in it, bench-drop.rules included
    ipsbridge_loaded: int   # of those, what ipsbridge's loader accepts
    drop_check: bool


def vars_yaml() -> str:
    """Every address and port group Suricata's stock suricata.yaml defines (Suricata has no
    built-in values, and a rule naming an undefined group fails there), HOME_NET and
    EXTERNAL_NET set for the lab."""
    from rules.settings import DEFAULT_ADDRESS_GROUPS, DEFAULT_PORT_GROUPS

    groups = {**DEFAULT_ADDRESS_GROUPS, "HOME_NET": HOME_NET, "EXTERNAL_NET": EXTERNAL_NET}
    return ("vars:\n  address-groups:\n" + "".join(f'    {k}: "{v}"\n' for k, v in groups.items())
            + "  port-groups:\n" + "".join(f'    {k}: "{v}"\n' for k, v in DEFAULT_PORT_GROUPS.items()))


def stream_yaml(bypass: bool) -> str:
    """The one stream section both engines get (Suricata's defaults, bypass as asked)."""
    return f"""stream:
  memcap: 64mb
  inline: auto
  bypass: {"yes" if bypass else "no"}
  reassembly:
    memcap: 256mb
    depth: 1mb
    toserver-chunk-size: 2560
    toclient-chunk-size: 2560
"""


def classification_file() -> str:
    """ET Open's classification.config when the corpus is there (ET rules name its classtypes)."""
    et = ET_DIR / "classification.config"
    return str(et) if et.is_file() else str(REPO / "conf" / "classification.config")


def _loader_config():
    from conf.load import load_text

    return load_text(vars_yaml() + f"classification-file: {classification_file()}\n", source="<bench>")


def _loadable(paths: list[str]):
    from conf.build import load_rules

    return load_rules(_loader_config(), paths)


def count_rules(path: Path) -> int:
    from rules.loader import logical_lines

    return sum(1 for line, _, _ in logical_lines(path.read_text(errors="replace"))
               if line.strip() and not line.lstrip().startswith("#"))


def resolve_rules(spec: str | None, workdir: Path) -> RuleSet:
    """`--rules` -> the one rule file both engines load (bench-drop.rules appended)."""
    if spec is None:
        return RuleSet("none", None, 0, 0, False)
    if spec == "etopen" or spec.startswith("etopen:"):
        limit = None
        if spec != "etopen":
            try:
                limit = int(spec.split(":", 1)[1])
            except ValueError:
                raise SystemExit(f"bench.py: --rules {spec}: write etopen or etopen:N with N a number") from None
            if limit < 1:
                raise SystemExit(f"bench.py: --rules {spec}: N must be at least 1")
        files = sorted(glob.glob(str(ET_DIR / "*.rules")))
        if not files:
            raise SystemExit(f"bench.py: --rules {spec}: no ET Open rules in {ET_DIR}")
        say(f"rules: loading ET Open from {ET_DIR} with ipsbridge's loader ...")
        res = _loadable(files)
        chosen = res.rules if limit is None else res.rules[:limit]
        body = "\n".join(r.text for r in chosen) + "\n"
        label = f"ET Open, {len(chosen)} of the {res.counts['loaded']} rules ipsbridge loads " \
                f"({res.counts['total']} active in {len(files)} files)"
    elif spec.isdigit():
        sys.path.insert(0, str(REPO / "tests" / "bench"))
        from gen_rules import generate

        body = "\n".join(generate(int(spec))) + "\n"
        label = f"{spec} synthetic rules (tests/bench/gen_rules.py, seed 1)"
    else:
        src = Path(spec)
        if not src.is_file():
            raise SystemExit(f"bench.py: --rules {spec}: no such file (or write etopen, etopen:N, N)")
        body = src.read_text(errors="replace")
        label = str(src)
    path = workdir / "bench.rules"
    path.write_text(body.rstrip("\n") + "\n\n# drop checks (netns-lab/bench-drop.rules)\n" + DROP_RULES.read_text())
    loaded = len(_loadable([str(path)]).rules)
    return RuleSet(label, path, count_rules(path), loaded, True)


# ------------------------------------------------------------------ contenders
class Contender:
    key = "?"
    name = "?"

    def __init__(self, lab: netnslab.Lab):
        self.lab = lab

    def start(self) -> None: ...
    def stop(self) -> dict: return {}

    def pids(self) -> list[int]:
        return []


def workers_for(threads: int) -> int:
    """ipsbridge's `threads` for the pair when Suricata gets `threads` per interface."""
    return 2 * threads


class IpsBridge(Contender):
    def __init__(self, lab, threads: int, rules: RuleSet, stream_bypass: bool, bypass: str = "kernel"):
        super().__init__(lab)
        self.threads = threads
        self.rules = rules
        self.stream_bypass = stream_bypass
        self.bypass = bypass
        self.key = "ipsbridge" if bypass == "kernel" else f"ipsbridge-{bypass}"
        self.name = "ipsbridge" + ("" if bypass == "kernel" else f" (bypass: {bypass})") \
            + (f", threads {threads}" if threads != 1 else "")

    def config(self) -> str:
        # the same number of packet workers as Suricata: its `threads: N` on each of the two
        # interfaces runs 2N threads, each reading one interface and writing the other; an
        # ipsbridge worker serves both interfaces of its flows, so the pair gets 2N of them
        ports = "".join(f"""  - interface: {a}
    copy-mode: ips
    copy-iface: {b}
    threads: {workers_for(self.threads)}
    bypass: {self.bypass}
""" for a, b in (("eth0", "eth1"), ("eth1", "eth0")))
        return (vars_yaml() + f"classification-file: {classification_file()}\n"
                + stream_yaml(self.stream_bypass) + "af-packet:\n" + ports)

    def start(self):
        cfg = self.lab.write(f"ipsbridge-{self.bypass}.yaml", self.config())
        extra = ("-S", str(self.rules.path)) if self.rules.path else ()
        self.proc = self.lab.start_bridge("-c", str(cfg), "--stats-interval", "0", *extra, ready_timeout=300)
        # what bypass is in effect: `kernel` falls back to `user` with one warning when the
        # kernel cannot (bridge.supervisor); the row must not claim an offload it did not have
        self.in_effect = self.bypass
        if self.bypass == "kernel":
            fallback = self.proc.events("kernel_offload_unavailable")
            self.in_effect = f"user (kernel offload unavailable: {fallback[0].get('reason')})" if fallback \
                else "kernel" if self.proc.events("kernel_offload") else "kernel (no kernel_offload event)"

    def pids(self):
        return tree_pids(self.proc.pid)

    def stop(self):
        totals = self.proc.stop()
        out: dict = {k: {"kernel_drops": v["kernel_drops"], "send_errors": v["send_errors"]}
                     for k, v in totals["interfaces"].items()}
        flat = _flat(totals)
        extra = {k: v for k, v in flat.items() if "bypass" in k}
        if extra:
            out["bypass"] = extra
        # the frames it did not forward, nonzero counts: each interface's `dropped` by reason
        # (bridge.stats: the fast path's drops and the engine's, once each; a slow load's lost
        # frames, if they were ours).  Not the engine's own drops.* (the same frames again, less
        # the fast path's) nor kernel_drops (above, per interface)
        out["drops"] = {k: v for k, v in flat.items()
                        if k.startswith("interfaces.") and (".dropped." in k or ".would_drop." in k)
                        and isinstance(v, (int, float)) and v}
        out["bypass_in_effect"] = self.in_effect
        return out


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class KernelBridge(Contender):
    key = "kernel"
    name = "kernel bridge"

    def start(self):
        run = self.lab.run
        run("bridge", "ip", "link", "add", "br0", "type", "bridge", "stp_state", "0")
        run("bridge", "ip", "link", "set", "eth0", "master", "br0")
        run("bridge", "ip", "link", "set", "eth1", "master", "br0")
        run("bridge", "ip", "link", "set", "br0", "up")

    def stop(self):
        self.lab.run("bridge", "ip", "link", "del", "br0")
        return {}


SURICATA_YAML = """%YAML 1.1
---
# Inline AF_PACKET set-up for the benchmark: eth0 <-> eth1, one thread each,
# V2 rings (no block latency), no outputs; vars and stream as ipsbridge's.
{vars}default-log-dir: {workdir}
default-rule-path: {workdir}
rule-files: [bench.rules]
classification-file: {classification}
reference-config-file: {reference}
{stream}outputs: []
stats: {{enabled: no}}
logging:
  default-log-level: info
  outputs:
    - console: {{enabled: yes}}
af-packet:
  - interface: eth0
    copy-mode: ips
    copy-iface: eth1
    threads: {threads}
    cluster-id: 97
    cluster-type: cluster_flow
    use-mmap: yes
    tpacket-v3: no
    defrag: no
    checksum-checks: no
  - interface: eth1
    copy-mode: ips
    copy-iface: eth0
    threads: {threads}
    cluster-id: 96
    cluster-type: cluster_flow
    use-mmap: yes
    tpacket-v3: no
    defrag: no
    checksum-checks: no
"""


def code_version() -> str:
    """The ipsbridge code measured: commit, and the files that differ from it (the lab runs
    the working tree)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True, timeout=30,
                                  check=False).stdout.rstrip()
        except OSError:
            return ""
    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return head + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")


def suricata_version() -> str:
    try:
        out = subprocess.run([SURICATA, "-V"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "7"
    m = re.search(r"version (\S+)", out)
    return m[1] if m else "7"


class Suricata(Contender):
    key = "suricata"

    def __init__(self, lab, threads: int, rules: RuleSet, stream_bypass: bool, version: str):
        super().__init__(lab)
        self.threads = threads
        self.rules = rules
        self.stream_bypass = stream_bypass
        self.name = f"Suricata {version}" + (f", threads {threads}" if threads != 1 else "")
        self.loaded: str | None = None

    def start(self):
        wd = self.lab.workdir / "suricata"
        wd.mkdir(exist_ok=True)
        rules = wd / "bench.rules"
        rules.write_text(self.rules.path.read_text() if self.rules.path else "")
        reference = Path("/etc/suricata/reference.config")
        if not reference.is_file():
            reference = wd / "reference.config"
            reference.write_text("")
        cfg = wd / "bench.yaml"
        cfg.write_text(SURICATA_YAML.format(vars=vars_yaml(), workdir=wd, classification=classification_file(),
                                            reference=reference, stream=stream_yaml(self.stream_bypass),
                                            threads=self.threads))
        self.log = wd / "console.log"
        with open(self.log, "w") as log:
            self.proc = self.lab.spawn("bridge", SURICATA, "-c", str(cfg), "--af-packet", "-k", "none",
                                       "--runmode", "workers", "-l", str(wd), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"suricata exited {self.proc.returncode}:\n{self.log.read_text()}")
            text = self.log.read_text()
            if "threads are running" in text or "Engine started" in text:
                break
            time.sleep(0.2)
        else:
            raise LabError(f"suricata not running after 300 s:\n{self.log.read_text()}")
        m = re.search(r"(\d+) rules successfully loaded, (\d+) rules failed", self.log.read_text())
        self.loaded = f"{m[1]} loaded, {m[2]} failed" if m else None
        time.sleep(0.5)

    def pids(self):
        return tree_pids(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return {"rules": self.loaded} if self.loaded else {}


# ------------------------------------------------------------------ nginx (server namespace)
NGINX_CONF = """# nginx for the benchmark: private prefix, pid, logs and temp dirs (no system service)
user root;
worker_processes 1;
pid {wd}/nginx.pid;
error_log {wd}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {wd}/tmp/body;
    proxy_temp_path {wd}/tmp/proxy;
    fastcgi_temp_path {wd}/tmp/fastcgi;
    uwsgi_temp_path {wd}/tmp/uwsgi;
    scgi_temp_path {wd}/tmp/scgi;
    sendfile on;
    default_type application/octet-stream;
    server {{
        listen {addr}:{port} backlog=4096;
        root {wd}/www;
    }}
}}
"""

WRK_DONE_LUA = r"""-- prints the run's summary as one JSON line (exact counts, not wrk's rounded text)
done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format('WRK {"duration_us": %d, "requests": %d, "bytes": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d, "latency_p50_us": %d}\n',
    s.duration, s.requests, s.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50)))
end
"""


class Nginx:
    """nginx in the server namespace, its own config/pid/log dir under the lab's workdir,
    in the foreground (`daemon off`) so the lab knows its PID; stopped by PID."""

    def __init__(self, lab: netnslab.Lab):
        self.lab = lab
        self.wd = lab.workdir / "nginx"
        self.proc: subprocess.Popen | None = None
        self.pids: list[int] = []

    def start(self) -> None:
        # Every request is a new connection the server closes first, so the server keeps each
        # in TIME_WAIT for 60 s, and a fast contender goes through the client's whole port
        # range (28,232 ports) in 5 s: the next contender's SYNs then meet those TIME_WAIT
        # sockets and stall (measured: Suricata 361 req/s right after the kernel bridge's run,
        # 3,186 without one).  The server keeps no TIME_WAIT sockets, so no load inherits one.
        # The client closes too (wrk, once a response is complete), and its TIME_WAIT sockets
        # live as long: once they hold about half the port range (14,100 of 28,232: the half
        # connect() picks from first), every connect() searches past them, and a load that
        # starts within 60 s of a fast one ran at 400-550 req/s with a 14-20 ms median and no
        # frame lost, whatever forwarded it (the kernel bridge included; measured with the
        # counters of tcp_counters).  Neither end keeps them.
        for role in ("server", "client"):
            self.lab.sysctl(role, "net.ipv4.tcp_max_tw_buckets", "0")
        (self.wd / "www").mkdir(parents=True, exist_ok=True)
        (self.wd / "tmp").mkdir(exist_ok=True)
        # The objects are random bytes, the same in every run (seeded): what a body holds
        # decides which fast patterns each engine meets in it (an FTP rule's "MKD" in one
        # file, nothing in another), so fresh bytes per run moved both engines' rates
        for name, size in HTTP_OBJECTS:
            (self.wd / "www" / f"{name}.bin").write_bytes(http_object(name, size))
        conf = self.wd / "nginx.conf"
        conf.write_text(NGINX_CONF.format(wd=self.wd, addr=SERVER4, port=HTTP_PORT))
        self.proc = self.lab.spawn("server", NGINX, "-p", str(self.wd), "-c", str(conf),
                                   "-e", str(self.wd / "error.log"), "-g", "daemon off;")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"nginx exited {self.proc.returncode}: {self.error_log()}")
            ss = self.lab.run("server", "ss", "-Hltn", f"sport = :{HTTP_PORT}", check=False).stdout
            if ss.strip():
                break
            time.sleep(0.1)
        else:
            raise LabError(f"nginx not listening on {SERVER4}:{HTTP_PORT} after 20 s: {self.error_log()}")
        self.pids = tree_pids(self.proc.pid)

    def error_log(self) -> str:
        try:
            return (self.wd / "error.log").read_text()[-1000:]
        except OSError:
            return ""

    def stop(self) -> dict:
        """SIGTERM to the master (it stops and reaps its workers), SIGKILL to the group
        if it has not within 10 s.  Returns what was stopped and whether anything is left."""
        if self.proc is None:
            return {}
        pids = sorted(set(self.pids) | set(tree_pids(self.proc.pid)))
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in pids if alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return {"pids": pids, "left_running": left, "pid_file_removed": not (self.wd / "nginx.pid").exists()}


def wrk(lab, lua: Path, url: str, seconds: int) -> dict:
    proc = lab.run("client", WRK, "-t1", "-c16", f"-d{seconds}s", "--timeout", "5s", "-H", "Connection: close",
                   "-s", str(lua), url, check=False, timeout=seconds + 60)
    m = re.search(r"^WRK (\{.*\})$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not m:
        raise LabError(f"wrk {url}: exit {proc.returncode}\n{proc.stdout[-800:]}\n{proc.stderr[-500:]}")
    return json.loads(m[1])


# ------------------------------------------------------------------ measurements
def port_frames(lab) -> tuple[int, int]:
    """(received, sent) frames of the two bridge ports so far.  Sent = what the forwarder
    forwarded: the frames it handled, less those it dropped by rule (none in the loads).
    Received also counts frames the kernel dropped from a full ring, which no engine saw."""
    out = lab.run("bridge", "cat", *(f"/sys/class/net/{port}/statistics/{kind}_packets"
                                     for kind in ("rx", "tx") for port in ("eth0", "eth1"))).stdout.split()
    n = [int(x) for x in out]
    return n[0] + n[1], n[2] + n[3]


# TCP counters of a namespace (/proc/net/snmp and /proc/net/netstat) whose change over an HTTP
# load says where a slow round's time went: retransmissions and timeouts (frames lost on the
# path), SYN retries, a full accept queue, resets.
TCP_COUNTERS = ("Tcp:ActiveOpens", "Tcp:PassiveOpens", "Tcp:RetransSegs", "Tcp:AttemptFails",
                "Tcp:OutRsts", "TcpExt:TCPTimeouts", "TcpExt:TCPSynRetrans", "TcpExt:ListenOverflows",
                "TcpExt:ListenDrops", "TcpExt:TCPAbortOnData", "TcpExt:TCPAbortOnClose",
                "TcpExt:TCPDelivered", "TcpExt:DelayedACKs", "TcpExt:TCPBacklogDrop")

TCP_TROUBLE = ("Tcp:RetransSegs", "TcpExt:TCPTimeouts", "TcpExt:TCPSynRetrans", "TcpExt:ListenOverflows",
               "Tcp:AttemptFails", "Tcp:OutRsts")


def tcp_counters(lab, role: str) -> dict[str, int]:
    """The TCP_COUNTERS of one namespace now, and its sockets by state (`sockets:TIME-WAIT`...)."""
    text = lab.run(role, "cat", "/proc/net/snmp", "/proc/net/netstat").stdout.splitlines()
    out: dict[str, int] = {}
    for names, values in zip(text[::2], text[1::2]):
        proto, names = names.split(":", 1)
        for k, v in zip(names.split(), values.split(":", 1)[1].split()):
            if f"{proto}:{k}" in TCP_COUNTERS:
                out[f"{proto}:{k}"] = int(v)
    for line in lab.run(role, "ss", "-tanH").stdout.splitlines():
        if line.split():
            key = f"sockets:{line.split()[0]}"
            out[key] = out.get(key, 0) + 1
    return out


def tcp_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Counters: what changed (nonzero only); sockets: the count before the load."""
    out = {k: after.get(k, 0) - v for k, v in before.items() if not k.startswith("sockets:")}
    out = {k: v for k, v in out.items() if v}
    out.update({f"{k} before": v for k, v in before.items() if k.startswith("sockets:")})
    return out


def settle(lab, port: int, limit: float = 10.0) -> tuple[float, int]:
    """Wait (up to `limit` s) until the client and server namespaces hold no TCP socket of
    `port` but its listener; (seconds waited, sockets still open then).  Those still open
    are then closed (`ss -K`), so that no contender inherits another's: their FIN
    retransmissions would reach it mid-stream (an IPS drops those: midstream policy)."""
    t0 = time.monotonic()
    sel = f"( sport = :{port} or dport = :{port} )"
    while True:
        left = sum(len([ln for ln in lab.run(role, "ss", "-tanH", "state", "connected", sel).stdout.splitlines()
                        if ln.strip()]) for role in ("client", "server"))
        if not left or time.monotonic() - t0 > limit:
            break
        time.sleep(0.1)
    waited = round(time.monotonic() - t0, 2)
    if left:
        for role in ("client", "server"):
            lab.run(role, "ss", "-K", "-tanH", "state", "connected", sel, check=False)
    return waited, left


def iperf(lab, seconds: int, *extra: str) -> dict:
    server = lab.spawn("server", "iperf3", "-s", "-1", "-B", SERVER4, "-p", "5201")
    time.sleep(0.3)
    try:
        proc = lab.run("client", "iperf3", "-c", SERVER4, "-p", "5201", "-t", str(seconds), "-J", *extra,
                       check=False, timeout=seconds + 60)
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise LabError(f"iperf3 {' '.join(extra)}: {proc.stdout[-500:]} {proc.stderr[-500:]}") from exc


UDP_SINK = r"""
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
n = 0
select.select([s], [], [], 60)
s.setblocking(False)
while True:
    try:
        while True:
            s.recv(64); n += 1
    except BlockingIOError:
        pass
    if not select.select([s], [], [], 1.0)[0]:
        break
print(n, flush=True)
"""

UDP_BLAST = r"""
import socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, port))
payload = b"x" * 18                     # 18 + 8 + 20 + 14 = 60 bytes: a 64-byte frame on the wire
send = s.send
n = 0
t0 = time.monotonic()
end = t0 + secs
while True:
    for _ in range(256):
        try:
            send(payload); n += 1
        except OSError:
            pass
    if time.monotonic() >= end:
        break
print(n, time.monotonic() - t0, flush=True)
"""


def udp_blast(lab, seconds: int) -> tuple[int, int, float]:
    """64-byte frames client -> server as fast as one Python sender goes: (sent, delivered, seconds)."""
    sink = netnslab.spawn_listener(lab, "server", UDP_SINK, SERVER4, "5300")
    out = lab.run("client", sys.executable, "-c", UDP_BLAST, SERVER4, "5300", str(seconds),
                  timeout=seconds + 60).stdout.split()
    delivered = int(netnslab.finish(sink, timeout=90))
    return int(out[0]), delivered, float(out[1])


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
s.sendall(b"here comes %s\n" % sys.argv[3].encode()); time.sleep(0.3)
s.sendall(b"bye\n"); time.sleep(0.5)
s.close()
"""


def drop_check(lab) -> dict:
    """bench-drop.rules in action: a UDP burst to the dropped port (none may arrive) and a TCP
    flow whose third segment carries the marker (hello arrives; the marker and what follows it
    in the dropped flow do not)."""
    distinct, _ = netnslab.udp_burst(lab, SERVER4, DROP_UDP_PORT, DROP_BURST)
    server = netnslab.spawn_listener(lab, "server", MARKER_SERVER, SERVER4, "5005")
    lab.python("client", MARKER_CLIENT, SERVER4, "5005", DROP_MARKER, check=False)
    got = netnslab.finish(server, timeout=40)
    # the dropped flow's ends would retransmit their FINs for minutes, into the next contender
    # (which sees them mid-stream); close them here, while this contender is still in place
    for role in ("client", "server"):
        lab.run(role, "ss", "-K", "-tanH", "( sport = :5005 or dport = :5005 )", check=False)
    tcp_ok = got.startswith("hello") and DROP_MARKER not in got and "bye" not in got
    return {"drop_udp_arrived": distinct, "drop_tcp_arrived": got,
            "drop_ok": distinct == 0 and tcp_ok}


@dataclass
class Context:
    lab: netnslab.Lab
    seconds: int
    tests: tuple[str, ...]
    lua: Path | None
    drop_check: bool


def measure(ctx: Context, contender: Contender, tag: str) -> dict:
    lab = ctx.lab
    res: dict = {"name": contender.name, "key": contender.key}
    lab.ping("client", SERVER4, count=3, interval=0.2)

    def run_with_cpu(fn, name: str):
        """fn() with the contender's CPU time per forwarded frame (frames that reached the
        engine and went on; a frame the kernel dropped from a full ring cost no process CPU)."""
        pids = contender.pids()
        (rx0, tx0), c0 = port_frames(lab), cpu_seconds(pids)
        out = fn()
        (rx1, tx1), c1 = port_frames(lab), cpu_seconds(contender.pids() or pids)
        res[f"{name}_frames_received"], res[f"{name}_frames_forwarded"] = rx1 - rx0, tx1 - tx0
        cpu = (c1 - c0) * 1e6 / (tx1 - tx0) if pids and tx1 > tx0 else None
        res[f"{name}_cpu_us_frame"] = cpu
        return out, cpu

    def cpu_text(v):
        return "" if v is None else f", CPU {v:.2f} us/frame"

    if "rtt" in ctx.tests:
        ping = lab.run("client", "ping", "-n", "-i", "0.002", "-c", "500", "-W", "1", SERVER4,
                       check=False, timeout=60)
        rtts = sorted(float(x) * 1000 for x in re.findall(r"time=([\d.]+) ms", ping.stdout))
        if len(rtts) < 100:
            raise LabError(f"ping: only {len(rtts)} replies\n{ping.stdout[-500:]}")
        res["rtt_replies"] = len(rtts)
        res["rtt_p50_us"] = statistics.median(rtts)
        res["rtt_p99_us"] = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
        say(f"{tag}: RTT p50 {res['rtt_p50_us']:.0f} us, p99 {res['rtt_p99_us']:.0f} us")

    if "tcp" in ctx.tests:
        tcp, cpu = run_with_cpu(lambda: iperf(lab, ctx.seconds), "tcp")
        if "error" in tcp:
            raise LabError(f"iperf3 TCP: {tcp['error']}")
        res["tcp_gbps"] = tcp["end"]["sum_received"]["bits_per_second"] / 1e9
        res["tcp_retrans"] = tcp["end"]["sum_sent"].get("retransmits", 0)
        say(f"{tag}: TCP {res['tcp_gbps']:.3f} Gbit/s, {res['tcp_retrans']} retransmissions{cpu_text(cpu)}")

    if "http" in ctx.tests:
        settle_s, left_open = 0.0, 0
        for name, size in HTTP_OBJECTS:
            url = f"http://{SERVER4}:{HTTP_PORT}/{name}.bin"
            tcp0 = {role: tcp_counters(lab, role) for role in ("client", "server")}
            w, cpu = run_with_cpu(lambda url=url: wrk(lab, ctx.lua, url, ctx.seconds), name)
            res[f"{name}_tcp"] = {role: tcp_delta(tcp0[role], tcp_counters(lab, role))
                                  for role in ("client", "server")}
            secs = w["duration_us"] / 1e6
            errors = w["connect"] + w["read"] + w["write"] + w["timeout"] + w["status"]
            res[f"{name}_requests"] = w["requests"]
            res[f"{name}_rps"] = w["requests"] / secs if secs else 0.0
            res[f"{name}_gbps"] = w["bytes"] * 8 / secs / 1e9 if secs else 0.0
            res[f"{name}_errors"] = errors
            res[f"{name}_latency_p50_us"] = w["latency_p50_us"]
            losses = ", ".join(f"{role} {k.split(':')[1]} {v}" for role, d in res[f"{name}_tcp"].items()
                               for k, v in d.items() if k in TCP_TROUBLE)
            say(f"{tag}: HTTP {size // 1024} KiB {res[f'{name}_rps']:,.0f} req/s, "
                f"{res[f'{name}_gbps']:.3f} Gbit/s, {errors} errors, p50 {w['latency_p50_us'] / 1e3:.1f} ms"
                f"{cpu_text(cpu)}{'; ' + losses if losses else ''}")
            # wrk leaves its last 16 connections closing; let them finish through this contender
            # before the next load starts (its counters then see only its own connections: a
            # SYN-RECV left by the 16 KiB load once showed up before the 256 KiB one), and the
            # next contender never meets their retransmissions mid-stream (an IPS drops those)
            waited, left = settle(lab, HTTP_PORT)
            settle_s += waited
            left_open += left
        res["http_settle_s"], res["http_left_open"] = round(settle_s, 2), left_open

    if "udp" in ctx.tests:
        udp, cpu = run_with_cpu(lambda: udp_blast(lab, ctx.seconds), "udp")
        sent, delivered, secs = udp
        res["udp_sent"] = sent
        res["udp_delivered"] = delivered
        res["udp_loss_pct"] = 100.0 * (sent - delivered) / sent if sent else 0.0
        res["udp_delivered_pps"] = delivered / secs
        after = lab.ping("client", SERVER4, count=5, interval=0.2, check=False)
        m = re.search(r"(\d+) received", after.stdout)
        res["after_flood"] = f"{m[1] if m else 0}/5"
        say(f"{tag}: UDP64 {res['udp_delivered_pps'] / 1e3:.1f} kpps delivered of "
            f"{sent / secs / 1e3:.1f} kpps sent{cpu_text(cpu)}; pings after the flood {res['after_flood']}")

    if "drop" in ctx.tests and ctx.drop_check and contender.key != "kernel":
        res.update(drop_check(lab))
        say(f"{tag}: drop check {'passed' if res['drop_ok'] else 'FAILED'} (UDP to port {DROP_UDP_PORT}: "
            f"{res['drop_udp_arrived']}/{DROP_BURST} arrived; TCP flow: {res['drop_tcp_arrived']!r} arrived)")
    return res


# ------------------------------------------------------------------ report
def median_of(all_rounds: list[dict]) -> dict:
    """Each number the median over the rounds that did not fail (texts from the first of them);
    drop_ok: every round.  `rounds_ok`/`rounds_failed` say what the row is made of."""
    rounds = [r for r in all_rounds if "error" not in r]
    failed = len(all_rounds) - len(rounds)
    if not rounds:
        return {"name": all_rounds[0]["name"], "key": all_rounds[0]["key"], "rounds_ok": 0,
                "rounds_failed": failed, "error": all_rounds[-1]["error"]}
    out = dict(rounds[0])
    out["rounds_ok"], out["rounds_failed"] = len(rounds), failed
    for k, v in rounds[0].items():
        if isinstance(v, bool):
            out[k] = all(r.get(k) is True for r in rounds)
        elif isinstance(v, (int, float)):
            vals = [r[k] for r in rounds if isinstance(r.get(k), (int, float))]
            out[k] = statistics.median(vals) if vals else None
    for k in {k for r in rounds for k in r} - set(out):     # a number only later rounds had
        vals = [r[k] for r in rounds if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
        out[k] = statistics.median(vals) if vals else None
    if failed:
        out["error"] = next(r["error"] for r in all_rounds if "error" in r)
    return out


def fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


# the main table: (header, key, format, scale, higher is better)
MAIN_COLS = (
    ("TCP Gbit/s", "tcp_gbps", ".2f", 1, True),
    ("64-B UDP delivered kpps", "udp_delivered_pps", ".1f", 1e-3, True),
    ("HTTP 16 KiB req/s", "http16k_rps", ",.0f", 1, True),
    ("HTTP 256 KiB req/s", "http256k_rps", ",.0f", 1, True),
    ("RTT p50 µs", "rtt_p50_us", ".0f", 1, False),
    ("CPU µs per UDP packet", "udp_cpu_us_frame", ".2f", 1, False),
)
DETAIL_COLS = (
    ("TCP retrans", "tcp_retrans", ".0f"),
    ("UDP64 sent", "udp_sent", ",.0f"), ("UDP loss %", "udp_loss_pct", ".1f"),
    ("HTTP 16 KiB Gbit/s", "http16k_gbps", ".3f"), ("errors", "http16k_errors", ".0f"),
    ("HTTP 256 KiB Gbit/s", "http256k_gbps", ".3f"), ("errors", "http256k_errors", ".0f"),
    ("RTT p99 µs", "rtt_p99_us", ".0f"),
    ("CPU µs/frame TCP", "tcp_cpu_us_frame", ".2f"), ("HTTP 16K", "http16k_cpu_us_frame", ".2f"),
    ("HTTP 256K", "http256k_cpu_us_frame", ".2f"),
    ("pings after flood", "after_flood", "s"),
)


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def cell(r: dict, key: str, spec: str, scale: float = 1) -> str:
    v = r.get(key)
    if key == "udp_cpu_us_frame" and v is None and r.get("key") == "kernel":
        return "in kernel"
    if isinstance(v, str):
        return v
    return fmt(None if v is None else v * scale, spec)


def ratio(a, b) -> float | None:
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def drop_cell(r: dict, info: dict) -> str:
    if r.get("key") == "kernel":
        return "—"
    if "drop_ok" not in r:
        return "not run" if info.get("rules_file") else "no rules"
    return "passed" if r["drop_ok"] else "FAILED"


def report(results: list[dict], info: dict, out=None) -> None:
    out = sys.stdout if out is None else out

    def p(s: str = "") -> None:
        print(s, file=out)

    p(f"command: {info['command']}")
    if info.get("code"):
        p(f"ipsbridge: {info['code']}")
    p(f"lab: {info['cpus']} CPUs, kernel {info['kernel']}, veth, offloads off; {info['seconds']} s per load; "
      + (f"medians of {info['rounds']} interleaved rounds" if info["rounds"] > 1 else "1 round")
      + f"; load average {info['loadavg_start']} at the start, {info['loadavg_end']} at the end"
      + (" (a busy machine: other work shared the CPUs)" if max(info["loadavg_start"], info["loadavg_end"])
         > 0.5 * info["cpus"] else ""))
    line = f"rules: {info['rules']}"
    if info.get("rules_file"):
        line += (f"; one file for both engines, {info['rules_count']} rules with netns-lab/bench-drop.rules: "
                 f"ipsbridge loads {info['ipsbridge_loaded']}")
        if info.get("suricata_rules"):
            line += f", Suricata {info['suricata_rules']}"
    p(line)
    p(f"stream (both engines): stream.bypass {'yes' if info['stream_bypass'] else 'no'}, reassembly depth 1 MiB, "
      f"HOME_NET {HOME_NET}, EXTERNAL_NET {EXTERNAL_NET}")
    threads = info.get("threads", 1)
    p(f"workers: Suricata threads {threads} on each interface ({2 * threads} in all, each reading one interface), "
      f"ipsbridge threads {workers_for(threads)} for the pair (each worker serves both interfaces of its flows)")
    p()
    drop = info["drop_check"]
    header = [""] + [h for h, *_ in MAIN_COLS] + ["drop check"]
    rows = [[r["name"]] + [cell(r, k, f, s) for _, k, f, s, _ in MAIN_COLS] + [drop_cell(r, info)]
            for r in results]
    for line in md_table(header, rows):
        p(line)

    by = {r["key"]: r for r in results}
    for ref_key, title in (("suricata", "Suricata"), ("kernel", "the kernel bridge")):
        ref = by.get(ref_key)
        if ref is None:
            continue
        others = [r for r in results if r is not ref and r["key"] != "kernel"]
        if not others:
            continue
        p()
        p(f"ratios to {title} (throughput: higher is better; RTT and CPU: lower is better)")
        rows = [[r["name"]] + [fmt(ratio(r.get(k), ref.get(k)), ".2f") + ("x" if ratio(r.get(k), ref.get(k)) else "")
                               for _, k, *_ in MAIN_COLS] for r in others]
        for line in md_table([""] + [h for h, *_ in MAIN_COLS], rows):
            p(line)

    checks = targets(results, drop)
    if checks:
        p()
        p("issue 8 targets (ipsbridge; CPU from the bypass-off row)")
        for label, value, verdict in checks:
            p(f"  {verdict:5}  {label}: {value}")

    for r in results:
        eff = (r.get("bridge_counters") or {}).get("bypass_in_effect")
        if eff and r["key"] == "ipsbridge" and eff != "kernel":
            p(f"  {r['name']}: bypass in effect: {eff}")
        if r.get("rounds_failed"):
            p(f"  {r['name']}: FAILED in {r['rounds_failed']} of {r['rounds_failed'] + r['rounds_ok']} rounds "
              f"(its numbers are the medians of the others): {r['error'].splitlines()[0][:300]}")
    p()
    p("details")
    rows = [[r["name"]] + [cell(r, k, f) for _, k, f in DETAIL_COLS] for r in results]
    for line in md_table([""] + [h for h, *_ in DETAIL_COLS], rows):
        p(line)
    for r in results:
        if r.get("bridge_counters"):
            p(f"  {r['name']}: {json.dumps(r['bridge_counters'], sort_keys=True)}")


def targets(results: list[dict], drop_check: bool) -> list[tuple[str, str, str]]:
    """(label, measured, meets|below|n/a) for each of issue 8's targets that this run can judge."""
    by = {r["key"]: r for r in results}
    out = []
    for label, key, how, ref_key, factor in TARGETS:
        row = by.get("ipsbridge-off" if key == "udp_cpu_us_frame" else "ipsbridge")
        ref = by.get(ref_key)
        if row is None or ref is None:
            continue
        q = ratio(row.get(key), ref.get(key))
        if q is None:
            out.append((label, "n/a", "n/a"))
            continue
        ok = q >= factor if how == "ge" else q <= factor
        out.append((label, f"{q:.2f}x", "meets" if ok else "below"))
    ips = [r for r in results if r["key"] != "kernel"]
    if drop_check and ips:
        failed = [r["name"] for r in ips if r.get("drop_ok") is not True]
        out.append(("every drop check passes", "failed: " + ", ".join(failed) if failed else "all passed",
                    "below" if failed else "meets"))
    return out


# ------------------------------------------------------------------ main
def parse_list(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [w.strip() for w in text.split(",") if w.strip()]
    bad = [w for w in items if w not in allowed]
    if bad or not items:
        raise SystemExit(f"bench.py: {what} {text!r}: choose from {','.join(allowed)}")
    return [w for w in allowed if w in items]          # the canonical order


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lab.py bench", description=__doc__.split("\n\n")[0],
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="length of each load (default: 5)")
    ap.add_argument("--rounds", type=int, default=1, help="measure each contender N times, interleaved, "
                    "and report medians (default: 1)")
    ap.add_argument("--rules", metavar="SPEC", help="FILE, etopen, etopen:N or N (synthetic); the same file "
                    "for both engines, bench-drop.rules added (default: no rules, no drop check)")
    ap.add_argument("--only", default=",".join(TESTS), metavar="LOADS",
                    help=f"comma-separated loads to run (default: {','.join(TESTS)})")
    ap.add_argument("--contenders", default=",".join(CONTENDERS), metavar="LIST",
                    help=f"comma-separated (default: {','.join(CONTENDERS)}; suricata only if {SURICATA} exists)")
    ap.add_argument("--no-stream-bypass", action="store_true",
                    help="stream.bypass: no in both engines (default: yes)")
    ap.add_argument("--threads", type=int, default=1,
                    help="Suricata's threads per interface (default: 1); ipsbridge gets as many workers in all: "
                         "twice that for the pair")
    ap.add_argument("--json", metavar="FILE", help="also write everything as JSON ('-': to stdout, tables to stderr)")
    return ap


def main(argv: list[str] | None = None, prog: str = "python3 netns-lab/lab.py bench") -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0:
        print("bench.py: needs root", file=sys.stderr)
        return 2
    if args.rounds < 1 or args.seconds < 1 or args.threads < 1:
        print("bench.py: --rounds, --seconds and --threads must be at least 1", file=sys.stderr)
        return 2
    if any(w.strip() in CONTENDERS for w in args.only.split(",")):
        print("bench.py: --only names loads (rtt,tcp,http,udp,drop); contenders are chosen with --contenders",
              file=sys.stderr)
        return 2
    tests = tuple(parse_list(args.only, TESTS, "--only"))
    wanted = parse_list(args.contenders, CONTENDERS, "--contenders")
    if "suricata" in wanted and not os.access(SURICATA, os.X_OK):
        say(f"(no suricata row: {SURICATA} not installed; netns-lab/install.sh --with-suricata)")
        wanted.remove("suricata")
    if "http" in tests:
        for tool in (NGINX, WRK):
            if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")
                       + ["/usr/sbin"]):
                print(f"bench.py: {tool} not found (netns-lab/install.sh installs nginx-light and wrk)",
                      file=sys.stderr)
                return 2
    stream_bypass = not args.no_stream_bypass
    version = suricata_version() if "suricata" in wanted else ""
    runs: dict[str, list[dict]] = {}
    info: dict = {"command": f"{prog} {shlex.join(argv)}".rstrip(), "seconds": args.seconds,
                  "rounds": args.rounds, "cpus": os.cpu_count(), "kernel": os.uname().release,
                  "stream_bypass": stream_bypass, "tests": list(tests), "contenders": wanted,
                  "threads": args.threads, "ipsbridge_workers": workers_for(args.threads),
                  "home_net": HOME_NET, "external_net": EXTERNAL_NET, "code": code_version()}
    t_start = time.monotonic()
    info["loadavg_start"] = round(os.getloadavg()[0], 2)
    lab = netnslab.Lab("ipsbench")
    try:
        results = run_rounds(lab, args, info, wanted, tests, stream_bypass, version, runs)
    except LabError as exc:
        print(f"bench: {exc}\nbench: files of this run kept in {lab.workdir}", file=sys.stderr)
        return 1
    failed = sum(r.get("rounds_failed", 0) for r in results)
    if failed:
        say(f"bench: {failed} contender rounds failed; files of this run kept in {lab.workdir}")
    else:
        shutil.rmtree(lab.workdir, ignore_errors=True)  # rule copies, configs, nginx objects
    info["loadavg_end"] = round(os.getloadavg()[0], 2)
    info["elapsed_s"] = round(time.monotonic() - t_start, 1)
    to_stdout = args.json == "-"
    report(results, info, out=sys.stderr if to_stdout else sys.stdout)
    if args.json:
        doc = {"info": info, "medians": results, "rounds": runs,
               "targets": [{"target": t, "measured": m, "verdict": v}
                           for t, m, v in targets(results, info["drop_check"])]}
        text = json.dumps(doc, indent=2)
        if to_stdout:
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 1 if failed else 0


def one_round(ctx: Context, c: Contender, tag: str, info: dict) -> dict:
    """Start, measure and stop one contender.  A failure (it did not start, a load broke, it
    did not stop cleanly) is recorded for this round and the run goes on: a long run is not
    lost to one bad round, and the table says how many rounds each row is made of."""
    say(f"{tag}: starting")
    t0 = time.monotonic()
    res: dict = {"name": c.name, "key": c.key}
    started = False
    try:
        c.start()
        started = True
        say(f"{tag}: running after {time.monotonic() - t0:.1f} s")
        res = measure(ctx, c, tag)
    except LabError as exc:
        res["error"] = str(exc)[:2000]
        say(f"{tag}: FAILED: {str(exc)[:500]}")
    try:
        extra = c.stop() if started else {}
    except LabError as exc:
        res["error"] = (res.get("error", "") + f"\nstop: {exc}")[:4000]
        say(f"{tag}: FAILED to stop cleanly: {str(exc)[:500]}")
        extra = {}
    if "rules" in extra:
        info["suricata_rules"] = extra.pop("rules")
    if extra:
        res["bridge_counters"] = extra
    return res


def run_rounds(lab: netnslab.Lab, args, info: dict, wanted: list[str], tests: tuple[str, ...],
               stream_bypass: bool, version: str, runs: dict[str, list[dict]]) -> list[dict]:
    """Build the lab, run every round, tear it down (nginx stopped by PID); the medians."""
    with lab:
        rules = resolve_rules(args.rules, lab.workdir)
        info.update(rules=rules.label, rules_file=str(rules.path) if rules.path else None,
                    rules_count=rules.rules, ipsbridge_loaded=rules.ipsbridge_loaded,
                    drop_check=rules.drop_check and "drop" in tests)
        if rules.path:
            say(f"rules: {rules.label}: {rules.rules} rules with the drop checks, ipsbridge loads "
                f"{rules.ipsbridge_loaded}; file {rules.path}")
        makers = {
            "kernel": lambda: KernelBridge(lab),
            "suricata": lambda: Suricata(lab, args.threads, rules, stream_bypass, version),
            "ipsbridge": lambda: IpsBridge(lab, args.threads, rules, stream_bypass, "kernel"),
            "ipsbridge-off": lambda: IpsBridge(lab, args.threads, rules, stream_bypass, "off"),
        }
        nginx = None
        lua = None
        try:
            if "http" in tests:
                nginx = Nginx(lab)
                nginx.start()
                lua = lab.write("wrk-done.lua", WRK_DONE_LUA)
                say(f"nginx: pid {nginx.proc.pid} in {lab.server}, serving "
                    + " and ".join(f"{s // 1024} KiB" for _, s in HTTP_OBJECTS) + f" on {SERVER4}:{HTTP_PORT}")
            ctx = Context(lab, args.seconds, tests, lua, info["drop_check"])
            for rnd in range(1, args.rounds + 1):
                for key in wanted:
                    c = makers[key]()
                    runs.setdefault(c.key, []).append(one_round(ctx, c, f"round {rnd}/{args.rounds} {c.name}", info))
        finally:
            if nginx is not None:
                info["nginx"] = nginx.stop()
                left = info["nginx"].get("left_running")
                say(f"nginx: stopped (pids {info['nginx'].get('pids')})"
                    + (f"; had to kill {left}" if left else ""))
    return [median_of(runs[k]) for k in wanted if k in runs]


if __name__ == "__main__":
    sys.exit(main(prog="python3 netns-lab/bench.py"))
