"""EVE JSON rendering (Suricata's field names) and an append-only writer.

`to_eve(event)` turns a `rules.events` dataclass into the dict Suricata would
log; no clock is read: `timestamp` is the packet time.

Checked against Suricata 7.0.10's EVE (suricata -r --simulate-ips with
`drop: {alerts: yes, flows: all}`; tests/unit/test_eve_drop_fields.py holds its
records):
- `alert.metadata` is the rule's `metadata` as a dict of key -> list of
  values: entries are "key value" split at the first space (an entry without
  a value is left out), keys sorted without regard to case, entries whose keys
  differ only in case merged under one spelling, values in reverse order of
  writing (Suricata's list is built by prepending);
- a `drop` record holds `len` (IPv4: total length; IPv6: payload length),
  `tos`/`ttl`/`ipid` (IPv6: `tc`/`hoplimit`/`flowlbl`), for TCP `tcpseq`,
  `tcpack`, `tcpwin`, the six flags `syn` `ack` `psh` `rst` `urg` `fin` (true or
  false), `tcpres`, `tcpurgp`, for UDP `udplen`, for ICMP (not ICMPv6)
  `icmp_id` and `icmp_seq`, and `reason` (rules.events.DROP_REASONS); the alert
  of the rule that caused it is embedded as a top-level `alert` (no metadata,
  as Suricata's drop logger writes it).  One difference: Suricata 7 writes
  icmp_id/icmp_seq in network byte order read as a host number (1234 shows as
  53764 on x86); here they are the numbers on the wire.  `EveWriter` appends one
JSON line per event; the file is opened with O_APPEND and each batch goes out
in one `write()`, so several worker processes can share one file without
interleaving inside a line.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import struct

from rules.decode import ip_text, proto_name
from rules.events import (
    DROP_REASONS,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    Alert,
    DecoderEvent,
    Drop,
    PacketInfo,
    Stats,
)

_UTC = _dt.UTC
# drop.<flag> as Suricata writes them: each of these six, true or false
_TCP_FLAG_NAMES = (("syn", 2), ("ack", 16), ("psh", 8), ("rst", 4), ("urg", 32), ("fin", 1))
# ICMP types whose header carries an identifier and sequence number (Suricata logs 0 for the rest)
_ICMP_ID_SEQ = frozenset((0, 8, 13, 14, 15, 16, 17, 18))
_u16 = struct.Struct("!H").unpack_from
_u32 = struct.Struct("!I").unpack_from


@functools.lru_cache(maxsize=256)
def _second(sec: int) -> str:
    return _dt.datetime.fromtimestamp(sec, _UTC).strftime("%Y-%m-%dT%H:%M:%S")


def timestamp(ts: float) -> str:
    """ISO 8601 with microseconds and a +0000 offset, as EVE writes it.  (The date and time
    of day are made once per second: events come many to a second.)"""
    us = round(ts * 1_000_000)
    return f"{_second(us // 1_000_000)}.{us % 1_000_000:06d}+0000"


def _common(p: PacketInfo, event_type: str) -> dict:
    out: dict = {"timestamp": timestamp(p.ts)}
    if p.flow_id:
        out["flow_id"] = p.flow_id
    if p.pcap_cnt:
        out["pcap_cnt"] = p.pcap_cnt
    out["event_type"] = event_type
    if p.iface:
        out["in_iface"] = p.iface
    if p.vlan:
        out["vlan"] = list(p.vlan)
    if p.ipver:
        out["src_ip"] = ip_text(p.ipver, p.src)
        if p.proto in (6, 17, 132):
            out["src_port"] = p.sport
        out["dest_ip"] = ip_text(p.ipver, p.dst)
        if p.proto in (6, 17, 132):
            out["dest_port"] = p.dport
        out["proto"] = proto_name(p.proto)
        if p.proto in (1, 58) and p.icmp_type >= 0:
            out["icmp_type"] = p.icmp_type
            out["icmp_code"] = p.icmp_code
    if p.to_server is not None:
        out["direction"] = "to_server" if p.to_server else "to_client"
    out["pkt_src"] = p.pkt_src
    return out


def _alert(event: Alert, metadata: bool = True) -> dict:
    out = {
        "action": event.action,
        "gid": event.gid,
        "signature_id": event.sid,
        "rev": event.rev,
        "signature": event.msg,
        "category": event.category,
        "severity": event.severity,
    }
    if metadata and event.metadata:
        md = metadata_dict(event.metadata)
        if md:
            out["metadata"] = md
    return out


@functools.lru_cache(maxsize=4096)
def _metadata(entries: tuple[str, ...]) -> tuple:
    pairs = []
    for e in reversed(entries):               # Suricata prepends each entry to its list
        key, sep, value = e.strip().partition(" ")
        value = value.strip()
        if sep and key and value:
            pairs.append((key, value))
    pairs.sort(key=lambda kv: kv[0].lower())  # stable: equal keys keep that order
    out: list[tuple[str, list[str]]] = []
    for key, value in pairs:
        if out and out[-1][0].lower() == key.lower():
            out[-1][1].append(value)
        else:
            out.append((key, [value]))
    return tuple((k, tuple(v)) for k, v in out)


def metadata_dict(entries: tuple[str, ...]) -> dict[str, list[str]]:
    """A rule's `metadata` entries ("key value", as written) as Suricata's alert.metadata."""
    return {k: list(v) for k, v in _metadata(tuple(entries))}


def _drop_fields(event: Drop) -> dict:
    p = event.pkt
    ip, l4 = event.ip_hdr, event.l4_hdr
    drop: dict = {}
    if p.ipver == 4 and len(ip) >= 20:
        drop.update(len=_u16(ip, 2)[0], tos=ip[1], ttl=ip[8], ipid=_u16(ip, 4)[0])
    elif p.ipver == 6 and len(ip) >= 8:
        word = _u32(ip, 0)[0]
        drop.update(len=_u16(ip, 4)[0], tc=(word >> 20) & 0xFF, hoplimit=ip[7], flowlbl=word & 0xFFFFF)
    if p.proto == IPPROTO_TCP and len(l4) >= 20:
        flags = l4[13]
        drop.update(tcpseq=_u32(l4, 4)[0], tcpack=_u32(l4, 8)[0], tcpwin=_u16(l4, 14)[0])
        for name, bit in _TCP_FLAG_NAMES:
            drop[name] = bool(flags & bit)
        drop.update(tcpres=l4[12] & 0x0F, tcpurgp=_u16(l4, 18)[0])
    elif p.proto == IPPROTO_UDP and len(l4) >= 8:
        drop["udplen"] = _u16(l4, 4)[0]
    elif p.proto == IPPROTO_ICMP and p.ipver == 4 and len(l4) >= 8:
        idseq = l4[0] in _ICMP_ID_SEQ
        drop.update(icmp_id=_u16(l4, 4)[0] if idseq else 0, icmp_seq=_u16(l4, 6)[0] if idseq else 0)
    drop["reason"] = DROP_REASONS.get(event.reason, event.reason)
    return drop


def to_eve(event) -> dict:
    if isinstance(event, Alert):
        out = _common(event.pkt, "alert")
        out["alert"] = _alert(event)
        if event.pkt.app_proto:
            out["app_proto"] = event.pkt.app_proto
        return out
    if isinstance(event, Drop):
        out = _common(event.pkt, "drop")
        out["drop"] = _drop_fields(event)
        if event.alert is not None:
            out["alert"] = _alert(event.alert, metadata=False)
        return out
    if isinstance(event, DecoderEvent):
        out = _common(event.pkt, "anomaly")
        out["anomaly"] = {"type": "decode", "event": event.name}
        return out
    if isinstance(event, Stats):
        return {"timestamp": timestamp(event.ts), "event_type": "stats", "stats": dict(event.counters)}
    raise TypeError(f"not an EVE event: {type(event).__name__}")


_SEP = (",", ":")


@functools.lru_cache(maxsize=4096)
def _alert_json(action: str, gid: int, sid: int, rev: int, msg: str, category: str, severity: int,
                metadata: tuple[str, ...]) -> str:
    return json.dumps(_alert(Alert(None, action, "", gid, sid, rev, msg, category, severity, metadata)),
                      separators=_SEP)


def dumps(event) -> str:
    """One EVE line: json.dumps(to_eve(event)), compact.  An alert's `alert` object (and the
    one a drop embeds) depends only on its rule and action: it is rendered once per rule and
    action and put in place (tests/unit/test_eve_render.py: the same text as rendering the
    whole dict)."""
    if type(event) is Alert:
        p = event.pkt
        head = json.dumps(_common(p, "alert"), separators=_SEP)
        alert = _alert_json(event.action, event.gid, event.sid, event.rev, event.msg, event.category,
                            event.severity, event.metadata)
        if p.app_proto:
            return f'{head[:-1]},"alert":{alert},"app_proto":{json.dumps(p.app_proto)}}}'
        return f'{head[:-1]},"alert":{alert}}}'
    if type(event) is Drop and event.alert is not None:
        out = _common(event.pkt, "drop")
        out["drop"] = _drop_fields(event)
        a = event.alert                       # embedded without its metadata, as to_eve does
        alert = _alert_json(a.action, a.gid, a.sid, a.rev, a.msg, a.category, a.severity, ())
        return f'{json.dumps(out, separators=_SEP)[:-1]},"alert":{alert}}}'
    return json.dumps(to_eve(event), separators=_SEP)


class EveWriter:
    """Append EVE lines to a path (O_APPEND, one write() per batch) or to an open text/binary file."""

    def __init__(self, path_or_file) -> None:
        self._fd: int | None = None
        self._file = None
        if isinstance(path_or_file, (str, os.PathLike)):
            self._fd = os.open(os.fspath(path_or_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        else:
            self._file = path_or_file
        self._buf: list[str] = []
        self.written = 0

    def write(self, events: tuple, meta=None) -> None:
        if not events:
            return
        lines = [dumps(e) for e in events]
        self.written += len(lines)
        data = "\n".join(lines) + "\n"
        if self._fd is not None:
            b = data.encode()
            n = os.write(self._fd, b)
            while n < len(b):                  # regular files: a short write only on ENOSPC-like trouble
                n += os.write(self._fd, b[n:])
        else:
            f = self._file
            f.write(data.encode() if "b" in getattr(f, "mode", "") else data)

    def write_lines(self, lines: list[str]) -> None:
        """Pre-rendered lines (replay merging worker output)."""
        if not lines:
            return
        self.written += len(lines)
        data = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        if self._fd is not None:
            b = data.encode()
            n = os.write(self._fd, b)
            while n < len(b):
                n += os.write(self._fd, b[n:])
        else:
            self._file.write(data)

    def flush(self) -> None:
        if self._file is not None and hasattr(self._file, "flush"):
            self._file.flush()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        elif self._file is not None:
            self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
