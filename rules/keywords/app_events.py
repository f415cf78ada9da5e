"""app-layer-event:<proto>.<event>: an event the flow's app-layer parser raised.

    app-layer-event:http.invalid_transfer_encoding_value_in_request;
    app-layer-event:tls.invalid_record_type;
    app-layer-event:dns.malformed_data;

The rule then needs the protocol (as a sticky buffer of it would) and is matched on
transactions: the event is a condition on the transaction, as in Suricata, which keeps an
app-layer event on the transaction being parsed when it was raised.  The stage puts the
events a feed raised on the transactions that feed made or moved on (the last one when none
moved: a body event) -- rules.applayer TX_EVENTS.  So, as Suricata's app-layer-event inspect
engine (registered for both directions at progress 0): a rule without flow direction is
evaluated on each direction of the transaction and may alert once in each (a request header
event alerts on the request and again on the response); a rule waits while its side of the
transaction is not complete, and cannot match once it is complete without the event.

Names, as Suricata 7.0.10 takes them (detect-app-layer-event.c, checked with suricata -T):
- `<proto>` is an app-layer protocol Suricata 7 knows (http means http1; no quotes, no '!');
  an unknown one is an error, and so is a protocol the rule header cannot carry (icmp);
- the event must be in the protocol's table (SUR_EVENTS: HTTP and TLS names in any case,
  DNS names in lower case only); Suricata skips a rule naming one that is not, or one of
  the three outdated TLS certificate events -- refused here as invalid;
- an event of a protocol ipsbridge does not parse, or one its parser never raises (RAISED),
  is refused as unsupported (the rule could never match), as are the `applayer_*` events
  of protocol detection (`app-layer-event:applayer_mismatch_protocol_both_directions`):
  ipsbridge's detection (rules.applayer) raises none of them.

Checked with suricata -r on every DNS and TLS event rule, in ips and ids mode (the same
alerts on the same packets), and in tests/replay/differential app_keywords.  HTTP: header
lines are judged as libhtp does (request_field_missing_colon for a request line without a
colon, request_header_invalid for a request header name with a space, nothing for a
response line without a colon); an invalid request Transfer-Encoding makes the
parser give up as libhtp (ips mode: app-layer.error-policy drops the flow before detection,
in both); in ids mode Suricata alerts it a packet later (its stream hands the request over
when acknowledged).  Left out: when one feed parses several transactions (pipelined requests
in one segment) its events go to each of them (Suricata: to the one being parsed when
raised); a rule reload forgets the events of the transactions in flight (Tx.found starts
over).
"""
from __future__ import annotations

from functools import partial

from rules.applayer import TX_EVENTS
from rules.keywords._base import REQUIRED, Ctx, Keyword

# Suricata 7.0.10's event tables: app-layer-htp.c http_decoder_event_table, app-layer-ssl.c
# tls_decoder_event_table, rust/src/dns/dns.rs DNSEvent
SUR_EVENTS: dict[str, frozenset[str]] = {
    "http": frozenset("""
unknown_error gzip_decompression_failed request_field_missing_colon response_field_missing_colon
invalid_request_chunk_len invalid_response_chunk_len invalid_transfer_encoding_value_in_request
invalid_transfer_encoding_value_in_response invalid_content_length_field_in_request
invalid_content_length_field_in_response duplicate_content_length_field_in_request
duplicate_content_length_field_in_response 100_continue_already_seen unable_to_match_response_to_request
invalid_server_port_in_request invalid_authority_port request_header_invalid response_header_invalid
missing_host_header host_header_ambiguous invalid_request_field_folding invalid_response_field_folding
request_field_too_long response_field_too_long file_name_too_long request_line_invalid request_body_unexpected
request_server_port_tcp_port_mismatch request_uri_host_invalid request_header_host_invalid
request_auth_unrecognized request_header_repetition response_header_repetition double_encoded_uri
uri_delim_non_compliant method_delim_non_compliant request_line_leading_whitespace too_many_encoding_layers
abnormal_ce_header response_multipart_byteranges response_abnormal_transfer_encoding response_chunked_old_proto
response_invalid_protocol response_invalid_status request_line_incomplete lzma_memlimit_reached compression_bomb
range_invalid request_chunk_extension request_too_many_headers response_too_many_headers multipart_generic_error
multipart_no_filedata multipart_invalid_header too_many_warnings failed_protocol_change
""".split()),
    "tls": frozenset("""
invalid_sslv2_header invalid_tls_header invalid_record_version invalid_record_type invalid_record_length
invalid_handshake_message heartbeat_message invalid_heartbeat_message overflow_heartbeat_message
dataleak_heartbeat_mismatch handshake_invalid_length multiple_sni_extensions invalid_sni_type invalid_sni_length
too_many_records_in_packet invalid_certificate certificate_invalid_length certificate_invalid_version
certificate_invalid_serial certificate_invalid_algorithmidentifier certificate_invalid_x509name
certificate_invalid_date certificate_invalid_extensions certificate_invalid_der certificate_invalid_subject
certificate_invalid_issuer certificate_invalid_validity error_message_encountered invalid_ssl_record
""".split()),
    "dns": frozenset("""
malformed_data not_request not_response z_flag_set invalid_opcode name_too_long infinite_loop too_many_labels
""".split()),
}
_CASELESS = frozenset(("http", "tls"))      # SCMapEnumNameToValue compares without case; DNS's Rust table does not
_OUTDATED = frozenset(("tls.certificate_missing_element", "tls.certificate_unknown_element",
                       "tls.certificate_invalid_string"))

