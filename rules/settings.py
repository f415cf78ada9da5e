"""Every knob the engine's behaviour depends on: typed, frozen, one place.

`conf/` parses suricata.yaml and builds these objects; the engine and its
stages read them and nothing else (no `getattr` on a loosely typed config,
no file reads).  Names follow the suricata.yaml keys they come from (dashes
become underscores); defaults are Suricata 7's defaults unless the comment
says otherwise.

    EngineSettings
      mode                  ips | tap | ids         (af-packet copy-mode / replay --mode)
      exception_policy      resolved policy for internal engine errors (master `exception-policy`)
      decoder: DecodeOptions                      (decoder.*, stream.checksum-validation)
      flow: FlowSettings                          (flow.*, flow-timeouts.*)
      stream: StreamSettings                      (stream.*, stream.reassembly.*)
      defrag: DefragSettings                      (defrag.*)
      decoder_events        report decoder anomalies as EVE events

Exception policies are stored *resolved*: `resolve_policy` turns Suricata's
`auto` and the master switch into the concrete action for the engine mode,
so a stage only ever sees one of `POLICIES`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MODES = ("ips", "tap", "ids")

# suricata.yaml's default vars: the values a name takes when the configuration does not
# set it (a configuration's own values replace these per name).
DEFAULT_ADDRESS_GROUPS = {
    "HOME_NET": "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]",
    "EXTERNAL_NET": "!$HOME_NET",
    "HTTP_SERVERS": "$HOME_NET",
    "SMTP_SERVERS": "$HOME_NET",
    "SQL_SERVERS": "$HOME_NET",
    "DNS_SERVERS": "$HOME_NET",
    "TELNET_SERVERS": "$HOME_NET",
    "AIM_SERVERS": "$EXTERNAL_NET",   # as in Suricata's suricata.yaml
    "DC_SERVERS": "$HOME_NET",
    "DNP3_SERVER": "$HOME_NET",
    "DNP3_CLIENT": "$HOME_NET",
    "MODBUS_CLIENT": "$HOME_NET",
    "MODBUS_SERVER": "$HOME_NET",
    "ENIP_CLIENT": "$HOME_NET",
    "ENIP_SERVER": "$HOME_NET",
}
DEFAULT_PORT_GROUPS = {
    "HTTP_PORTS": "80",
    "SHELLCODE_PORTS": "!80",
    "ORACLE_PORTS": "1521",
    "SSH_PORTS": "22",
    "DNP3_PORTS": "20000",
    "MODBUS_PORTS": "502",
    "FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]",
    "FTP_PORTS": "21",
    "GENEVE_PORTS": "6081",
    "VXLAN_PORTS": "4789",
    "TEREDO_PORTS": "3544",
}
DEFAULT_VARS: dict[str, dict[str, str]] = {"address-groups": DEFAULT_ADDRESS_GROUPS,
                                           "port-groups": DEFAULT_PORT_GROUPS}

# What an exception policy can do (Suricata 7's values, `auto` resolved away):
#   drop-packet  drop this packet
#   drop-flow    drop this packet and every later packet of the flow
#   reject       drop-flow, and answer this packet with a TCP RST / ICMP unreachable
#   pass-packet  no detection on this packet
#   pass-flow    no detection on this flow from now on (tracking goes on)
#   bypass       pass-flow, and the flow may leave the inspection path (flow bypass)
#   ignore       carry on as if nothing happened
POLICIES = ("drop-packet", "drop-flow", "reject", "pass-packet", "pass-flow", "bypass", "ignore")
POLICY_VALUES = POLICIES + ("auto",)          # what the configuration accepts
# Policies that only make sense for a whole flow cannot apply where there is no flow
# (flow.memcap, defrag.memcap): Suricata applies their packet-scoped counterpart.
_PACKET_SCOPED = {"drop-flow": "drop-packet", "reject": "drop-packet", "pass-flow": "pass-packet",
                  "bypass": "pass-packet"}


def resolve_policy(value: str, mode: str, *, packet_only: bool = False) -> str:
    """The concrete policy for `value` (one of POLICY_VALUES) in `mode`.

    `auto` is drop-flow inline (drop-packet where only the packet can be
    acted on) and ignore in IDS/tap mode, as Suricata's master switch;
    `packet_only` maps flow-wide policies onto their packet-wide counterpart."""
    if value not in POLICY_VALUES:
        raise ValueError(f"exception policy must be one of {', '.join(POLICY_VALUES)}, not {value!r}")
    if value == "auto":
        value = "drop-flow" if mode == "ips" else "ignore"
    if packet_only:
        value = _PACKET_SCOPED.get(value, value)
    return value


def resolve_midstream_policy(value: str, mode: str, midstream: bool) -> str:
    """stream.midstream-policy: with midstream pick-up enabled only `ignore`
    (and pass-flow) mean anything -- `auto` is ignore; without it `auto` is
    drop-flow inline and ignore otherwise (Suricata's midstream matrix)."""
    if value == "auto":
        return "ignore" if midstream or mode != "ips" else "drop-flow"
    return resolve_policy(value, mode)


# --------------------------------------------------------------------- decoder
@dataclass(frozen=True, slots=True)
class DecodeOptions:
    vxlan_enabled: bool = True                 # decoder.vxlan.enabled
    vxlan_ports: tuple[int, ...] = (4789,)     # decoder.vxlan.ports
    gre_enabled: bool = True                   # decoder.gre.enabled (ipsbridge's own key: Suricata always decodes GRE)
    checksum_validation: bool = True           # stream.checksum-validation
    max_tunnel_depth: int = 3                  # tunnel layers decoded below the outermost packet
    # False (Suricata): no fragment is decoded past the IP layer -- ports 0, empty payload,
    # IPv6 proto 44 -- so only the reassembled datagram (Defragmenter) is matched on L4.
    # True: the first fragment's L4 header and partial payload are decoded too.
    l4_in_first_fragment: bool = False


# --------------------------------------------------------------------- flow
@dataclass(frozen=True, slots=True)
class FlowTimeouts:
    """Seconds of inactivity after which a flow in that state expires (flow-timeouts.<proto>)."""

    new: float
    established: float
    closed: float
    emergency_new: float
    emergency_established: float
    emergency_closed: float
    bypassed: float = 100                      # a flow decided by a bypass (rules.api.Bypass: bypass
    emergency_bypassed: float = 50             # keyword, stream.bypass) instead of its state's timeout


# Suricata 7's suricata.yaml `flow-timeouts:` defaults.
DEFAULT_TIMEOUTS: dict[str, FlowTimeouts] = {
    "default": FlowTimeouts(30, 300, 0, 10, 100, 0),
    "tcp": FlowTimeouts(60, 600, 60, 5, 100, 10),
    "udp": FlowTimeouts(30, 300, 0, 10, 100, 0),
    "icmp": FlowTimeouts(30, 300, 0, 10, 100, 0),
}

# What one tracked flow costs in this engine (flow object, table entry, key, header cache),
# measured with tracemalloc (tests/bench/bench_flow_memory.py: 1,220 bytes per UDP flow):
# `flow.memcap` (bytes, as in Suricata) becomes a number of flows by dividing by it.  A TCP
# flow's session is counted against stream.memcap (rules.stream.SESSION_BYTES).
FLOW_BYTES = 1280


@dataclass(frozen=True, slots=True)
class FlowSettings:
    memcap: int = 128 * 1024 * 1024            # flow.memcap, bytes (Suricata's 128mb)
    emergency_recovery: int = 30               # flow.emergency-recovery: percent freed before leaving emergency
    timeouts: dict[str, FlowTimeouts] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))

    @property
    def max_flows(self) -> int:
        return max(1, self.memcap // FLOW_BYTES)


# --------------------------------------------------------------------- stream
@dataclass(frozen=True, slots=True)
class StreamSettings:
    midstream: bool = False                    # stream.midstream
    async_oneside: bool = False                # stream.async-oneside
    midstream_policy: str = "ignore"           # stream.midstream-policy, resolved
    inline: str = "auto"                       # stream.inline: auto (inline in ips mode) | yes | no
    drop_invalid: bool = True                  # stream.drop-invalid: inline, drop what the stream engine finds
                                               # invalid (ipsbridge: retransmissions once the session closes)
    memcap: int = 64 * 1024 * 1024             # stream.memcap, bytes of session state
    memcap_policy: str = "ignore"              # stream.memcap-policy, resolved
    reassembly_memcap: int = 256 * 1024 * 1024  # stream.reassembly.memcap, bytes of buffered segments
    reassembly_memcap_policy: str = "ignore"   # stream.reassembly.memcap-policy, resolved
    depth: int = 1024 * 1024                   # stream.reassembly.depth, bytes per direction (0: unlimited)
    bypass: bool = False                       # stream.bypass: once either direction reaches the depth, the
                                               # flow is bypassed (no more detection, from the next packet)
    # stream.reassembly.to{server,client}-chunk-size: the inline inspection window, and how
    # much acknowledged data IDS mode gathers before inspecting it.  Suricata randomizes them
    # once at start-up by default (randomize-chunk-size); conf does that, the engine sees the result.
    toserver_chunk_size: int = 2560
    toclient_chunk_size: int = 2560
    raw: bool = True                           # stream.reassembly.raw: IDS flushes happen (inline ignores it,
                                               # as Suricata 7's inline inspection does)
    check_overlap_different_data: bool = False  # stream.reassembly.check-overlap-different-data: IDS raises
                                                # the overlap event (inline always does; a rule using it also)


@dataclass(frozen=True, slots=True)
class DefragSettings:
    timeout: float = 60.0                      # defrag.timeout, seconds
    trackers: int = 65535                      # defrag.trackers: datagrams in reassembly at once
    max_frags: int = 65535                     # defrag.max-frags: fragments held in all (Suricata's default)


# --------------------------------------------------------------------- engine
@dataclass(frozen=True, slots=True)
class EngineSettings:
    mode: str = "ips"
    # what an internal engine error does to the frame (the master `exception-policy` when set
    # explicitly; `auto` is ignore here -- fail open -- since Suricata has no such exception)
    exception_policy: str = "ignore"
    decoder: DecodeOptions = field(default_factory=DecodeOptions)
    flow: FlowSettings = field(default_factory=FlowSettings)
    stream: StreamSettings = field(default_factory=StreamSettings)
    defrag: DefragSettings = field(default_factory=DefragSettings)
    decoder_events: bool = False               # decoder anomalies as EVE events (always counted)
    # app-layer.protocols.<proto>: protocol name -> that protocol module's Settings
    # (rules.applayer.registry); a protocol not here runs with its defaults
    app: dict = field(default_factory=dict)
    # what a parser error does to the flow (the packet it came on and the rest):
    # Suricata's app-layer.error-policy, resolved; "ignore" leaves the flow without its app layer
    app_error_policy: str = "ignore"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        for name, value in (("exception_policy", self.exception_policy),
                            ("app_error_policy", self.app_error_policy),
                            ("stream.midstream_policy", self.stream.midstream_policy),
                            ("stream.memcap_policy", self.stream.memcap_policy),
                            ("stream.reassembly_memcap_policy", self.stream.reassembly_memcap_policy)):
            if value not in POLICIES:
                raise ValueError(f"{name} must be a resolved policy ({', '.join(POLICIES)}), not {value!r}")

    @property
    def inline_stream(self) -> bool:
        """Stream data is inspected as it arrives (Suricata's inline stream mode), rather than
        once the receiver acknowledged it: stream.inline yes, or auto in ips mode."""
        s = self.stream.inline
        return s == "yes" or (s == "auto" and self.mode == "ips")

    @classmethod
    def for_mode(cls, mode: str, *, stream: StreamSettings | None = None, **kw) -> "EngineSettings":
        """Defaults for `mode`; without `stream`, stream.midstream-policy `auto` is resolved for
        the mode as Suricata does (drop-flow inline without midstream pick-up, else ignore)."""
        if stream is None:
            stream = StreamSettings(midstream_policy=resolve_midstream_policy("auto", mode, False))
        return cls(mode=mode, stream=stream, **kw)
