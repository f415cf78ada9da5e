"""A parsed rule: what `rules.parser` produces and `rules.engine` consumes.

The parser turns text into a `Rule` whose options are already compiled into
the pieces the engine needs, so the engine never looks at option text:

- header sets (`src`, `dst`: AddrSet; `sport`, `dport`: PortSet) with
  `contains(ipver, addr)` / `contains(port)`;
- `checks`: cheap per-packet predicates `f(pkt) -> bool` (dsize, ttl, flags,
  itype, flow direction/state, flowbits isset, ...), cheapest first;
- `payload`: the ordered content/pcre/isdataat/byte_test chain, evaluated by
  `payload.match(buf) -> bool` with relative-match backtracking;
- `fast_pattern`: the literal the prefilter (hyperscan) looks for, or None
  when the rule has no content (it is then evaluated on every packet of its
  group); `fast_pattern_nocase` when that literal is caseless;
- post-match state operations (`flowbits` set/unset/toggle, `noalert`,
  `threshold`, `detection_filter`, and threshold.config's `suppress`) applied by
  the engine after a match;
- engine flags (`iponly`, `require`, `flowbits_class`) computed from the
  keywords' table entries, so the engine keeps no keyword lists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

# Suricata's default action order: the highest-ranked matching action decides.
ACTION_RANK = {"pass": 3, "drop": 2, "reject": 1, "rejectsrc": 1, "rejectdst": 1, "rejectboth": 1, "alert": 0}
ACTIONS = tuple(ACTION_RANK)


class AddrSet(Protocol):
    def contains(self, ipver: int, addr: int) -> bool: ...


class PortSet(Protocol):
    def contains(self, port: int) -> bool: ...


class PayloadChain(Protocol):
    def match(self, buf: bytes | memoryview) -> bool: ...


@dataclass(frozen=True, slots=True)
class Threshold:
    """threshold / detection_filter: type is limit|threshold|both (detection_filter: 'df'),
    or 'rate' for a threshold.config rate_filter (rules.threshold_config)."""

    type: str
    track: str        # by_src | by_dst | by_rule | by_both
    count: int
    seconds: int
    new_action: str = ""   # rate: the action once the rate is exceeded (alert|drop|pass|reject|log|sdrop)
    timeout: int = 0       # rate: seconds the new action holds


@dataclass(frozen=True, slots=True)
class Suppress:
    """A threshold.config `suppress ... track T, ip X`: the rule's alerts are not logged for
    packets whose source (by_src), destination (by_dst) or either (by_either) is in `addrs`;
    its action still applies."""

    track: str        # by_src | by_dst | by_either
    addrs: AddrSet


@dataclass(frozen=True, slots=True)
class FlowbitOp:
    cmd: str          # set | unset | toggle | isset | isnotset | noalert
    names: tuple[str, ...] = ()   # `a|b` on isset means any, `a&b` means all (Suricata 7)
    any_of: bool = False


@dataclass(frozen=True, slots=True)
class AppBuf:
    """One app-layer buffer a rule inspects (rules.applayer), with its payload chain."""
    name: str                        # as the rule wrote it ("http.uri"; "dns.query#1" after a transform)
    get: Callable[[Any], Any]        # tx -> bytes | list[bytes] | None
    chain: PayloadChain
    to_server: bool                  # the side of the transaction it belongs to
    progress: int                    # that side's progress from which it is inspected
    multi: bool = False
    body: bool = False
    transforms: tuple = ()           # bytes -> bytes, applied in order before matching


@dataclass(frozen=True, slots=True)
class AppSpec:
    """What a rule inspects in app-layer transactions: matched once per transaction, on a
    packet of direction `to_server`, once the transaction reached `need` (progress per
    side, [to client, to server])."""
    proto: str
    to_server: bool
    need: tuple[int, int]
    bufs: tuple[AppBuf, ...]
    checks: tuple = ()               # (side to_server, progress, fn(tx) -> bool)
    body: bool = False               # a body buffer: inspected again while the body grows
    fp: tuple | None = None          # (index in bufs, literal, caseless): the prefilter's pattern
    other: "AppSpec | None" = None   # the same rule evaluated on the other direction too (no flow
                                     # direction, buffers both sides have): its response-side form


@dataclass(slots=True)
class Rule:
    action: str
    proto: str                       # ip | tcp | udp | icmp | icmpv6? (as written; "tcp-pkt" etc. not supported)
    src: AddrSet
    sport: PortSet
    direction: str                   # "->" or "<>"
    dst: AddrSet
    dport: PortSet
    sid: int
    gid: int = 1
    rev: int = 0
    msg: str = ""
    classtype: str | None = None
    category: str = ""               # classtype's description, from classification.config
    priority: int = 3                # explicit priority, else the classtype's, else 3
    references: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()
    target: str | None = None        # src_ip | dest_ip
    ip_protos: frozenset[int] | None = None   # IP protocol numbers the header admits (None: any IP)
    checks: list[Callable[[Any], bool]] = field(default_factory=list)
    payload: PayloadChain | None = None
    fast_pattern: bytes | None = None
    fast_pattern_nocase: bool = False
    flow_to_server: bool | None = None        # flow:to_server -> True, to_client -> False, None: either
    # the `flags` keyword's answer for each TCP flags byte as a 256-bit mask (bit f set: flags
    # byte f passes), None without it
    tcp_flags: int | None = None
    flowbits: tuple[FlowbitOp, ...] = ()      # post-match ops only (set/unset/toggle/noalert); isset/isnotset are in checks
    # the checks whose answer depends on the flow's flowbits alone (flowbits:isset/isnotset)
    flow_state: frozenset = frozenset()
    noalert: bool = False
    bypass: bool = False             # the `bypass` keyword: a match decides the flow (no more inspection)
    threshold: Threshold | None = None
    detection_filter: Threshold | None = None
    suppress: tuple[Suppress, ...] = ()      # threshold.config suppressions by address (rules.threshold_config)
    # engine flags derived from the keywords' REGISTRY entries (rules.parser)
    iponly: bool = False             # header plus IP-only keywords: decided once per flow direction
    require: str = ""                # "packet" | "stream" | "both" | "": what payload keywords inspect on TCP
    only_stream: bool = False        # flow:only_stream: the payload must match on the stream
    stream_events: frozenset[str] = frozenset()   # stream events the rule tests (stream-event, decode-event)
    app: AppSpec | None = None       # app-layer buffers and conditions (rules.applayer), matched per transaction
    app_proto: str = ""              # the app-layer protocol the flow must have ("" any)
    app_detect: frozenset[str] = frozenset()   # protocols to detect for it (app-layer-protocol)
    flowbits_class: int = 3          # Suricata's ordering: 0 sets only, 1 sets and reads, 2 reads, 3 none
    options: tuple[tuple[str, Any], ...] = ()  # (keyword, parsed spec) in order, for reporting/debugging
    text: str = ""                   # the rule as written (one logical line)
    file: str = ""
    line: int = 0

    @property
    def rank(self) -> int:
        return ACTION_RANK[self.action]
