"""The keyword table: every rule option ipsbridge understands, in one place.

One module per keyword family (as Suricata has one detect-*.c per keyword);
each module defines `Keyword` entries (parse function + value mode + quoting
+ negation flags, see `_base.Keyword`) and this dict lists them.  A keyword
missing here makes the rule fail, never silently ignored: "unsupported keyword
'x'" when Suricata 7 knows it (SURICATA_KEYWORDS), "unknown keyword 'x'" (an
invalid rule, with the nearest known name) when it does not.  Adding a keyword: one new module, one line below.
"""
from __future__ import annotations

from rules.keywords import (bsize, buffers, bypass, byte_ops, content, dns_app, dsize, events, flow, flowbits, flowint,
                            icmp, ip, ipfields, isdataat, meta, pcre, stream_size, tcp, threshold, transforms, xbits)
from rules.keywords import app_events
from rules.keywords import base64 as base64_kw
from rules.keywords import app_proto as app_proto_kw
from rules.keywords import tls as tls_kw
from rules.keywords._base import Keyword

REGISTRY: dict[str, Keyword] = {
    # meta
    "msg": meta.msg,
    "sid": meta.sid,
    "rev": meta.rev,
    "gid": meta.gid,
    "classtype": meta.classtype,
    "priority": meta.priority,
    "reference": meta.reference,
    "metadata": meta.metadata,
    "target": meta.target,
    # payload: content and its modifiers
    "content": content.content,
    "nocase": content.nocase,
    "depth": content.depth,
    "offset": content.offset,
    "distance": content.distance,
    "within": content.within,
    "startswith": content.startswith,
    "endswith": content.endswith,
    "fast_pattern": content.fast_pattern,
    "rawbytes": content.rawbytes,
    "pkt_data": buffers.pkt_data,
    # sticky buffers and their legacy modifiers
    "dns.opcode": dns_app.dns_opcode,
    "app-layer-protocol": app_proto_kw.app_layer_protocol,
    "tls.version": tls_kw.tls_version,
    "ssl_version": tls_kw.ssl_version,
    "ssl_state": tls_kw.ssl_state,
    "tls.cert_chain_len": tls_kw.cert_chain_len,
    "bsize": bsize.bsize,
    "dotprefix": transforms.dotprefix,
    # payload: other inspections
    "pcre": pcre.pcre,
    "isdataat": isdataat.isdataat,
    "byte_test": byte_ops.byte_test,
    "byte_jump": byte_ops.byte_jump,
    "dsize": dsize.dsize,
    "base64_decode": base64_kw.base64_decode,
    "base64_data": base64_kw.base64_data,
    # header / state
    "flow": flow.flow,
    "flags": tcp.flags,
    "tcp.hdr": tcp.tcp_hdr,
    "ttl": ip.ttl,
    "ip_proto": ip.ip_proto,
    "sameip": ip.sameip,
    "id": ipfields.id_,
    "fragbits": ipfields.fragbits,
    "fragoffset": ipfields.fragoffset,
    "ipopts": ipfields.ipopts,
    "seq": ipfields.seq,
    "ack": ipfields.ack,
    "window": ipfields.window,
    "itype": icmp.itype,
    "icode": icmp.icode,
    "icmp_id": icmp.icmp_id,
    "icmp_seq": icmp.icmp_seq,
    "decode-event": events.decode_event,
    "app-layer-event": app_events.app_layer_event,
    "stream-event": events.stream_event,
    "stream_size": stream_size.stream_size,
    # post-match
    "flowbits": flowbits.flowbits,
    "noalert": flowbits.noalert,
    "xbits": xbits.xbits,
    "flowint": flowint.flowint,
    "bypass": bypass.bypass,
    "threshold": threshold.threshold,
    "detection_filter": threshold.detection_filter,
}



# app-layer sticky buffers, their older names and the legacy http_* modifiers, generated from
# the protocol modules (rules.applayer.registry); a keyword listed above keeps its entry
from rules.keywords import app as _app_keywords  # noqa: E402

for _name, _kw in _app_keywords.keywords().items():
    REGISTRY.setdefault(_name, _kw)

# every keyword name (and alias) Suricata 7 accepts: one not in REGISTRY but in here is
# "unsupported" (valid Suricata, skipped and counted); one in neither is a typo (invalid)
from rules.keywords.suricata7 import SURICATA_KEYWORDS  # noqa: E402

__all__ = ["REGISTRY", "SURICATA_KEYWORDS", "Keyword"]
