"""decode-event and stream-event: match an event raised on the packet.

The decoder (rules/decode.py) records events as "decoder.<layer>.<name>",
Suricata's event table names; the keyword value is the part after
"decoder." (``decode-event:ipv4.trunc_pkt``), as in Suricata's own
decoder-events.rules.  A name the decoder never raises simply never matches.

The stream stage (rules/stream.py) records "stream.<name>";
``stream-event:<name>`` is Suricata's short form of
``decode-event:stream.<name>``.  Suricata 7 knows 71 stream event names;
a rule naming one that ipsbridge does not raise is refused as unsupported
(it could never match), a name Suricata does not know is an error."""
from __future__ import annotations

import re

from rules.keywords._base import REQUIRED, Ctx, Keyword
from rules.stream import EVENTS as STREAM_EVENTS

_NAME = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*\Z")


def _decode_event(value: str, ctx: Ctx):
    name = value.strip().lower()
    if not _NAME.match(name):
        raise ctx.error(f"bad decoder event name '{value.strip()}' (expected layer.event, e.g. ipv4.trunc_pkt)",
                        len(value) - len(value.lstrip()))
    if name.startswith("stream."):
        return _stream_check(name.removeprefix("stream."), ctx)
    full = "decoder." + name
    ctx.add_check(lambda p, full=full: full in p.events, cost=0)
    return name


# Suricata 7.0's stream event names (src/decode-events.c, "stream." removed)
SURICATA_STREAM_EVENTS = frozenset("""
3whs_ack_in_wrong_dir 3whs_async_wrong_seq 3whs_right_seq_wrong_ack_evasion 3whs_synack_in_wrong_direction
3whs_synack_resend_with_diff_ack 3whs_synack_resend_with_diff_seq 3whs_synack_toserver_on_syn_recv
3whs_synack_with_wrong_ack 3whs_synack_flood 3whs_synack_tfo_data_ignored 3whs_syn_resend_diff_seq_on_syn_recv
3whs_syn_toclient_on_syn_recv 3whs_syn_flood 3whs_wrong_seq_wrong_ack 3whs_ack_data_inject
4whs_synack_with_wrong_ack 4whs_synack_with_wrong_syn 4whs_wrong_seq 4whs_invalid_ack closewait_ack_out_of_window
closewait_fin_out_of_window closewait_pkt_before_last_ack closewait_invalid_ack closing_ack_wrong_seq
closing_invalid_ack est_packet_out_of_window est_pkt_before_last_ack est_synack_resend
est_synack_resend_with_diff_ack est_synack_resend_with_diff_seq est_synack_toserver est_syn_resend
est_syn_resend_diff_seq est_syn_toclient est_invalid_ack est_ack_zwp_data fin_invalid_ack fin1_ack_wrong_seq
fin1_fin_wrong_seq fin1_invalid_ack fin2_ack_wrong_seq fin2_fin_wrong_seq fin2_invalid_ack fin_but_no_session
fin_out_of_window fin_syn lastack_ack_wrong_seq lastack_invalid_ack rst_but_no_session timewait_ack_wrong_seq
timewait_invalid_ack shutdown_syn_resend pkt_invalid_timestamp pkt_invalid_ack pkt_broken_ack rst_invalid_ack
rst_with_data pkt_retransmission pkt_spurious_retransmission pkt_bad_window_update suspected_rst_inject
wrong_thread reassembly_segment_before_base_seq reassembly_no_segment reassembly_seq_gap
reassembly_overlap_different_data reassembly_depth_reached reassembly_insert_memcap reassembly_insert_limit
reassembly_insert_invalid reassembly_urgent_oob_limit_reached
""".split())


def _stream_check(name: str, ctx: Ctx):
    if name not in STREAM_EVENTS:
        if name in SURICATA_STREAM_EVENTS:
            raise ctx.error(f"unsupported stream event '{name}' (ipsbridge does not raise it; the ones it "
                            f"raises: {', '.join(sorted(STREAM_EVENTS))})", unsupported=f"stream-event:{name}")
        raise ctx.error(f"unknown stream event '{name}'")
    full = "stream." + name
    ctx.add_check(lambda p, full=full: full in p.events, cost=0)
    ctx.fields.setdefault("_stream_events", set()).add(name)
    return name


# older spellings stream-event still takes, as Suricata 7 does
_STREAM_ALIASES = {"est_synack_resend_with_different_ack": "est_synack_resend_with_diff_ack",
                   "3whs_synack_resend_with_different_ack": "3whs_synack_resend_with_diff_ack"}


def _stream_event(value: str, ctx: Ctx):
    name = value.strip().lower()
    name = _STREAM_ALIASES.get(name, name)
    if not _NAME.match(name):
        raise ctx.error(f"bad stream event name '{value.strip()}' (expected e.g. reassembly_overlap_different_data)",
                        len(value) - len(value.lstrip()))
    return _stream_check(name, ctx)


decode_event = Keyword("decode-event", _decode_event, REQUIRED)
stream_event = Keyword("stream-event", _stream_event, REQUIRED)
