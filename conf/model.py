"""Typed configuration: what `conf.load` produces and everything else consumes.

Key names follow Suricata's suricata.yaml (`af-packet:` entries, `vars`,
`rule-files`, `stream`, `decoder`, ...); the attribute is the key with dashes
turned into underscores.  Defaults here are the documented defaults: a key
left out of the YAML takes the value below (after the `- interface: default`
entry, if any, has been applied).

The engine's knobs are not described twice: `Config.stream`, `.decoder`,
`.flow` and `.defrag` ARE the engine's frozen `rules.settings` objects, built
by `conf.load` from the YAML.  One difference: the exception policies in
`Config.stream` are kept as written (`auto` allowed, `POLICY_UNSET` when the
file leaves them out, so that the master `exception-policy` decides); only
`conf.build.engine_settings(config, mode)` resolves them for a mode.

`Config.app` is likewise the engine's `EngineSettings.app` as it is: each
app-layer protocol ipsbridge parses mapped to its module's frozen `Settings`
(`app-layer.protocols.<proto>` keys), and under `rules.applayer.ENABLED` the
(protocol, IP protocol) pairs whose `enabled` is "no" or "detection-only".
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rules.applayer import ENABLED
from rules.applayer import dns as app_dns
from rules.applayer import ftp as app_ftp
from rules.applayer import http as app_http
from rules.applayer import smtp as app_smtp
from rules.applayer import tls as app_tls
from rules.settings import (  # noqa: F401  (DEFAULT_* re-exported for conf)
    DEFAULT_ADDRESS_GROUPS,
    DEFAULT_PORT_GROUPS,
    DecodeOptions,
    DefragSettings,
    FlowSettings,
    StreamSettings,
)

CLUSTER_TYPES = (
    "cluster_flow",         # PACKET_FANOUT_HASH (symmetric flow hash): default
    "cluster_round_robin",  # PACKET_FANOUT_LB
    "cluster_cpu",          # PACKET_FANOUT_CPU
    "cluster_qm",           # PACKET_FANOUT_QM (queue mapping)
    "cluster_rollover",     # PACKET_FANOUT_ROLLOVER
    "cluster_random",       # PACKET_FANOUT_RND
)

# A specific exception policy (stream.memcap-policy, ...) the file does not set: the master
# `exception-policy` is its default, as Suricata's master switch.
POLICY_UNSET = ""
# The specific exception policies, by their suricata.yaml key, and the StreamSettings field
# holding each (as written in Config, resolved in EngineSettings).
STREAM_POLICIES = {
    "stream.memcap-policy": "memcap_policy",
    "stream.reassembly.memcap-policy": "reassembly_memcap_policy",
    "stream.midstream-policy": "midstream_policy",
}


# The app-layer protocols ipsbridge parses, by their app-layer.protocols name: each module's
# Settings (Suricata's defaults) is what conf.load fills from that section.
APP_SETTINGS = {"http": app_http.Settings, "tls": app_tls.Settings, "dns": app_dns.Settings,
                "smtp": app_smtp.Settings, "ftp": app_ftp.Settings}
IPPROTO_NUMBERS = {"tcp": 6, "udp": 17}          # app-layer.protocols.<proto>.<ipproto> names
APP_IPPROTOS = {"http": ("tcp",), "tls": ("tcp",), "dns": ("tcp", "udp"), "smtp": ("tcp",),
                "ftp": ("tcp",)}                 # what each runs over


def default_app() -> dict:
    """EngineSettings.app when the file has no app-layer section: Suricata's defaults, every
    protocol enabled."""
    return {**{name: cls() for name, cls in APP_SETTINGS.items()}, ENABLED: {}}


def stream_as_written() -> StreamSettings:
    """StreamSettings defaults with every exception policy left to the master switch."""
    return StreamSettings(**{f: POLICY_UNSET for f in STREAM_POLICIES.values()})


@dataclass(slots=True)
class Interface:
    """One `af-packet:` list entry."""

    interface: str
    threads: int = 1
    cluster_id: int | None = None          # None: assigned (99, 98, ... as Suricata does) at load
    cluster_type: str = "cluster_flow"
    copy_mode: str | None = None
    copy_iface: str | None = None
    defrag: bool = True
    rollover: bool = False
    use_mmap: bool = True
    tpacket_v3: bool = False               # only for IDS interfaces; V2 is forced inline (latency)
    ring_size: int = 2048                  # frames per ring (per socket)
    block_size: int = 32768                # bytes, V3 only, multiple of the page size
    block_timeout: int = 10                # ms, V3 only
    buffer_size: int = 0                   # SO_RCVBUF bytes (0: kernel default)
    disable_promisc: bool = False
    checksum_checks: str = "kernel"        # auto | yes | no | kernel (Suricata's values)
    bpf_filter: str | None = None
    qdisc_bypass: bool = False
    tx_ring: bool = True                   # ips/tap: send through a PACKET_TX_RING, one syscall per batch
    # where decided flows (rules.api.Bypass) go: kernel = eBPF programs forward/drop them before
    # the ring (falls back to user with a warning when the kernel cannot), user = a table in the
    # worker before the engine, off = every frame is inspected (Suricata's yes/no: kernel/user)
    bypass: str = "kernel"
    line: int = 0                          # YAML line of the entry, for messages


@dataclass(slots=True)
class Config:
    af_packet: list[Interface] = field(default_factory=list)
    vars: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"address-groups": {}, "port-groups": {}}
    )
    default_rule_path: str = "."
    rule_files: list[str] = field(default_factory=list)
    classification_file: str | None = None  # None: conf/classification.config
    threshold_file: str | None = None       # threshold.config (Suricata's `threshold-file`); None: none
    stream: StreamSettings = field(default_factory=stream_as_written)   # policies as written
    decoder: DecodeOptions = field(default_factory=DecodeOptions)       # with stream.checksum-validation
    flow: FlowSettings = field(default_factory=FlowSettings)            # flow.*, flow-timeouts.*
    defrag: DefragSettings = field(default_factory=DefragSettings)
    exception_policy: str = "auto"          # the master switch, as written (rules.settings.POLICY_VALUES)
    app: dict = field(default_factory=default_app)    # app-layer.*: EngineSettings.app (see above)
    app_error_policy: str = POLICY_UNSET    # app-layer.error-policy as written (unset: the master's)
    pcap_file_checksum_checks: str = "auto"
    eve_log: str | None = None              # path of the EVE JSON file; None: no EVE output
    stats_interval: float = 8.0             # seconds between stats lines (0: off)
    verdict_hook: str | None = None         # "module:factory" building an Inspector in each worker
    inspect_time_limit: float = 0.2         # ipsbridge.inspect-time-limit: s one frame may hold inspect (0: off)
    fail_open: bool = False                 # ipsbridge.fail-open: the kernel forwards when inspection stops
    unix_command: str = "auto"              # unix-command.enabled: yes | no | auto (auto: on unless the path is taken)
    unix_command_path: str = "/run/ipsbridge/ipsbridge.socket"   # unix-command.filename
    source: str = "<command line>"          # file the config came from, for messages
    lines: dict[str, int] = field(default_factory=dict)  # dotted key ("stream.memcap") -> YAML line

    def peer_of(self, iface: Interface) -> Interface | None:
        for other in self.af_packet:
            if other.interface == iface.copy_iface:
                return other
        return None
