"""The app-layer protocols ipsbridge parses: one module per protocol, listed here.

Each module in PROTOCOL_MODULES defines:

    PROTO      the protocol's name as rule headers and app-layer-protocol write it ("http")
    IPPROTOS   the IP protocols it runs over (6 TCP, 17 UDP)
    probe(data, to_server, sport, dport) -> True | False | None
               protocol detection on the first bytes of a direction (TCP: the start of the
               reassembled stream, UDP: a datagram): True it is this protocol, False it is
               not, None not enough data yet.  Never raises.
    Settings   a frozen dataclass of the protocol's limits and options, with Suricata's
               defaults (`app-layer.protocols.<proto>` keys; conf/ maps them)
    Parser     rules.applayer.base.Parser subclass, one per flow, made as Parser(settings)
               (a Settings instance)
    BUFFERS    [rules.applayer.base.BufferDef]: the sticky buffers it offers; each becomes a
               keyword of its own (rules.keywords.app)
    ALIASES    {older name: buffer name} ("tls_sni": "tls.sni")
    HEADER_NAMES  rule-header protocol names that mean this protocol ("http", "http1")

BUFFERS and PROTOCOLS below are built from them once, at import.
"""
from __future__ import annotations

import importlib

PROTOCOL_MODULES = (
    "rules.applayer.http",
    "rules.applayer.dns",
)

MODULES = tuple(importlib.import_module(m) for m in PROTOCOL_MODULES)
PROTOCOLS = {m.PROTO: m for m in MODULES}
HEADER_PROTOS = {name: m.PROTO for m in MODULES for name in m.HEADER_NAMES}
BUFFERS = {b.name: b for m in MODULES for b in m.BUFFERS}
ALIASES = {old: new for m in MODULES for old, new in m.ALIASES.items()}