# the events ipsbridge's parsers raise (rules.applayer.http, http_body, tls, x509, dns; a unit
# test keeps this in step with their sources), but for NOT_AS_SURICATA
NOT_AS_SURICATA: dict[str, str] = {}
RAISED: frozenset[str] = frozenset("""
http.request_field_missing_colon http.request_header_invalid
http.abnormal_ce_header http.compression_bomb http.gzip_decompression_failed http.invalid_request_chunk_len
http.invalid_request_field_folding http.invalid_response_chunk_len http.invalid_response_field_folding
http.request_chunk_extension http.request_field_too_long http.too_many_encoding_layers
http.invalid_content_length_field_in_request http.invalid_content_length_field_in_response
http.invalid_transfer_encoding_value_in_request http.request_line_invalid
http.response_abnormal_transfer_encoding http.response_field_too_long
http.unable_to_match_response_to_request
tls.certificate_invalid_issuer tls.certificate_invalid_subject tls.dataleak_heartbeat_mismatch
tls.error_message_encountered tls.handshake_invalid_length tls.invalid_certificate tls.invalid_handshake_message
tls.invalid_heartbeat_message tls.invalid_record_length tls.invalid_record_type tls.invalid_record_version
tls.invalid_sni_length tls.invalid_sni_type tls.invalid_ssl_record tls.invalid_sslv2_header
tls.multiple_sni_extensions tls.overflow_heartbeat_message tls.too_many_records_in_packet
tls.certificate_invalid_algorithmidentifier tls.certificate_invalid_date tls.certificate_invalid_der
tls.certificate_invalid_extensions tls.certificate_invalid_length tls.certificate_invalid_serial
tls.certificate_invalid_version tls.certificate_invalid_x509name
dns.infinite_loop dns.invalid_opcode dns.malformed_data dns.name_too_long dns.not_request dns.not_response
dns.too_many_labels dns.z_flag_set
""".split())

# app-layer protocol names Suricata 7.0.10 knows in app-layer-event (--list-app-layer-protos, http1,
# and "file" for the detection engine's file events)
SUR_PROTOS = frozenset("""
http http1 ftp smtp tls ssh imap smb dcerpc dns nfs ntp ftp-data tftp ike krb5 quic dhcp snmp sip rfb mqtt
telnet rdp http2 bittorrent-dht file
""".split())
# protocol detection's packet events (app-layer-events.c app_layer_event_pkt_table)
PKT_EVENTS = frozenset("""
applayer_mismatch_protocol_both_directions applayer_wrong_direction_first_data
applayer_detect_protocol_only_one_direction applayer_proto_detection_skipped applayer_no_tls_after_starttls
applayer_unexpected_protocol
""".split())
_NAME_MAX = 50                              # MAX_ALPROTO_NAME: the whole value at most


def _app_layer_event(value: str, ctx: Ctx):
    from rules.applayer import registry

    arg = value.lstrip()
    at = len(value) - len(arg)
    if "." not in arg:
        if arg.lower() in PKT_EVENTS:
            raise ctx.error(f"unsupported app-layer-event '{arg}': ipsbridge's protocol detection raises no "
                            "applayer_* events", at, unsupported=f"app-layer-event:{arg.lower()}")
        raise ctx.error(f"unknown app-layer-event '{arg}' (expected <proto>.<event>, or one of "
                        f"{', '.join(sorted(PKT_EVENTS))})", at)
    if len(arg) > _NAME_MAX:
        raise ctx.error(f"app-layer-event: '{arg}' is too long ({_NAME_MAX} characters at most)", at)
    proto, _, event = arg.partition(".")
    if proto not in SUR_PROTOS:
        raise ctx.error(f"app-layer-event: unknown protocol '{proto}'", at)
    alproto = "http" if proto == "http1" else proto
    protos = ctx.ip_protos
    tcp = protos is None or 6 in protos
    if not tcp and 17 not in protos:
        raise ctx.error(f"app-layer-event: the rule's protocol cannot carry {proto}", at)
    table = SUR_EVENTS.get(alproto)
    if table is None:
        raise ctx.error(f"unsupported app-layer-event '{arg}': ipsbridge raises no {proto} events", at,
                        unsupported=f"app-layer-event:{alproto}")
    if arg in _OUTDATED:
        raise ctx.error(f"app-layer-event '{arg}' is no longer supported by Suricata 7", at + len(proto) + 1)
    name = event.lower() if alproto in _CASELESS else event
    mod = registry.PROTOCOLS.get(alproto)
    if name not in table or mod is None or (6 if tcp else 17) not in mod.IPPROTOS:
        where = "" if name in table else f" (not in Suricata 7's {proto} event table)"
        raise ctx.error(f"app-layer-event: protocol {proto} has no event '{event}'{where}", at + len(proto) + 1)
    full = f"{alproto}.{name}"
    if full not in RAISED:
        why = NOT_AS_SURICATA.get(full, f"ipsbridge's {alproto} parser does not raise it")
        raise ctx.error(f"unsupported app-layer-event '{full}': {why}", at + len(proto) + 1,
                        unsupported=f"app-layer-event:{full}")
    ctx.app_check(alproto, None, 0, partial(_has_event, full))
    return full


def _has_event(full: str, tx) -> bool:
    return full in tx.found.get(TX_EVENTS, ())


app_layer_event = Keyword("app-layer-event", _app_layer_event, REQUIRED)
