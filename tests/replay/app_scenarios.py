"""The app-layer differential families (HTTP, TLS, DNS, ...), one module per protocol.

Each module listed in MODULES defines FAMILIES: a list of `AppFamily`.  A family is
one NAME.pcap / NAME.rules pair under differential/ and one scenario per mode (NAME for
the first mode, NAME_<mode> for the others); both engines
run it with the default config (differential/ipsbridge.yaml; Suricata gets
make_differential.suricata_yaml), so app-layer settings are the defaults.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

MODULES = ("app_http", "app_dns", "app_tls", "app_keywords", "app_smtp", "app_ftp")


@dataclass(frozen=True)
class AppFamily:
    name: str                  # files NAME.pcap / NAME.rules
    covers: str                # one line for differential/README.md
    rules: str
    build: Callable            # build(cap: make_differential.Capture)
    modes: tuple = ("ips",)


def families() -> list[AppFamily]:
    out: list[AppFamily] = []
    for m in MODULES:
        out += importlib.import_module(m).FAMILIES
    return out
