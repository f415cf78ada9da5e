"""The app-layer protocols ipsbridge parses: one module per protocol, listed here.

Each module in PROTOCOL_MODULES defines:

    PROTO      the protocol's name as rule headers and app-layer-protocol write it ("http")
    IPPROTOS   the IP protocols it runs over (6 TCP, 17 UDP)
    probe(data, to_server, sport, dport, ipproto, settings) -> True | False | None
               protocol detection on the first bytes of a direction (TCP: the start of the
               reassembled stream, UDP: a datagram): True it is this protocol, False it is
               not, None not enough data yet.  Never raises.
    Settings   a frozen dataclass of the protocol's limits and options, with Suricata's
               defaults (`app-layer.protocols.<proto>` keys; conf/ maps them)
    Parser     rules.applayer.base.Parser subclass, one per flow, made as Parser(settings,
               ipproto) (a Settings instance or None for the defaults; 6 or 17)
    BUFFERS    [rules.applayer.base.BufferDef]: the sticky buffers it offers; each becomes a
               keyword of its own (rules.keywords.app)
    ALIASES    {older name: buffer name} ("tls_sni": "tls.sni")
    HEADER_NAMES  rule-header protocol names that mean this protocol ("http", "http1")

and may define:

    CONTENT_CASE  {buffer: "upper" | "lower"}: contents in that buffer are folded so, as
               Suricata folds them (a JA3 hash is compared in lower case)
    content_problem(buffer, patterns) -> str | None: why Suricata refuses these contents
               (in rule order) in that buffer, or None

BUFFERS and PROTOCOLS below are built from them once, at import.
"""
from __future__ import annotations

import importlib

PROTOCOL_MODULES = (
    "rules.applayer.smtp",      # before http: the file.data that BUFFERS names is http's
    "rules.applayer.http",
    "rules.applayer.tls",
    "rules.applayer.dns",
    "rules.applayer.ftp",
)

MODULES = tuple(importlib.import_module(m) for m in PROTOCOL_MODULES)
PROTOCOLS = {m.PROTO: m for m in MODULES}
HEADER_PROTOS = {name: m.PROTO for m in MODULES for name in m.HEADER_NAMES}
BUFFERS = {b.name: b for m in MODULES for b in m.BUFFERS}
ALIASES = {old: new for m in MODULES for old, new in m.ALIASES.items()}
CONTENT_CASE = {b: case for m in MODULES for b, case in m.__dict__.get("CONTENT_CASE", {}).items()}


def content_problem(buffer: str, patterns: list[bytes]) -> str | None:
    """Why Suricata refuses these contents of `buffer`, or None."""
    b = BUFFERS.get(buffer)
    check = PROTOCOLS[b.proto].__dict__.get("content_problem") if b is not None else None
    return check(buffer, patterns) if check is not None else None
