"""The one contract between the data plane and detection.

Everything that inspects frames -- the rule engine, a trivial predicate used by
tests, the forward-everything default -- is an *Inspector*: frame bytes plus a
`FrameMeta` in, a `Result` out.  No sockets, no clocks, no globals: the time of
a frame is `meta.ts`, taken from the ring header live or from the pcap record
offline, so replay, fuzzing and the live bridge run the same code.

The bridge only looks at `Result.verdict` (sends `Result.inject`, and forwards
`Result.frame` in place of the frame when it is set); it never interprets
events.  Inspectors are built *inside* each worker process by a
factory (see `bridge.hook`), because hyperscan databases and scratch space do
not cross a fork or a pickle.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class InspectTimeout(Exception):
    """Raised inside `inspect` by the data plane when one frame has held it past its time
    limit (bridge.worker.Watchdog: a signal handler, so pure-Python loops stop; a single
    C call such as a regex finishes first).  The engine answers the frame as it answers
    an internal error, by its exception policy, and counts it (`engine.timeouts`)."""


class Verdict(enum.IntEnum):
    """What happens to one frame.  Ordered: a larger value wins when combined."""

    FORWARD = 0
    DROP = 1
    REJECT = 2  # drop, and send what Result.inject holds (TCP RST / ICMP unreachable)


# FrameMeta.checksum: what the capture layer says about validating this frame's checksums
# (af-packet / pcap-file `checksum-checks`; stream.checksum-validation off overrides all three)
CSUM_VALIDATE = 0   # validate (checksum-checks: yes, or kernel for a frame the kernel did not vouch for)
CSUM_SKIP = 1       # do not validate this frame (no; kernel with TP_STATUS_CSUMNOTREADY / CSUM_VALID)
CSUM_AUTO = 2       # auto: validate until the engine's sample says the source's checksums are offloaded


@dataclass(slots=True)
class FrameMeta:
    """What the capture layer knows about a frame besides its bytes.

    Valid for the one `inspect()` call it is passed to, like the frame itself: the live
    bridge keeps one FrameMeta per port and sets `ts` (and `checksum`, `vlan`, `tpid`) for
    each frame instead of building one per frame (a frozen dataclass cost 0.75 us a frame,
    setting two fields 0.02).  An inspector copies what it keeps (rules.decode copies
    ts, iface, pcap_cnt and the `vlan` tuple into each Packet; tuples are never changed in
    place, only replaced)."""

    ts: float                    # seconds since the epoch, from the ring header or the pcap record
    iface: str                   # interface the frame was read on ("" in replay without one)
    vlan: tuple[int, ...] = ()   # VLAN ids the kernel stripped (outermost first); in-band tags stay in the bytes
    pcap_cnt: int = 0            # 1-based packet number in replay; 0 live
    tpid: tuple[int, ...] = ()   # TPIDs of `vlan` (0x8100, 0x88a8), same order
    linktype: int = 1            # pcap LINKTYPE_* of the frame's bytes (rules.decode.LINKTYPES); live: Ethernet
    checksum: int = CSUM_VALIDATE  # CSUM_VALIDATE / CSUM_SKIP / CSUM_AUTO (rules.decode reads it)


@dataclass(frozen=True, slots=True)
class Inject:
    """A frame the inspector wants sent (reject).  `back` means out of the
    interface the triggering frame arrived on; otherwise out of its peer."""

    frame: bytes
    back: bool = True


@dataclass(frozen=True, slots=True)
class Bypass:
    """The frame's flow needs no more inspection (a flow decision, rules.engine): the data
    plane may take the flow out of the per-frame path (bridge.fastpath, bridge.ebpf).

    Given only with frames of untunnelled, unfragmented IPv4/IPv6 TCP/UDP packets, and for
    TCP only while the session is not closing (FIN/RST frames must reach the inspector).

    action "scan" (UDP, and ICMP echo flows) is weaker: the flow is not decided, but in the
    frame's direction no rule can match a later datagram unless the prefilter finds a fast
    pattern in its payload.  The data plane may then answer FORWARD for a later datagram of
    that direction (same key, same port) whose payload -- after the 8-byte UDP header, up to
    the UDP length; after an echo's 8-byte header, up to the IP end, code 0 only -- makes
    `scan(payload)` return nothing (an empty payload: no scan), and must hand every other
    frame of it to `inspect`, after pushing the counts it kept with `Inspector.bypassed` (so
    the engine's flow counters are current for the rules that run).  `scan` None: nothing
    can match in that direction at all.

    `late` (an echo direction's "scan"): which of the frames it must hand over it may
    forward first and hand to `inspect` after, as long as every frame it hands over reaches
    `inspect` in the order they came and no counts wait to be pushed when it forwards one:
    False none; None any (no rule that could change the verdict applies); a scan, those it
    finds nothing in (the fast patterns of those rules).  Such a frame's verdict is forward
    whatever matches; its events come when it is inspected."""

    flow: Any               # the inspector's handle for the flow: pass it back to `Inspector.bypassed`
    action: str             # "pass" (forward every frame) | "drop" (drop every frame) | "scan" (above)
    to_server: bool         # the direction of the frame it came with (client -> server)
    reason: str = ""        # why: "pass", "drop", "bypass" (keyword), "stream-depth", "no-rules", "policy", "prefilter"
    scan: Any = None        # "scan": bytes -> a truthy result when the payload holds a fast pattern
    late: Any = False       # "scan": what may be forwarded before it is inspected (above)


@dataclass(frozen=True, slots=True)
class Result:
    verdict: Verdict
    events: tuple[Any, ...] = ()     # rules.events dataclasses (Alert, Drop, DecoderEvent, ...)
    reason: str = ""                 # why dropped: "rule", "flow", "decoder", "policy:<name>", ...
    inject: tuple[Inject, ...] = ()
    # a frame to forward instead of the one inspected, same length: an inline TCP overlap
    # whose new bytes were replaced by the ones the stream already holds (rules.stream)
    frame: bytes | None = None
    # the frame's flow is decided: nothing later in it needs inspection (see Bypass)
    bypass: Bypass | None = None


FORWARD = Result(Verdict.FORWARD)
DROP_BY_HOOK = Result(Verdict.DROP, reason="hook")


@runtime_checkable
class Inspector(Protocol):
    def inspect(self, frame: bytes | memoryview, meta: FrameMeta) -> Result:
        """Decide one frame.  Must never raise on any input bytes."""

    def tick(self, now: float) -> tuple[Any, ...]:
        """Advance time with no frame (flow timeouts); returns events."""

    def stats(self) -> dict[str, int]:
        """Counters since start (decoder events, flows, alerts, ...)."""

    def finish(self) -> tuple[Any, ...]:
        """The input ended (replay, shutdown): end every flow; returns events (IDS-mode stream
        data inspected a last time).  Optional for verdict-hook plug-ins."""

    # Optional, for inspectors that give `Result.bypass`:
    #   def bypassed(self, flow, ts, pkts_toserver, bytes_toserver, pkts_toclient, bytes_toclient) -> bool
    # frames of a decided flow that the data plane handled without calling `inspect` since the
    # last call (their count and bytes -- frame lengths, as `inspect` counts them -- per
    # direction, the time of the last one): the flow's
    # counters and timeout stay exact.  False once the flow has ended in the inspector (timed
    # out, evicted): the data plane then forgets it, and its next frame is inspected again.


@dataclass(slots=True)
class ForwardAll:
    """The default hook when no rules are configured: every frame forwards."""

    seen: int = 0

    def inspect(self, frame: bytes | memoryview, meta: FrameMeta) -> Result:
        self.seen += 1
        return FORWARD

    def tick(self, now: float) -> tuple[Any, ...]:
        return ()

    def finish(self) -> tuple[Any, ...]:
        return ()

    def stats(self) -> dict[str, int]:
        return {"inspected": self.seen}


@dataclass(slots=True)
class PredicateInspector:
    """Drop every frame for which `predicate(frame, meta)` is true.

    The simplest real hook: tests and the lab use it to prove that drop works
    end to end before (and independently of) the rule engine."""

    predicate: Any
    counters: dict[str, int] = field(default_factory=lambda: {"inspected": 0, "dropped": 0})

    def inspect(self, frame: bytes | memoryview, meta: FrameMeta) -> Result:
        self.counters["inspected"] += 1
        if self.predicate(frame, meta):
            self.counters["dropped"] += 1
            return DROP_BY_HOOK
        return FORWARD

    def tick(self, now: float) -> tuple[Any, ...]:
        return ()

    def finish(self) -> tuple[Any, ...]:
        return ()

    def stats(self) -> dict[str, int]:
        return dict(self.counters)
