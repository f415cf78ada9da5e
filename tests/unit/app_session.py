"""A TCP session to port 80 through an Engine, for the app-layer unit tests."""
from __future__ import annotations


def http_session(e, segments: list[bytes], per_segment: bool = False):
    """A TCP session to port 80 through the engine: the sids alerted over its client segments
    (sorted), or per segment a sorted list each (`per_segment`)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from rules.api import FrameMeta

    cseq, sseq = 1000, 5000
    base = Ether() / IP(src="198.51.100.1", dst="203.0.113.1")
    back = Ether() / IP(src="203.0.113.1", dst="198.51.100.1")
    t = [0.0]

    def send(p):
        t[0] += 0.01
        return e.inspect(bytes(p), FrameMeta(t[0], "eth0"))

    send(base / TCP(sport=40000, dport=80, flags="S", seq=cseq - 1))
    send(back / TCP(sport=80, dport=40000, flags="SA", seq=sseq - 1, ack=cseq))
    send(base / TCP(sport=40000, dport=80, flags="A", seq=cseq, ack=sseq))
    out = []
    for data in segments:
        r = send(base / TCP(sport=40000, dport=80, flags="PA", seq=cseq, ack=sseq) / data)
        cseq += len(data)
        out.append(sorted(ev.sid for ev in r.events if type(ev).__name__ == "Alert"))
    return out if per_segment else sorted(sid for sids in out for sid in sids)
