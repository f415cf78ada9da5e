"""Typed configuration: what `conf.load` produces and everything else consumes.

Key names follow Suricata's suricata.yaml (`af-packet:` entries, `vars`,
`rule-files`, `stream`, `decoder`, ...); the attribute is the key with dashes
turned into underscores.  Defaults here are the documented defaults: a key
left out of the YAML takes the value below (after the `- interface: default`
entry, if any, has been applied).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rules.settings import DEFAULT_ADDRESS_GROUPS, DEFAULT_PORT_GROUPS  # noqa: F401  (re-exported for conf)


CLUSTER_TYPES = (
    "cluster_flow",         # PACKET_FANOUT_HASH (symmetric flow hash): default
    "cluster_round_robin",  # PACKET_FANOUT_LB
    "cluster_cpu",          # PACKET_FANOUT_CPU
    "cluster_qm",           # PACKET_FANOUT_QM (queue mapping)
    "cluster_rollover",     # PACKET_FANOUT_ROLLOVER
    "cluster_random",       # PACKET_FANOUT_RND
)
COPY_MODES = ("ips", "tap", None)   # None: IDS only, never forward


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
    line: int = 0                          # YAML line of the entry, for messages


@dataclass(slots=True)
class Stream:
    midstream: bool = False
    async_oneside: bool = False
    checksum_validation: bool = True
    inline: str = "auto"


@dataclass(slots=True)
class Decoder:
    vxlan_enabled: bool = True
    vxlan_ports: tuple[int, ...] = (4789,)
    gre_enabled: bool = True


@dataclass(slots=True)
class Config:
    af_packet: list[Interface] = field(default_factory=list)
    vars: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"address-groups": {}, "port-groups": {}}
    )
    default_rule_path: str = "."
    rule_files: list[str] = field(default_factory=list)
    classification_file: str | None = None  # None: conf/classification.config
    stream: Stream = field(default_factory=Stream)
    decoder: Decoder = field(default_factory=Decoder)
    exception_policy: str = "auto"          # auto | drop-packet | drop-flow | pass-packet | pass-flow | ignore
    pcap_file_checksum_checks: str = "auto"
    eve_log: str | None = None              # path of the EVE JSON file; None: no EVE output
    stats_interval: float = 8.0             # seconds between stats lines (0: off)
    verdict_hook: str | None = None         # "module:factory" building an Inspector in each worker
    source: str = "<command line>"          # file the config came from, for messages

    def peer_of(self, iface: Interface) -> Interface | None:
        for other in self.af_packet:
            if other.interface == iface.copy_iface:
                return other
        return None
